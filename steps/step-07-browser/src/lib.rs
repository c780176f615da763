//! Step 7: the trace starts in the browser; the gateway decides whom to continue.
//!
//! The lesson is in `src/edge.rs`.

pub mod edge;
pub use step_01_http_solution::http; // fixed in step 1
pub use step_02_async_solution::spawn; // fixed in step 2
pub use step_03_kafka_solution::messaging; // fixed in step 3
pub use step_04_tail_sampling_solution::status; // fixed in step 4

stitch_flow::boundaries!(status = status, edge = edge);
