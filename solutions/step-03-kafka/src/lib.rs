//! Step 3: carry the context through the Kafka queue.
//!
//! The lesson is in `src/messaging.rs`.

pub mod messaging;
pub use step_01_http_solution::http; // fixed in step 1
pub use step_02_async_solution::spawn; // fixed in step 2

stitch_flow::boundaries!();
