//! The broken baseline: all three boundaries lose the trace.
//!
//! Nothing to edit here: run it, and read where the trace breaks.

pub mod http;
pub mod spawn;
pub mod messaging;

stitch_flow::boundaries!();
