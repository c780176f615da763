//! Runs the workshop: starts what a step needs (Kafka, lineage, the step's
//! three services), drives requests through them, waits for the traces to
//! settle and judges lineage's numbers against the step's targets.
//!
//! `cargo xtask` is a thin command line over this crate; the CI gate tests use
//! it directly.

pub mod browser;
pub mod check;
pub mod gate;
pub mod hints;
pub mod kafka;
pub mod long_trace;
pub mod mesh;
pub mod otelcol;
pub mod process;
pub mod stages;
pub mod step;
pub mod tier;
pub mod verdict;

use std::path::{Path, PathBuf};

/// The workspace root, found from this crate's manifest directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/harness sits two levels below the workspace root")
        .to_path_buf()
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
