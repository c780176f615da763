//! Step 6: an Envoy sidecar in front of the worker. The mesh carries the HTTP
//! hop; the Kafka queue is still the application's job.
//!
//! The lesson is in `src/messaging.rs`.

pub mod messaging;
pub use step_01_http_solution::http; // fixed in step 1
pub use step_02_async_solution::spawn; // fixed in step 2
pub use step_04_tail_sampling_solution::status; // fixed in step 4

stitch_flow::boundaries!(status = status);
