//! Child processes that never outlive the command that started them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Lines of a child's log an error quotes: enough for a stack trace's head.
const QUOTED_LOG_LINES: usize = 20;

/// A running child process with its output in a log file. Dropping it stops
/// the process: a check that fails half-way leaves nothing running.
#[derive(Debug)]
pub struct Child {
    name: String,
    handle: Option<duct::Handle>,
    log: PathBuf,
}

impl Child {
    /// Starts `expression` with stdout and stderr written to `log`, afresh.
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
            bail!(
                "{} exited unexpectedly ({}); last lines of {}:\n{}",
                self.name,
                output.status,
                self.log.display(),
                log_tail(&self.log, QUOTED_LOG_LINES)
            );
        }
        Ok(())
    }

    /// How the process ended, or `None` while it runs.
    pub fn exit_status(&self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let Some(handle) = &self.handle else { bail!("{} was stopped", self.name) };
        Ok(handle.try_wait()?.map(|output| output.status))
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
            signal(pid, Signal::TERM);
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

pub use rustix::process::Signal;

/// Sends `signal` to process `pid`; a process that is already gone is no error.
pub fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Whether process `pid` still runs. Reaps it first when it is an exited
/// child of this process (a zombie exists, but does not run).
pub fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    if let Ok(Some(_)) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
        return false;
    }
    rustix::process::test_kill_process(pid).is_ok()
}

/// The last `lines` lines of a log file, for error messages. Reads at most
/// the last 16 KiB: a broker's log can be large.
pub fn log_tail(path: &Path, lines: usize) -> String {
    use std::io::{Read as _, Seek as _};
    const MAX_BYTES: u64 = 16 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(std::io::SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "  (the log is empty)".to_owned(),
        Ok(text) => tail(&text, lines),
        Err(err) => format!("  (cannot read {}: {err})", path.display()),
    }
}

/// The last `lines` lines of `text`, indented and marked as quoted output.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].iter().map(|line| format!("  | {line}")).collect::<Vec<_>>().join("\n")
}

/// A phase of a long command: a spinner with the time elapsed on a terminal,
/// and a plain line when it starts and when it ends everywhere else (a CI
/// log, a pipe), so that no phase is silent.
pub struct Phase {
    bar: indicatif::ProgressBar,
    plain: bool,
}

impl Phase {
    /// Whether the phase shows as a spinner (stderr is a terminal).
    pub fn on_terminal(&self) -> bool {
        !self.plain
    }

    /// Ends the phase: clears the spinner, or prints how long it took.
    pub fn finish_and_clear(&self) {
        if self.plain {
            if !self.bar.is_finished() {
                eprintln!("  {}: {:.1} s", self.bar.message(), self.bar.elapsed().as_secs_f64());
            }
            self.bar.finish();
        } else {
            self.bar.finish_and_clear();
        }
    }
}

impl std::ops::Deref for Phase {
    type Target = indicatif::ProgressBar;

    fn deref(&self) -> &indicatif::ProgressBar {
        &self.bar
    }
}

/// Starts a [`Phase`], for waits of a second or more.
pub fn spinner(message: impl Into<std::borrow::Cow<'static, str>>) -> Phase {
    use std::io::IsTerminal as _;
    let message = message.into();
    let plain = !std::io::stderr().is_terminal();
    if plain {
        eprintln!("· {message}");
        let bar = indicatif::ProgressBar::hidden();
        bar.set_message(message);
        return Phase { bar, plain };
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .expect("static template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
    );
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Phase { bar, plain }
}

/// Calls `ready` every `every` until it answers `Some`, or until `timeout`
/// has passed (`None`). An error from `ready` (a process died) ends the wait.
/// Every deadline loop of the harness is this one.
pub fn poll<T, E>(
    timeout: Duration,
    every: Duration,
    mut ready: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = ready()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(every);
    }
}

/// Polls `ready` every 50 ms until it returns true, the child dies, or `timeout`.
pub fn wait_until(child: &Child, timeout: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let polled = poll(timeout, Duration::from_millis(50), || {
        child.check_alive()?;
        anyhow::Ok(ready().then_some(()))
    })?;
    if polled.is_none() {
        bail!(
            "{} was not ready after {:?}; last lines of {}:\n{}",
            child.name,
            timeout,
            child.log.display(),
            log_tail(&child.log, QUOTED_LOG_LINES)
        );
    }
    Ok(())
}

/// A TCP port on 127.0.0.1 that nothing listens on right now, below the
/// kernel's ephemeral range. A port the kernel hands out for `bind(0)` is
/// one it also hands to outgoing connections: between the moment it is
/// found and the moment a collector binds it, one of the run's own
/// connections could take it (seen: Jaeger's receiver, "address already in
/// use").
pub fn free_port() -> anyhow::Result<u16> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768); // Linux's default
    let range = 10_000..ephemeral_start.max(10_001);
    for _ in 0..200 {
        let port = fastrand::u16(range.clone());
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port on 127.0.0.1 between {} and {} after 200 tries", range.start, range.end)
}

/// A cargo command, run by the cargo that runs us, without the variables
/// `cargo test` sets for a test: build scripts (ring's) watch
/// `CARGO_MANIFEST_DIR`, and seeing it change would rebuild half the graph.
pub fn cargo(args: &[&dyn AsRef<std::ffi::OsStr>]) -> duct::Expression {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let args = args.iter().map(|arg| arg.as_ref().to_owned());
    let mut expression = duct::cmd(cargo, args).dir(crate::project_root());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let set_for_a_test = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix));
        if set_for_a_test {
            expression = expression.env_remove(name);
        }
    }
    expression
}

/// Builds workspace packages, showing cargo's own output.
pub fn cargo_build(packages: &[&str]) -> anyhow::Result<()> {
    // Not `--quiet`: a first build takes minutes, and cargo's own progress
    // is what shows that something happens.
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"build"];
    for package in packages {
        args.extend([&"--package" as &dyn AsRef<std::ffi::OsStr>, package]);
    }
    run_build(&args, &packages.join(", "))
}

/// [`cargo_build`] in the release profile.
pub fn cargo_build_release(packages: &[&str]) -> anyhow::Result<()> {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"build", &"--release"];
    for package in packages {
        args.extend([&"--package" as &dyn AsRef<std::ffi::OsStr>, package]);
    }
    run_build(&args, &packages.join(", "))
}

/// Builds packages of the workspace whose manifest is `manifest` (a copy
/// of a learner's crate lives in one of its own) into the same target
/// directory, so that every dependency already built is reused.
pub fn cargo_build_in(manifest: &Path, packages: &[&str]) -> anyhow::Result<()> {
    let target = target_dir();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"build", &"--manifest-path", &manifest, &"--target-dir", &target];
    for package in packages {
        args.extend([&"--package" as &dyn AsRef<std::ffi::OsStr>, package]);
    }
    run_build(&args, &packages.join(", "))
}

/// Runs a cargo build with its output on stderr; `what` names it in errors.
fn run_build(args: &[&dyn AsRef<std::ffi::OsStr>], what: &str) -> anyhow::Result<()> {
    let status = cargo(args).stdout_to_stderr().unchecked().run().context("running cargo build")?.status;
    if !status.success() {
        bail!("cargo build of {what} failed (see the compiler output above)");
    }
    Ok(())
}

/// Builds the embedded broker, which is a workspace of its own (see
/// `crates/broker/Cargo.toml`), into the same target directory.
pub fn build_broker() -> anyhow::Result<()> {
    let manifest = crate::project_root().join("crates").join("broker").join("Cargo.toml");
    run_build(&[&"build", &"--manifest-path", &manifest, &"--target-dir", &target_dir()], "stitch-broker")
}

/// The target directory builds go to: `CARGO_TARGET_DIR`, or `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => crate::project_root().join(dir),
        None => crate::project_root().join("target"),
    }
}

/// Path of a binary built by [`cargo_build`] in the dev profile.
pub fn binary(name: &str) -> PathBuf {
    target_dir().join("debug").join(name)
}

/// A GET on loopback, answered as text; errors say what answered.
pub fn http_get(url: &str) -> anyhow::Result<String> {
    let (status, body) = http_get_status(url)?;
    if !(200..300).contains(&status) {
        bail!("GET {url} answered {status}: {}", body.chars().take(300).collect::<String>());
    }
    Ok(body)
}

/// A GET on loopback: the status and the body, whatever the status. One
/// runtime and one client serve every call: a check reads thousands of
/// traces back, one GET each.
pub fn http_get_status(url: &str) -> anyhow::Result<(u16, String)> {
    static LOOPBACK: std::sync::OnceLock<(tokio::runtime::Runtime, reqwest::Client)> = std::sync::OnceLock::new();
    let (runtime, client) = match LOOPBACK.get() {
        Some(loopback) => loopback,
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            LOOPBACK.get_or_init(|| (runtime, reqwest::Client::new()))
        }
    };
    runtime.block_on(async {
        let response =
            client.get(url).timeout(Duration::from_secs(10)).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    })
}

/// Runs `expression` to its end with its stdout and stderr in `log`. A
/// failure is an error naming `what`, quoting the last `lines` lines of the log.
pub fn run_logged(what: &str, expression: duct::Expression, log: &Path, lines: usize) -> anyhow::Result<()> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = expression
        .stdin_null()
        .stdout_file(file.try_clone()?)
        .stderr_file(file)
        .unchecked()
        .run()
        .with_context(|| format!("{what}: starting the command"))?
        .status;
    if !status.success() {
        bail!("{what} failed ({status}); last lines of {}:\n{}", log.display(), log_tail(log, lines));
    }
    Ok(())
}

/// What [`poll_until_quiet`] read last, and whether it settled in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled<T> {
    pub value: T,
    pub settled: bool,
}

/// Reads `read` every `every` until `settled(value, unchanged_for)` holds or
/// `timeout` has passed. `unchanged_for` is how long the value read has not
/// moved: spans, decisions and exports arrive in bursts, so "enough" is
/// judged together with "quiet". An error from `read` (a process died) ends
/// the wait.
pub fn poll_until_quiet<T: PartialEq + Clone>(
    timeout: Duration,
    every: Duration,
    mut read: impl FnMut() -> anyhow::Result<T>,
    mut settled: impl FnMut(&T, Duration) -> bool,
) -> anyhow::Result<Polled<T>> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<(T, Instant)> = None;
    loop {
        let value = read()?;
        let since = match &last {
            Some((previous, since)) if *previous == value => *since,
            _ => Instant::now(),
        };
        last = Some((value.clone(), since));
        if settled(&value, since.elapsed()) {
            return Ok(Polled { value, settled: true });
        }
        if Instant::now() >= deadline {
            return Ok(Polled { value, settled: false });
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_ends_once_the_value_has_stopped_moving() {
        let mut reads = 0u32;
        let polled = poll_until_quiet(
            Duration::from_secs(10),
            Duration::from_millis(5),
            || {
                reads += 1;
                Ok(reads.min(5))
            },
            |&value, quiet| value == 5 && quiet >= Duration::from_millis(30),
        )
        .unwrap();
        assert_eq!(polled, Polled { value: 5, settled: true });
        assert!(reads > 5, "it waited for the quiet after the last change");
    }

    #[test]
    fn polling_that_never_settles_says_so_at_the_timeout() {
        let mut reads = 0u32;
        let polled = poll_until_quiet(
            Duration::from_millis(50),
            Duration::from_millis(5),
            || {
                reads += 1;
                Ok(reads)
            },
            |_, quiet| quiet >= Duration::from_secs(1),
        )
        .unwrap();
        assert!(!polled.settled);
        assert_eq!(polled.value, reads);
    }

    #[test]
    fn a_poll_answers_what_came_or_nothing_at_the_timeout() {
        let mut reads = 0u32;
        let found = poll(Duration::from_secs(10), Duration::from_millis(1), || {
            reads += 1;
            anyhow::Ok((reads == 3).then_some(reads))
        });
        assert_eq!(found.unwrap(), Some(3));
        let never = poll(Duration::from_millis(20), Duration::from_millis(1), || anyhow::Ok(None::<u32>));
        assert_eq!(never.unwrap(), None);
        let died = poll(Duration::from_secs(10), Duration::from_millis(1), || -> anyhow::Result<Option<u32>> {
            bail!("the broker died")
        });
        assert_eq!(died.unwrap_err().to_string(), "the broker died");
    }

    #[test]
    fn a_failed_read_ends_the_polling() {
        let polled = poll_until_quiet(
            Duration::from_secs(10),
            Duration::from_millis(5),
            || -> anyhow::Result<u32> { bail!("the collector died") },
            |_, _| false,
        );
        assert_eq!(polled.unwrap_err().to_string(), "the collector died");
    }
}
