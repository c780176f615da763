//! A memory cgroup: a hard memory limit the kernel enforces on the processes
//! in it, and what the kernel did about it (its OOM kills, its peak usage).
//!
//! Works with cgroup v1's memory controller and with cgroup v2, whichever
//! the machine mounts with memory control (read from `/proc/self/mounts` at
//! run time). Each cgroup lives under a `stitch` parent and is removed when
//! dropped, after its processes are killed.

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

// Where the memory controller is, read the same way by `cargo xtask doctor`.
pub use stitch_paths::cgroup::{Version, find_controller};

/// The parent of every cgroup the harness creates, under the controller's root.
const PARENT: &str = "stitch";

/// What to tell someone whose machine gives the harness no memory cgroup.
const INSTEAD: &str = "run it as root on Linux with cgroup v1's memory controller mounted \
     (/sys/fs/cgroup/memory) or cgroup v2 with the memory controller available, \
     e.g. `sudo -E env \"PATH=$PATH\" cargo xtask check step-8` (`cargo xtask doctor` checks this machine)";

/// The counter after `key` in a flat keyed file (`memory.events`,
/// `memory.oom_control`): lines of `key value`.
pub fn keyed_counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// One memory cgroup, removed on drop.
#[derive(Debug)]
pub struct MemoryCgroup {
    pub version: Version,
    dir: PathBuf,
    parent: PathBuf,
}

impl MemoryCgroup {
    /// Creates `stitch/<name>-<pid>` under the machine's memory controller,
    /// with no limit yet.
    pub fn create(name: &str) -> Result<MemoryCgroup> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
        let Some((version, root)) = find_controller(&mounts, |path| std::fs::read_to_string(path).ok()) else {
            bail!("no cgroup memory controller is mounted here: a hard memory limit needs one; {INSTEAD}");
        };
        let parent = root.join(PARENT);
        let made = || -> Result<PathBuf> {
            if version == Version::V2 {
                // Children get the memory controller only when each ancestor
                // hands it down.
                write(&root.join("cgroup.subtree_control"), "+memory")?;
            }
            match std::fs::create_dir(&parent) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err).with_context(|| format!("creating {}", parent.display())),
            }
            if version == Version::V2 {
                write(&parent.join("cgroup.subtree_control"), "+memory")?;
            }
            remove_abandoned(&parent);
            let dir = parent.join(format!("{name}-{}", std::process::id()));
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(dir)
        };
        let dir = made().with_context(|| {
            format!("the {version} memory controller at {} is not writable; {INSTEAD}", root.display())
        })?;
        Ok(MemoryCgroup { version, dir, parent })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hard limit, in bytes, swap included where the kernel accounts it:
    /// past it the kernel reclaims, then kills.
    pub fn set_limit(&self, bytes: u64) -> Result<()> {
        match self.version {
            Version::V1 => {
                write(&self.dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                let memsw = self.dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &bytes.to_string())?;
                }
            }
            Version::V2 => {
                write(&self.dir.join("memory.max"), &bytes.to_string())?;
                let swap = self.dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
            }
        }
        Ok(())
    }

    /// The limit in force, in bytes.
    pub fn limit(&self) -> Result<u64> {
        match self.version {
            Version::V1 => read_number(&self.dir.join("memory.limit_in_bytes")),
            Version::V2 => read_number(&self.dir.join("memory.max")),
        }
    }

    /// Moves a running process in. Memory it already holds stays charged
    /// where it was: start a process inside with [`MemoryCgroup::join_on_exec`].
    pub fn add(&self, pid: u32) -> Result<()> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    /// A `duct` `before_spawn` hook: the child joins this cgroup before it
    /// runs the program (see [`join_on_exec`]).
    pub fn join_on_exec(
        &self,
    ) -> Result<impl Fn(&mut std::process::Command) -> std::io::Result<()> + Send + Sync + 'static> {
        join_on_exec(&self.dir)
    }

    /// The pids in the cgroup now.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let text = read(&self.dir.join("cgroup.procs"))?;
        text.lines()
            .map(|line| line.trim().parse().with_context(|| format!("a pid {line:?} in cgroup.procs")))
            .collect()
    }

    /// Bytes charged now (page cache included).
    pub fn usage(&self) -> Result<u64> {
        match self.version {
            Version::V1 => read_number(&self.dir.join("memory.usage_in_bytes")),
            Version::V2 => read_number(&self.dir.join("memory.current")),
        }
    }

    /// The most ever charged.
    pub fn peak(&self) -> Result<u64> {
        match self.version {
            Version::V1 => read_number(&self.dir.join("memory.max_usage_in_bytes")),
            Version::V2 => read_number(&self.dir.join("memory.peak")),
        }
    }

    /// Processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> Result<u64> {
        let file = match self.version {
            Version::V1 => self.dir.join("memory.oom_control"),
            Version::V2 => self.dir.join("memory.events"),
        };
        let text = read(&file)?;
        keyed_counter(&text, "oom_kill").with_context(|| {
            format!("{} has no oom_kill counter (a kernel older than 4.13?): {text:?}", file.display())
        })
    }

    /// Kills whatever is left inside, then removes the cgroup (and the
    /// parent, when no other run uses it).
    fn remove(&self) -> Result<()> {
        let every = Duration::from_millis(20);
        let emptied = crate::process::poll(Duration::from_secs(5), every, || {
            let pids = self.pids()?;
            for &pid in &pids {
                // SAFETY: kill(2) with a pid read from our own cgroup.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
            anyhow::Ok(pids.is_empty().then_some(()))
        })?;
        if emptied.is_none() {
            bail!("{} still holds processes after SIGKILL", self.dir.display());
        }
        // The kernel may take a moment to release a cgroup whose last
        // process just died.
        let mut last = None;
        let Ok(removed) =
            crate::process::poll(Duration::from_secs(5), every, || match std::fs::remove_dir(&self.dir) {
                Ok(()) => Ok::<_, std::convert::Infallible>(Some(())),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Some(())),
                Err(err) => {
                    last = Some(err);
                    Ok(None)
                }
            });
        if let (None, Some(err)) = (removed, last) {
            return Err(err).with_context(|| format!("removing {}", self.dir.display()));
        }
        // Another run's cgroup keeps the parent busy: that run removes it.
        let _ = std::fs::remove_dir(&self.parent);
        Ok(())
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        if let Err(err) = self.remove() {
            eprintln!("warning: {err:#}");
        }
    }
}

/// Removes the cgroups of runs that ended without removing theirs (killed,
/// or interrupted with Ctrl-C): empty, and named after a pid that is gone.
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit_once('-').and_then(|(_, pid)| pid.parse::<u32>().ok()) else { continue };
        let empty =
            std::fs::read_to_string(entry.path().join("cgroup.procs")).is_ok_and(|procs| procs.trim().is_empty());
        if empty && !Path::new(&format!("/proc/{pid}")).exists() {
            // Another run may be removing it at the same moment.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// A `duct` `before_spawn` hook: the child joins the cgroup at `dir` before
/// it runs the program, so everything it ever allocates is charged there.
pub fn join_on_exec(
    dir: &Path,
) -> Result<impl Fn(&mut std::process::Command) -> std::io::Result<()> + Send + Sync + 'static> {
    let procs = CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes())
        .context("a cgroup path with a NUL byte")?;
    Ok(move |command: &mut std::process::Command| {
        let procs = procs.clone();
        // SAFETY: between fork and exec only open(2), write(2) and close(2)
        // run, on memory allocated before the fork; "0" is the writer itself.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = std::io::Error::last_os_error();
                libc::close(fd);
                if written != 1 {
                    return Err(error);
                }
                Ok(())
            });
        }
        Ok(())
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn read_number(path: &Path) -> Result<u64> {
    let text = read(path)?;
    match text.trim() {
        "max" => Ok(u64::MAX),
        number => number.parse().with_context(|| format!("{}: {number:?} is not a number", path.display())),
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_oom_kill_counter_of_either_version() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed_counter(v1, "oom_kill"), Some(3));
        assert_eq!(keyed_counter(v2, "oom_kill"), Some(2));
        assert_eq!(keyed_counter(v2, "oom_kill_disable"), None);
    }

    /// Really creates a cgroup, runs a child that allocates 64 MiB under a
    /// 16 MiB limit and sees the kernel kill it. Needs root and a memory
    /// controller; without them it says why it did not run.
    #[test]
    fn a_child_over_the_limit_is_oom_killed_and_counted() {
        use std::os::unix::process::ExitStatusExt as _;
        let cgroup = match MemoryCgroup::create("unit-test-oom") {
            Ok(cgroup) => cgroup,
            Err(err) if unsafe { libc::geteuid() } != 0 => {
                eprintln!("SKIPPED a_child_over_the_limit_is_oom_killed_and_counted (not root): {err:#}");
                return;
            }
            Err(err) => panic!("{err:#}"),
        };
        cgroup.set_limit(16 << 20).unwrap();
        assert_eq!(cgroup.limit().unwrap(), 16 << 20);
        assert_eq!(cgroup.oom_kills().unwrap(), 0);
        // The shell holds the whole 64 MiB string it reads.
        let output = duct::cmd!("sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' x); echo ${#x}")
            .before_spawn(cgroup.join_on_exec().unwrap())
            .stdout_capture()
            .unchecked()
            .run()
            .unwrap();
        assert!(!output.status.success(), "the child fit in 16 MiB: {output:?}");
        assert!(cgroup.oom_kills().unwrap() >= 1, "no OOM kill counted; status {:?}", output.status);
        assert!(cgroup.peak().unwrap() <= 16 << 20);
        // The shell that held the string was killed: it never printed its length.
        assert!(output.stdout.is_empty());
        assert_eq!(output.status.signal(), Some(libc::SIGKILL));
        let dir = cgroup.dir().to_owned();
        drop(cgroup);
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}
