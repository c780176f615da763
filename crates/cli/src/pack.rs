//! `cargo xtask deps` and `cargo xtask pack FILE`: a room of machines
//! prepared without each one asking the network. `deps` fetches or builds,
//! on this machine, everything a day of the workshop downloads: the
//! collector and Jaeger (Go module proxy), Envoy (PyPI), Apache Kafka's jars
//! (Maven Central, for step 3's `--kafka apache`), the page's npm packages
//! (npm), mdbook (crates.io), and every crate of the workspace's lockfiles
//! (crates.io). `pack` then writes what it fetched into one tar,
//! laid out as a home directory, so that on each attendee's machine
//!
//! ```sh
//! tar -xzf stitch-room.tar.gz -C ~
//! ```
//!
//! puts the component cache (`~/.cache/stitch`), cargo's registry
//! (`~/.cargo/registry`) and npm's cache (`~/.npm`) in place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use stitch_components::process;
use stitch_paths::project_root;

/// The crates.io source in a Cargo.lock.
const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// The workspaces whose lockfiles a day builds: the project, the embedded
/// broker and the two-versions trap (each a workspace of its own).
fn manifests() -> Vec<PathBuf> {
    let root = project_root();
    vec![
        root.join("Cargo.toml"),
        root.join("crates").join("broker").join("Cargo.toml"),
        root.join("traps").join("two-otel-versions").join("Cargo.toml"),
    ]
}

/// Where npm keeps its cache for `pack` (npm's own default is `~/.npm`).
fn npm_cache() -> PathBuf {
    stitch_paths::run_dir().join("pack").join("npm")
}

/// Fetches and builds everything a day needs, each once: what `deps` does.
pub fn fetch_all() -> anyhow::Result<()> {
    let step = |what: &str, started: Instant| eprintln!("deps: {what} ({:.0} s)", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let collector = stitch_components::otelcol::install_collector()?;
    step(&format!("collector {}", collector.display()), started);
    let started = Instant::now();
    let jaeger = stitch_components::otelcol::install_jaeger()?;
    step(&format!("Jaeger {}", jaeger.display()), started);
    let started = Instant::now();
    let envoy = stitch_components::envoy::install_envoy()?;
    step(&format!("Envoy {}", envoy.display()), started);
    let started = Instant::now();
    let kafka = stitch_components::kafka::install_apache_kafka(
        &stitch_components::kafka::default_cache_dir(),
        &stitch_components::kafka::infra_dir(),
    )?;
    step(&format!("Apache Kafka's jars {}", kafka.display()), started);
    let started = Instant::now();
    let mdbook = crate::book::mdbook()?;
    step(&format!("mdbook {}", mdbook.display()), started);
    let started = Instant::now();
    for manifest in manifests() {
        let status = process::cargo(&[&"fetch", &"--locked", &"--manifest-path", &manifest])
            .stdout_to_stderr()
            .unchecked()
            .run()
            .context("running cargo fetch")?
            .status;
        if !status.success() {
            bail!("`cargo fetch --locked --manifest-path {}` failed ({status})", manifest.display());
        }
    }
    step("the crates of every lockfile (cargo fetch)", started);
    let started = Instant::now();
    let frontend = project_root().join("frontend");
    let cache = npm_cache();
    let status = duct::cmd!("npm", "ci", "--no-audit", "--no-fund", "--cache", &cache)
        .dir(&frontend)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdout_to_stderr()
        .unchecked()
        .run()
        .context("running npm ci (step 7 needs Node.js 20+ and npm: `cargo xtask doctor`)")?
        .status;
    if !status.success() {
        bail!("`npm ci` in {} failed ({status})", frontend.display());
    }
    step(&format!("the page's npm packages ({})", cache.display()), started);
    Ok(())
}

/// `(name, version)` of every crates.io package in a Cargo.lock's text.
fn locked_crates(lock: &str) -> anyhow::Result<BTreeSet<(String, String)>> {
    #[derive(serde::Deserialize)]
    struct Lock {
        package: Vec<Package>,
    }
    #[derive(serde::Deserialize)]
    struct Package {
        name: String,
        version: String,
        source: Option<String>,
    }
    let lock: Lock = toml::from_str(lock).context("parsing a Cargo.lock")?;
    Ok(lock
        .package
        .into_iter()
        .filter(|package| package.source.as_deref() == Some(CRATES_IO))
        .map(|package| (package.name, package.version))
        .collect())
}

/// Where cargo's sparse index keeps a crate's entry: `se/rd/serde`,
/// `3/s/syn`, `2/io`, `1/a`.
fn index_path(name: &str) -> PathBuf {
    let name = name.to_ascii_lowercase();
    match name.len() {
        1 => Path::new("1").join(&name),
        2 => Path::new("2").join(&name),
        3 => Path::new("3").join(&name[..1]).join(&name),
        _ => Path::new(&name[..2]).join(&name[2..4]).join(&name),
    }
}

fn cargo_home() -> anyhow::Result<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set: where is cargo's registry?")
}

/// The one directory under `dir` whose name starts with `prefix`
/// (`index.crates.io-…`).
fn only_dir(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(prefix)))
        .collect();
    match found.as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!("no {prefix}* under {}: run `cargo xtask deps` first", dir.display()),
        _ => bail!("several {prefix}* under {}: which one does cargo use?", dir.display()),
    }
}

/// Hard-links (or, across file systems, copies) `from` to `to`.
fn place(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// `from`'s tree, placed under `to`.
fn place_tree(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut bytes = 0;
    let mut pending = vec![from.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let target = to.join(path.strip_prefix(from)?);
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                place(&path, &target)?;
                bytes += meta.len();
            }
        }
    }
    Ok(bytes)
}

const MIB: f64 = 1024.0 * 1024.0;

/// `cargo xtask pack FILE`: fetches what is missing, then writes the tar.
pub fn run(out: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    fetch_all()?;
    let fetched = started.elapsed();
    let staging = stitch_paths::run_dir().join("pack").join("home");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    let mut parts = Vec::new();

    let cache = stitch_paths::cache_dir();
    parts.push(("the component cache, .cache/stitch", place_tree(&cache, &staging.join(".cache").join("stitch"))?));

    let registry = cargo_home()?.join("registry");
    let index = only_dir(&registry.join("index"), "index.crates.io-")?;
    let crates = only_dir(&registry.join("cache"), "index.crates.io-")?;
    let to_index = staging.join(".cargo/registry/index").join(index.file_name().context("an index dir")?);
    let to_crates = staging.join(".cargo/registry/cache").join(crates.file_name().context("a cache dir")?);
    let mut locked = BTreeSet::new();
    for manifest in manifests() {
        let lock = manifest.with_file_name("Cargo.lock");
        let text = std::fs::read_to_string(&lock).with_context(|| format!("reading {}", lock.display()))?;
        locked.extend(locked_crates(&text).with_context(|| format!("in {}", lock.display()))?);
    }
    let mut bytes = 0;
    place(&index.join("config.json"), &to_index.join("config.json"))?;
    for (name, version) in &locked {
        let file = format!("{name}-{version}.crate");
        place(&crates.join(&file), &to_crates.join(&file))
            .with_context(|| format!("{file} is not in cargo's cache: run `cargo xtask deps` first"))?;
        bytes += std::fs::metadata(crates.join(&file))?.len();
        let entry = Path::new(".cache").join(index_path(name));
        if !to_index.join(&entry).exists() {
            place(&index.join(&entry), &to_index.join(&entry))
                .with_context(|| format!("cargo's index has no entry for {name}: run `cargo xtask deps` first"))?;
        }
    }
    parts.push(("the workspace's crates, .cargo/registry", bytes));
    parts.push(("the page's npm packages, .npm", place_tree(&npm_cache(), &staging.join(".npm"))?));

    let packing = Instant::now();
    let status = duct::cmd!("tar", "-czf", out, "-C", &staging, ".")
        .unchecked()
        .run()
        .context("running tar (GNU or BSD tar, with gzip)")?
        .status;
    if !status.success() {
        bail!("tar failed ({status}) writing {}", out.display());
    }
    std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    let size = std::fs::metadata(out).with_context(|| format!("reading {}", out.display()))?.len();
    println!("\nwrote {} ({:.0} MiB):", out.display(), size as f64 / MIB);
    for (what, bytes) in &parts {
        println!("  {:>6.0} MiB  {what} (before compression)", *bytes as f64 / MIB);
    }
    println!("  {} crates from {} lockfiles", locked.len(), manifests().len());
    println!(
        "fetching took {:.0} s (nothing to fetch when cached), packing {:.0} s",
        fetched.as_secs_f64(),
        packing.elapsed().as_secs_f64()
    );
    println!(
        "\nOn each machine, with the same checkout: tar -xzf {} -C ~\n\
         Then, without network, `export CARGO_NET_OFFLINE=true` keeps cargo from asking for it.",
        out.file_name().map_or_else(|| out.display().to_string(), |name| name.to_string_lossy().into_owned())
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_follow_cargos_layout() {
        assert_eq!(index_path("serde"), Path::new("se/rd/serde"));
        assert_eq!(index_path("syn"), Path::new("3/s/syn"));
        assert_eq!(index_path("io"), Path::new("2/io"));
        assert_eq!(index_path("a"), Path::new("1/a"));
        assert_eq!(index_path("Inflector"), Path::new("in/fl/inflector"));
    }

    #[test]
    fn only_crates_io_packages_are_fetched() {
        let lock = r#"
version = 4

[[package]]
name = "serde"
version = "1.0.228"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "stitch-flow"
version = "0.1.0"
"#;
        let crates = locked_crates(lock).unwrap();
        assert_eq!(crates, BTreeSet::from([("serde".to_owned(), "1.0.228".to_owned())]));
        assert!(locked_crates("version = 4\n").is_err(), "a lockfile without packages is an error");
    }

    #[test]
    fn every_lockfile_a_day_builds_is_there() {
        for manifest in manifests() {
            let lock = manifest.with_file_name("Cargo.lock");
            let crates = locked_crates(&std::fs::read_to_string(&lock).unwrap()).unwrap();
            assert!(!crates.is_empty(), "{}", lock.display());
        }
    }
}
