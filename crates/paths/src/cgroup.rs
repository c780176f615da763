//! Where the kernel's memory controller is, and whether this process may
//! make cgroups under it: what step 8's hard memory limit needs. Read from
//! `/proc`, so `cargo xtask doctor` can say it before anything is built;
//! the cgroups themselves are `stitch-components`' (`cgroup.rs`).

use std::path::{Path, PathBuf};

/// Which cgroup interface holds the memory controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        })
    }
}

/// Where the memory controller is mounted, from the text of `/proc/self/mounts`.
/// v2 counts only where its root lists `memory` in `cgroup.controllers`
/// (`controllers` reads that file): a hybrid machine mounts v2 without it.
pub fn find_controller(mounts: &str, controllers: impl Fn(&Path) -> Option<String>) -> Option<(Version, PathBuf)> {
    let mut v1 = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, mount_point, kind, options, ..] = fields[..] else { continue };
        let mount_point = PathBuf::from(mount_point);
        match kind {
            "cgroup2" => {
                let listed = controllers(&mount_point.join("cgroup.controllers"));
                if listed.is_some_and(|text| text.split_whitespace().any(|name| name == "memory")) {
                    return Some((Version::V2, mount_point));
                }
            }
            "cgroup" if options.split(',').any(|option| option == "memory") => v1 = Some((Version::V1, mount_point)),
            _ => {}
        }
    }
    v1
}

/// The effective user id, from the text of `/proc/self/status` (`Uid:` real,
/// effective, saved, filesystem).
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// What this machine offers a hard memory limit: the controller and whether
/// a cgroup can be made under it, or why not. Makes a probe cgroup and
/// removes it at once; writes nothing else.
pub fn memory_limit_probe() -> Result<(Version, PathBuf), String> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").map_err(|err| format!("reading /proc/self/mounts: {err}"))?;
    let (version, root) = find_controller(&mounts, |path| std::fs::read_to_string(path).ok())
        .ok_or_else(|| "no cgroup memory controller is mounted (neither cgroup v1's nor v2's)".to_owned())?;
    let root_user = std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(effective_uid) == Some(0);
    let who = if root_user { "root" } else { "not root" };
    if version == Version::V2 {
        // The check hands the controller down from here; opening for writing writes nothing.
        let subtree = root.join("cgroup.subtree_control");
        std::fs::OpenOptions::new().write(true).open(&subtree).map_err(|err| {
            format!("{version} at {}: {} is not writable ({who}): {err}", root.display(), subtree.display())
        })?;
    }
    let probe = root.join(format!("stitch-doctor-{}", std::process::id()));
    std::fs::create_dir(&probe)
        .map_err(|err| format!("{version} at {}: cannot make a cgroup there ({who}): {err}", root.display()))?;
    std::fs::remove_dir(&probe).map_err(|err| format!("removing the probe cgroup {}: {err}", probe.display()))?;
    Ok((version, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n\
        cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

    #[test]
    fn a_hybrid_machine_uses_v1_when_v2_has_no_memory_controller() {
        let found = find_controller(HYBRID, |_| Some(String::new()));
        assert_eq!(found, Some((Version::V1, PathBuf::from("/sys/fs/cgroup/memory"))));
    }

    #[test]
    fn v2_wins_where_it_offers_memory() {
        let mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        let found = find_controller(mounts, |path| {
            assert_eq!(path, Path::new("/sys/fs/cgroup/cgroup.controllers"));
            Some("cpuset cpu io memory pids".to_owned())
        });
        assert_eq!(found, Some((Version::V2, PathBuf::from("/sys/fs/cgroup"))));
        assert_eq!(find_controller(HYBRID, |_| Some("memory".to_owned())).map(|f| f.0), Some(Version::V2));
    }

    #[test]
    fn no_memory_controller_is_none() {
        let mounts = "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\nproc /proc proc rw 0 0\n";
        assert_eq!(find_controller(mounts, |_| None), None);
    }

    #[test]
    fn reads_the_effective_uid() {
        assert_eq!(effective_uid("Name:\tcat\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n"), Some(0));
        assert_eq!(effective_uid("Uid:\t1000\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tcat\n"), None);
    }
}
