//! `cargo xtask watch step-N`: on every save in the step's crate, its fast
//! tests in seconds, then, once they pass, the end-to-end check. One screen
//! per run, so what is on the screen is always the latest verdict.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher as _};
use stitch_components::kafka::BrokerKind;
use stitch_components::process;
use stitch_runner::step::{self, Step, StepDirs as _};

/// Saves closer together than this are one change (an editor writes a file
/// in several steps; `cargo fmt` touches several files).
const SETTLE: Duration = Duration::from_millis(300);

pub fn run(query: &str, solution: bool, kafka: BrokerKind) -> anyhow::Result<ExitCode> {
    let step = step::find(query)?;
    if solution && !step.has_solution() {
        anyhow::bail!("{} has no solution to watch", step.short_name());
    }
    let dir = step.dir(solution);
    let (sender, changes) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // A closed channel means the loop below ended: nothing left to tell.
        let _ = sender.send(event);
    })
    .context("starting the file watcher")?;
    watcher.watch(&dir, RecursiveMode::Recursive).with_context(|| format!("watching {}", dir.display()))?;

    let mut reason = "started".to_owned();
    loop {
        run_once(&step, solution, kafka, &reason);
        println!("\nwatching {} for changes (Ctrl-C to stop)", relative(&dir));
        let changed = next_change(&changes, &dir)?;
        reason = format!("{} changed", changed.iter().map(|path| relative(path)).collect::<Vec<_>>().join(", "));
    }
}

/// One screen: the fast tests, then the check if they pass.
fn run_once(step: &Step, solution: bool, kafka: BrokerKind, reason: &str) {
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        // Clear the screen and move to its top.
        print!("\x1b[2J\x1b[H");
    }
    let package = step.package(solution);
    println!("── {} ({}), {reason}", step.short_name(), package);
    if step.dir(solution).join("tests").is_dir() {
        println!("── the step's own tests: cargo test -p {package}\n");
        // One screen: the failing assertion's message, not a backtrace.
        match process::cargo(&[&"test", &"--quiet", &"--package", &package])
            .env("RUST_BACKTRACE", "0")
            .unchecked()
            .run()
        {
            Ok(output) if output.status.success() => {}
            Ok(_) => {
                println!("\n{}", crate::hint::after_failure(step));
                println!("\nthe end-to-end check runs once these pass");
                return;
            }
            Err(err) => {
                println!("error: running cargo test -p {package}: {err:#}");
                return;
            }
        }
    }
    println!("\n── the end-to-end check: cargo xtask check {}{}\n", step.short_name(), flag(solution));
    if let Err(err) = crate::check_command(&step.short_name(), solution, None, kafka, false) {
        println!("error: {err:#}");
    }
}

fn flag(solution: bool) -> &'static str {
    if solution { " --solution" } else { "" }
}

/// Blocks until a file of the step (not its build output, not an editor's
/// temporary file) changes, then waits for the burst to settle.
fn next_change(changes: &mpsc::Receiver<notify::Result<notify::Event>>, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut changed: Vec<PathBuf> = Vec::new();
    loop {
        let event = if changed.is_empty() {
            changes.recv().context("the file watcher stopped")?
        } else {
            match changes.recv_timeout(SETTLE) {
                Ok(event) => event,
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(changed),
                Err(mpsc::RecvTimeoutError::Disconnected) => anyhow::bail!("the file watcher stopped"),
            }
        };
        let event = event.context("watching the step's files")?;
        if matches!(event.kind, notify::EventKind::Access(_)) {
            continue;
        }
        for path in event.paths {
            if is_source(&path, dir) && !changed.contains(&path) {
                changed.push(path);
            }
        }
    }
}

/// A file the learner edits: under the step's directory, not in a `target`
/// directory, and not an editor's swap or backup file.
fn is_source(path: &Path, dir: &Path) -> bool {
    let Ok(inside) = path.strip_prefix(dir) else { return false };
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("");
    let hidden_or_temporary = name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name.is_empty();
    !inside.components().any(|part| part.as_os_str() == "target") && !hidden_or_temporary
}

fn relative(path: &Path) -> String {
    path.strip_prefix(stitch_paths::project_root()).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_learners_files_count_as_changes() {
        let dir = Path::new("/repo/steps/step-01-http");
        assert!(is_source(&dir.join("src/http.rs"), dir));
        assert!(is_source(&dir.join("tests/boundary.rs"), dir));
        assert!(!is_source(&dir.join("target/debug/foo"), dir));
        assert!(!is_source(&dir.join("src/.http.rs.swp"), dir));
        assert!(!is_source(&dir.join("src/http.rs~"), dir));
        assert!(!is_source(Path::new("/repo/steps/step-02-async/src/lib.rs"), dir));
    }
}
