//! Step 8: the long-running trace.
//!
//! The flow is the fixed one of step 3 behind step 4's tail-sampling tier,
//! with a batch job on the worker that runs far longer than the tier waits
//! before it decides. The lesson is in `src/batch.rs`.

pub mod batch;
pub use step_01_http_solution::http; // fixed in step 1
pub use step_02_async_solution::spawn; // fixed in step 2
pub use step_03_kafka_solution::messaging; // fixed in step 3
pub use step_04_tail_sampling_solution::status; // fixed in step 4

stitch_flow::boundaries!(status = status, batch = batch);
