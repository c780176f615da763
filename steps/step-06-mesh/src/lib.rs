//! Step 6: an Envoy sidecar in front of the worker. The flow is the fixed
//! one of step 3; the lesson is Envoy's configuration, `envoy.yaml` beside
//! this crate's `Cargo.toml`, which the check starts Envoy with.

pub use step_01_http_solution::http; // fixed in step 1
pub use step_02_async_solution::spawn; // fixed in step 2
pub use step_03_kafka_solution::messaging; // fixed in step 3
pub use step_04_tail_sampling_solution::status; // fixed in step 4

stitch_flow::boundaries!(status = status);
