//! Step 4: the tail-sampling tier keeps what matters, if it can see it.
//!
//! The flow is the fixed one of step 3; its spans now cross a tier of
//! collectors that keeps errors, slow traces and 1% of the rest. The lesson is
//! in `src/status.rs`.

pub mod status;
pub use step_01_http_solution::http; // fixed in step 1
pub use step_02_async_solution::spawn; // fixed in step 2
pub use step_03_kafka_solution::messaging; // fixed in step 3

stitch_flow::boundaries!(status = status);
