//! Step 2: carry the context across the in-process async hand-off.
//!
//! The lesson is in `src/spawn.rs`.

pub mod spawn;

// Fixed in step 1.
pub use step_01_http_solution::http;

// Still broken here: the queue (step 3).
pub use step_00_broken::messaging;

stitch_flow::boundaries!();
