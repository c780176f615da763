//! The stages of the later steps: what each adds around the flow, and what
//! each measured. A step names its stage in `step.toml` (`stage = "…"`);
//! steps 0–3 have none. Adding a stage: its module, a variant of
//! [`StageData`] (its measured data; [`StageKind`], the name a `step.toml`
//! gives it, is derived from it), the arm of [`StageKind::for_check`] the
//! compiler then asks for, and its step's `step.toml`.

use serde::{Deserialize, Serialize};
use strum::{EnumDiscriminants, IntoStaticStr};

use crate::stage::Stage;

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
    TailSampling(crate::tier::TierData),
    /// Step 0's broken flow through step 4's tier (`cargo xtask
    /// sampling-cannot-repair`): a measurement, not a step's stage.
    #[strum_discriminants(serde(skip_deserializing))]
    SamplingCannotRepair(crate::tier::CannotRepairData),
    Mesh(crate::mesh::MeshData),
    Browser(crate::browser::BrowserData),
    LongTrace(Box<crate::long_trace::LongTraceData>),
}

impl StageKind {
    /// The name a `step.toml` gives the stage.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The stage as a step's check runs it, for the crate in `crate_dir`
    /// (a lesson may be a file the stage reads, e.g. step 4's sampling.yaml).
    pub fn for_check(self, crate_dir: &std::path::Path) -> anyhow::Result<Box<dyn Stage>> {
        Ok(match self {
            StageKind::TailSampling => {
                let options = match crate::tier::LearnerSampling::find(crate_dir)? {
                    Some(sampling) => crate::tier::TierOptions::with_learner_sampling(&sampling),
                    None => crate::tier::TierOptions::default(),
                };
                Box::new(crate::tier::TierStage::new(crate::tier::Lesson::KeepWhatMatters, options))
            }
            StageKind::SamplingCannotRepair => {
                anyhow::bail!(
                    "sampling-cannot-repair is not a step's stage: `cargo xtask sampling-cannot-repair` runs it"
                )
            }
            StageKind::Mesh => Box::new(crate::mesh::MeshStage::new()),
            StageKind::Browser => Box::new(crate::browser::BrowserStage::new(crate_dir)?),
            StageKind::LongTrace => Box::new(crate::long_trace::LongTraceStage::check()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_is_named_as_step_toml_names_it() {
        for kind in [StageKind::TailSampling, StageKind::Mesh, StageKind::Browser, StageKind::LongTrace] {
            let parsed: StageKind = serde_json::from_value(serde_json::json!(kind.name())).expect("a known name");
            assert_eq!(parsed, kind);
        }
        assert_eq!(StageKind::TailSampling.name(), "tail-sampling");
        // A measurement of its own, not a stage a step may name.
        assert!(serde_json::from_value::<StageKind>(serde_json::json!("sampling-cannot-repair")).is_err());
        assert!(serde_json::from_value::<StageKind>(serde_json::json!("tier")).is_err());
    }

    #[test]
    fn stage_data_is_tagged_with_its_stage() {
        let data = StageData::Browser(crate::browser::BrowserData {
            orders: 4,
            accepted: 4,
            same_origin_continued: 4,
            allowlisted: crate::browser::AllowlistedCalls { requests: 4, preflights: 1, with_page_traceparent: 4 },
            third_party: crate::browser::ThirdPartyCalls { requests: 4, with_traceparent: 0 },
            allowlisted_without_cors: crate::browser::BlockedCalls { preflights: 1, requests: 0, blocked_in_page: 4 },
            one_trace: 4,
            untrusted: crate::browser::UntrustedCallers { sent: 2, linked: 2, continued: 0 },
            page_screenshot: None,
        });
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json["stage"], "browser");
        assert_eq!(json["one_trace"], 4);
        let back: StageData = serde_json::from_value(json.clone()).unwrap();
        assert!(matches!(back, StageData::Browser(browser) if browser.one_trace == 4));
        // A field the stage no longer writes is an error, not a zero.
        let mut renamed = json;
        let one_trace = renamed.as_object_mut().unwrap().remove("one_trace").unwrap();
        renamed["whole_traces"] = one_trace;
        let error = serde_json::from_value::<StageData>(renamed).unwrap_err().to_string();
        assert!(error.contains("one_trace"), "{error}");
    }
}
