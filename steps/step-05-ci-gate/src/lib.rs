//! Step 5: the CI gate's assertions, judged on recorded runs of the flow.
//!
//! The lesson is in `src/gate.rs`; `src/main.rs` is the judge that
//! `cargo xtask check step-5` runs on each recorded flow.

pub mod gate;
pub mod judge;
