//! The judges: each a pure function from what a run measured (the typed
//! record of `stitch-model`) to a verdict and the messages that explain it.
//! They start nothing and read no file, so each is unit-tested on hand-made
//! runs.

pub mod chain;
pub mod flow;
pub mod gate;
pub mod stage;
pub mod verdict;

pub use verdict::{Verdict, judge, percent};
