//! Step 2: carry the context across the in-process async hand-off.
//!
//! The lesson is in `src/spawn.rs`.

pub mod spawn;
pub use step_00_broken::messaging;
pub use step_01_http_solution::http; // fixed in step 1 // still broken: step 3

stitch_flow::boundaries!();
