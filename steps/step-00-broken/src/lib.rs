//! The broken baseline: all three boundaries lose the trace.
//!
//! Nothing to edit here: run it, and read where the trace breaks.

pub mod http;
pub mod messaging;
pub mod spawn;

stitch_flow::boundaries!();
