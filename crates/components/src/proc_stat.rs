//! What the kernel counts for a process: its CPU time and its peak memory
//! (`/proc/PID/stat`, `/proc/PID/status`), and pinning it to cores.

use anyhow::{Context as _, bail};

/// User + system CPU time of a process, all its threads, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = rustix::param::clock_ticks_per_second();
    if ticks == 0 {
        bail!("the kernel reports 0 clock ticks per second");
    }
    let (utime, stime) = parse_stat_times(&stat).with_context(|| format!("unexpected {path}: {stat}"))?;
    Ok((utime + stime) as f64 / ticks as f64)
}

/// utime and stime (fields 14 and 15) in clock ticks; the command name
/// before them may hold spaces and parentheses, so split after the last ')'.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// Peak resident set size in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {path}"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:").trim().strip_suffix("kB")?.trim().parse().ok()
}

/// The 1-minute load average (`/proc/loadavg`): how busy the machine was
/// around a measurement, written beside its figures.
pub fn load_average() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    text.split_whitespace()
        .next()
        .and_then(|first| first.parse().ok())
        .with_context(|| format!("unexpected /proc/loadavg: {text:?}"))
}

/// Fails with how to get it when `taskset` (util-linux) is missing.
pub fn require_taskset() -> anyhow::Result<()> {
    match duct::cmd!("taskset", "--version").stdin_null().stdout_null().stderr_null().unchecked().run() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => bail!("`taskset --version` failed ({})", output.status),
        Err(err) => Err(err).context("`taskset` (util-linux) is needed to pin processes to cores"),
    }
}

/// Pins every thread of process `pid` to `cores` (a taskset list such as
/// `0` or `1-3`); threads it starts later inherit the pinning.
pub fn pin(pid: u32, cores: &str) -> anyhow::Result<()> {
    let output = duct::cmd!("taskset", "--all-tasks", "--cpu-list", "--pid", cores, pid.to_string())
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()
        .context("running taskset")?;
    if !output.status.success() {
        bail!("taskset could not pin process {pid} to CPU {cores}: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// The cores process `pid` may run on now, as a taskset list (`0,1`, `0-3`).
pub fn affinity(pid: u32) -> anyhow::Result<String> {
    let output = duct::cmd!("taskset", "--cpu-list", "--pid", pid.to_string())
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .context("running taskset")?;
    if !output.status.success() {
        bail!("taskset could not read the cores of process {pid}: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_affinity(&text).with_context(|| format!("unexpected taskset output: {text:?}"))
}

/// "pid 1715's current affinity list: 0,1" → "0,1".
fn parse_affinity(text: &str) -> Option<String> {
    let list = text.trim().rsplit_once(": ")?.1.trim();
    (!list.is_empty()).then(|| list.to_owned())
}

/// This process pinned to `cores` until the value is dropped, then let run
/// where it ran before, every thread: a command that measures on pinned
/// cores hands the machine back whole to what runs after it (CI's next step).
pub struct PinnedSelf {
    before: String,
}

impl PinnedSelf {
    pub fn to(cores: &str) -> anyhow::Result<PinnedSelf> {
        let before = affinity(std::process::id())?;
        pin(std::process::id(), cores)?;
        Ok(PinnedSelf { before })
    }
}

impl Drop for PinnedSelf {
    fn drop(&mut self) {
        if let Err(err) = pin(std::process::id(), &self.before) {
            eprintln!("warning: could not let this process run on CPU {} again: {err:#}", self.before);
        }
    }
}

/// The two sides of a measurement on this machine: the measured process's
/// core, and the cores for everything else.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cores {
    pub measured: usize,
    pub others: String,
}

impl Cores {
    /// The last core for what is measured, the rest for the others; at
    /// least two cores are needed.
    pub fn split(what: &str) -> anyhow::Result<Cores> {
        let cores = std::thread::available_parallelism().context("counting CPUs")?.get();
        if cores < 2 {
            bail!("{what} needs 2 CPUs or more: one for what is measured, one for the rest (found {cores})");
        }
        require_taskset()?;
        let others = if cores == 2 { "0".to_owned() } else { format!("0-{}", cores - 2) };
        Ok(Cores { measured: cores - 1, others })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_survive_odd_command_names() {
        let stat = "4242 (otel col) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 122 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_times(stat), Some((731, 122)));
        assert_eq!(parse_stat_times("4242 (cut) S 1"), None);
    }

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        let status = "Name:\tlineage\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(51_200));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn affinity_lists_are_read_from_taskset() {
        assert_eq!(parse_affinity("pid 1715's current affinity list: 0,1\n"), Some("0,1".to_owned()));
        assert_eq!(parse_affinity("pid 7's current affinity list: 0-3"), Some("0-3".to_owned()));
        assert_eq!(parse_affinity("nonsense"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(peak_rss_kib(pid).unwrap() > 0);
        assert!(cpu_seconds(u32::MAX).is_err(), "a process that does not exist is an error, not zero");
        assert!(load_average().unwrap() >= 0.0);
    }
}
