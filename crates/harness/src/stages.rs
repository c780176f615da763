//! The stages of the later steps: what each adds around the flow. A step names
//! its stage in `step.toml` (`stage = "…"`); steps 0–3 have none. Adding a
//! stage: its module, a variant of [`StageKind`] and of [`StageData`], and
//! its step's `step.toml`.

use serde::{Deserialize, Serialize};

use crate::stage::Stage;

/// Every stage a `step.toml` may name; serde rejects any other name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    TailSampling,
    Mesh,
    Browser,
    LongTrace,
}

impl StageKind {
    /// The stage as a step's check runs it.
    pub fn for_check(self) -> anyhow::Result<Box<dyn Stage>> {
        Ok(match self {
            StageKind::TailSampling => {
                Box::new(crate::tier::TierStage::new(crate::tier::Lesson::KeepWhatMatters, Default::default()))
            }
            StageKind::Mesh => Box::new(crate::mesh::MeshStage::new()),
            StageKind::Browser => Box::new(crate::browser::BrowserStage::new()?),
            StageKind::LongTrace => Box::new(crate::long_trace::LongTraceStage::check()),
        })
    }
}

/// What each stage measured, by stage: the book's tables read these fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum StageData {
    /// Step 4: the tier keeps the error, the slow trace and about 1% of the rest.
    Tier(crate::tier::TierData),
    /// Step 0's broken flow through step 4's tier.
    SamplingCannotRepair(crate::tier::CannotRepairData),
    Mesh(crate::mesh::MeshData),
    Browser(crate::browser::BrowserData),
    LongTrace(Box<crate::long_trace::LongTraceData>),
}
