//! Child processes that never outlive the command that started them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running child process with its output in a log file. Dropping it stops
/// the process: a check that fails half-way leaves nothing running.
pub struct Child {
    name: String,
    handle: Option<duct::Handle>,
    log: PathBuf,
}

impl Child {
    /// Starts `expression` with stdout and stderr appended to `log`.
    pub fn start(name: &str, expression: duct::Expression, log: &Path) -> anyhow::Result<Child> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let handle = expression
            .stdin_null()
            .stdout_file(file.try_clone()?)
            .stderr_file(file)
            .unchecked()
            .start()
            .with_context(|| format!("starting {name}"))?;
        Ok(Child { name: name.to_owned(), handle: Some(handle), log: log.to_owned() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn pids(&self) -> Vec<u32> {
        self.handle.as_ref().map(duct::Handle::pids).unwrap_or_default()
    }

    /// An error with the tail of the log if the process has exited.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let Some(handle) = &self.handle else { bail!("{} was stopped", self.name) };
        if let Some(output) = handle.try_wait()? {
            bail!("{} exited ({}); last lines of {}:\n{}", self.name, output.status, self.log.display(), log_tail(&self.log, 15));
        }
        Ok(())
    }

    /// Lets the process run on after this value is gone (for `cargo xtask up`);
    /// returns its pids, which whoever stops it later needs.
    pub fn detach(mut self) -> Vec<u32> {
        let pids = self.pids();
        if let Some(handle) = self.handle.take() {
            std::mem::forget(handle);
        }
        pids
    }

    /// SIGTERM, so the service flushes its spans; SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(handle) = self.handle.take() else { return };
        for pid in handle.pids() {
            // SAFETY: kill(2) with a pid of our own child and a valid signal.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if !matches!(handle.wait_timeout(grace), Ok(Some(_))) {
            let _ = handle.kill();
            let _ = handle.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.kill();
            let _ = handle.wait();
        }
    }
}

/// The last `lines` lines of a log file, or a note that it is unreadable.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// Polls `ready` every 50 ms until it returns true, the child dies, or `timeout`.
pub fn wait_until(child: &Child, timeout: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        child.check_alive()?;
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} was not ready after {:?}; last lines of {}:\n{}",
                child.name,
                timeout,
                child.log.display(),
                log_tail(&child.log, 15)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Builds workspace packages with the cargo that runs us, showing cargo's own progress.
pub fn cargo_build(packages: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut args = vec!["build".to_owned(), "--quiet".to_owned()];
    for package in packages {
        args.push("--package".to_owned());
        args.push((*package).to_owned());
    }
    let status = duct::cmd(cargo, args)
        .dir(crate::project_root())
        .stdout_to_stderr()
        .unchecked()
        .run()
        .context("running cargo build")?
        .status;
    if !status.success() {
        bail!("cargo build of {} failed (see the compiler output above)", packages.join(", "));
    }
    Ok(())
}

/// Path of a binary built by [`cargo_build`] in the dev profile.
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"));
    target.join("debug").join(name)
}
