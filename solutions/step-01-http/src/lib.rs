//! Step 1: continue the trace across the HTTP hop.
//!
//! The lesson is in `src/http.rs`.

pub mod http;

// Still broken here: the async hand-off (step 2) and the queue (step 3).
pub use step_00_broken::{messaging, spawn};

stitch_flow::boundaries!();
