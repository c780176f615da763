//! The runner: runs a step end to end. It starts what the step needs (the
//! broker, lineage, the step's three services, its stage's parts), drives
//! requests through them, waits for the traces to settle and measures what
//! lineage and the stage saw into the typed record of `stitch-model`. It
//! judges nothing itself: `stitch-judge` does.
//!
//! `cargo xtask` is a command line over this crate; the tests use it directly.

pub mod browser;
pub mod check;
pub mod flow;
pub mod gate_flows;
pub mod gate_judge;
pub mod gateway;
pub mod lesson;
pub mod long_trace;
pub mod mesh;
pub mod probes;
pub mod sdk_export;
pub mod service_logs;
pub mod services;
pub mod snapshot;
pub mod stage;
pub mod stages;
pub mod step;
pub mod tier;

pub use stitch_components::{cache_dir, project_root, run_dir};
// The components, under the names the runner's modules use.
use stitch_components::{cgroup, envoy, kafka, otelcol, process};
