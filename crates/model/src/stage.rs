//! What each stage of the later steps measured. A step names its stage in
//! `step.toml` (`stage = "…"`); steps 0–3 have none. [`StageKind`], the name
//! a `step.toml` gives a stage, is derived from [`StageData`]: a new stage is
//! one variant here, its module in the runner and its judge.

pub mod browser;
pub mod long_trace;
pub mod mesh;
pub mod tier;

use serde::{Deserialize, Serialize};
use strum::{EnumDiscriminants, IntoStaticStr};

/// What each stage measured, by stage: the book's tables read these fields.
/// Its discriminants are [`StageKind`], each named in kebab case
/// (`tail-sampling`); serde rejects any other name in a `step.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, EnumDiscriminants)]
#[serde(tag = "stage", rename_all = "kebab-case")]
#[strum_discriminants(
    name(StageKind),
    derive(Serialize, Deserialize, IntoStaticStr),
    serde(rename_all = "kebab-case"),
    strum(serialize_all = "kebab-case")
)]
pub enum StageData {
    /// Step 4: the tier keeps the error, the slow trace and about 1% of the rest.
    TailSampling(tier::TierData),
    /// Step 0's broken flow through step 4's tier (`cargo xtask
    /// sampling-cannot-repair`): a measurement, not a step's stage.
    #[strum_discriminants(serde(skip_deserializing))]
    SamplingCannotRepair(tier::CannotRepairData),
    Mesh(mesh::MeshData),
    Browser(browser::BrowserData),
    LongTrace(Box<long_trace::LongTraceData>),
}

impl StageKind {
    /// The name a `step.toml` gives the stage.
    pub fn name(self) -> &'static str {
        self.into()
    }
}
