//! Step 1: continue the trace across the HTTP hop.
//!
//! The lesson is in `src/http.rs`.

pub mod http;
pub use step_00_broken::messaging;
pub use step_00_broken::spawn; // still broken: step 2 // still broken: step 3

stitch_flow::boundaries!();
