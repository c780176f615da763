//! Where everything is: the checkout a command works on, its run directory,
//! and the component cache with what in it is current. Nothing here starts
//! anything, so `cargo xtask doctor` reads it without building the rest.

pub mod cached;
pub mod cgroup;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root of the checkout this run works on: the one that
/// invoked it (`cargo xtask` and `cargo test` set `CARGO_MANIFEST_DIR` to a
/// package of it), else the one around the current directory.
///
/// Exits with a message when there is none, or when this binary was built
/// from another checkout that still exists: cargo reuses a build across
/// checkouts that share a target directory, and that binary would read and
/// run the other checkout's steps and book.
pub fn project_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| match running_checkout() {
        Ok(root) => root,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2)
        }
    })
    .clone()
}

/// The checkout this binary's sources came from, as it was when built.
fn built_checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/paths sits two levels below the workspace root")
        .to_path_buf()
}

fn running_checkout() -> Result<PathBuf, String> {
    let invoked = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let current = std::env::current_dir().ok();
    let root = invoked.iter().chain(current.iter()).find_map(|start| workspace_root_above(start)).ok_or_else(|| {
        "not inside a Stitch checkout: run this from the workspace (the directory with `xtask/` and the \
             root Cargo.toml) or one of its subdirectories"
            .to_owned()
    })?;
    check_same_checkout(&root, &built_checkout())?;
    Ok(root)
}

/// The nearest directory at or above `start` that is a Stitch workspace root.
fn workspace_root_above(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| is_workspace_root(dir)).map(Path::to_path_buf)
}

fn is_workspace_root(dir: &Path) -> bool {
    dir.join("xtask").is_dir()
        && std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|manifest| manifest.lines().any(|line| line.trim() == "[workspace]"))
}

/// A checkout moved or cloned elsewhere and built there is fine (its
/// build-time path is itself, or gone). A build-time path that is another
/// checkout that still exists means cargo reused the other one's build.
fn check_same_checkout(running: &Path, built: &Path) -> Result<(), String> {
    if !is_workspace_root(built) {
        return Ok(());
    }
    let same = match (std::fs::canonicalize(running), std::fs::canonicalize(built)) {
        (Ok(running), Ok(built)) => running == built,
        _ => running == built,
    };
    if same {
        return Ok(());
    }
    Err(format!(
        "this binary was built from the checkout at {}, but was started for the checkout at {}: cargo reused \
         a build from the other checkout (a target directory shared between checkouts?). Build in this \
         checkout with a target directory of its own (unset CARGO_TARGET_DIR), then run it again.",
        built.display(),
        running.display()
    ))
}

/// Scratch space of runs: logs, broker data. Under `target/` so `cargo clean`
/// removes it and git never sees it.
pub fn run_dir() -> PathBuf {
    project_root().join("target").join("stitch")
}

/// Where downloaded components are cached between runs (Apache Kafka's jars).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("STITCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|dir| PathBuf::from(dir).join("stitch")))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("stitch")))
        .unwrap_or_else(|| run_dir().join("cache"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir.join("xtask")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[workspace]\nmembers = [\"xtask\"]\n").unwrap();
        dir.to_path_buf()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stitch-root-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_root_is_found_from_a_subdirectory_of_the_checkout() {
        let root = checkout(&scratch("found"));
        let deep = root.join("crates").join("paths").join("src");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(workspace_root_above(&deep), Some(root.clone()));
        std::fs::write(root.join("crates").join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert_eq!(workspace_root_above(&root.join("crates")), Some(root.clone()));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_build_from_another_existing_checkout_is_refused() {
        let (one, other) = (checkout(&scratch("one")), checkout(&scratch("other")));
        let error = check_same_checkout(&one, &other).unwrap_err();
        assert!(error.contains(&other.display().to_string()) && error.contains("reused"), "{error}");
        assert!(check_same_checkout(&one, &one).is_ok());
        // Moved away after the build: the old path is gone, the build is this checkout's.
        std::fs::remove_dir_all(&other).unwrap();
        assert!(check_same_checkout(&one, &other).is_ok());
        std::fs::remove_dir_all(one).unwrap();
    }

    #[test]
    fn this_checkout_is_its_own_root() {
        assert_eq!(project_root(), built_checkout());
    }
}
