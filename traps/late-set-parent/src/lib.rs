//! Silent failure 4: `set_parent` too late.
//!
//! The final solution, except at the worker's side of the HTTP hop: the
//! caller's context is set as the parent from inside the request's span, as a
//! handler calling `Span::current().set_parent(cx)` would. Entering the span
//! started it, so `set_parent` returns `Err(AlreadyStarted)`; the error is
//! logged, the request succeeds, and the worker's server span is the root of a
//! new trace every time.
//!
//! Runs like a step: `trap-late-set-parent gateway|worker|consumer`.

pub mod http;
pub use step_02_async_solution::spawn; // as in the final solution
pub use step_03_kafka_solution::messaging; // as in the final solution

stitch_flow::boundaries!();
