//! The stages of the later steps: what each adds around the flow. A step names
//! its stage in `step.toml` (`stage = "…"`); steps 0–3 have none.

use crate::check::Stage;
use crate::step::Step;

/// Every stage a `step.toml` may name.
pub const NAMES: &[&str] = &["mesh", "tail-sampling", "browser", "long-trace"];

/// The stage a step runs with, if any.
pub fn for_step(step: &Step, solution: bool) -> anyhow::Result<Option<Box<dyn Stage>>> {
    let _ = solution;
    match step.meta.stage.as_deref() {
        None => Ok(None),
        Some("tail-sampling") => {
            Ok(Some(Box::new(crate::tier::TierStage::new(crate::tier::Lesson::KeepWhatMatters, Default::default()))))
        }
        Some("mesh") => Ok(Some(Box::new(crate::mesh::MeshStage::new()))),
        Some("browser") => Ok(Some(Box::new(crate::browser::BrowserStage::new()?))),
        Some("long-trace") => Ok(Some(Box::new(crate::long_trace::LongTraceStage::check()))),
        Some(other) => anyhow::bail!("{}: unknown stage {other:?}", step.name),
    }
}
