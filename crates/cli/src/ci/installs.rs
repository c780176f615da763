//! The slow installs (the collector, Jaeger, mdbook) built on threads of
//! their own while the first proofs mostly wait on sockets.

use std::thread::JoinHandle;

type Install = fn() -> anyhow::Result<std::path::PathBuf>;

/// Installs running in the background; joined once, to what failed.
pub(super) struct Background(JoinHandle<Vec<String>>);

impl Background {
    /// Runs `installs` in order on a thread of their own.
    pub(super) fn start(installs: &[(&'static str, Install)]) -> Background {
        let installs = installs.to_vec();
        Background(std::thread::spawn(move || {
            installs
                .iter()
                .filter_map(|(what, install)| install().err().map(|err| format!("{what}: {err:#}")))
                .collect()
        }))
    }

    /// Waits for the installs; one problem per install that failed.
    pub(super) fn join(self) -> Vec<String> {
        self.0.join().unwrap_or_else(|_| vec!["the install thread panicked".to_owned()])
    }
}
