//! The record of a run: what the runner measured, typed, and nothing else.
//!
//! The runner (`stitch-runner`) writes it, the judges (`stitch-judge`) read it,
//! and step 5's learner reads recorded runs of it. It holds no code that
//! starts, measures or judges anything.

pub mod chain;
pub mod fixtures;
pub mod gate;
pub mod hints;
pub mod hop;
pub mod mistakes;
pub mod rate;
pub mod run;
pub mod sampling;
pub mod stage;
pub mod step;

pub use chain::EXPECTED_CHAIN;
pub use gate::{Baseline, GateCheck, JudgedFlow, Judgement, ORPHAN_RATE_LIMIT};
pub use hop::{Hop, SpanKind};
pub use rate::percent;
pub use run::{
    CheckRun, ExportCounts, LogLine, MessageSample, Order, ProbeOutcome, Probes, RequestShape, RequestSpan,
    ServiceExport, ServiceLog,
};
pub use stage::{StageData, StageKind};
pub use step::{Expectation, JudgeKind, Step, StepMeta, Targets};
pub use stitch_flow::Role;
