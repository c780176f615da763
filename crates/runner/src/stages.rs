//! The stages of the later steps, as a step's check runs them. A step names
//! its stage in `step.toml` (`stage = "…"`); steps 0–3 have none. Adding a
//! stage: a variant of [`StageData`] (in `stitch-model`; [`StageKind`] is
//! derived from it), its module here, which measures into that variant and
//! judges nothing, the arm of [`for_check`] the compiler then asks for, its
//! judge in `stitch_judge::stage`, and its step's `step.toml`.

pub use stitch_model::{StageData, StageKind};

use anyhow::Context as _;

use crate::stage::Stage;

/// The stage as a step's check runs it, for the crate in `crate_dir`
/// (a lesson may be a file the stage reads: step 4's sampling.yaml, step
/// 6's envoy.yaml, step 7's allowlist.js).
pub fn for_check(kind: StageKind, crate_dir: &std::path::Path) -> anyhow::Result<Box<dyn Stage>> {
    Ok(match kind {
        StageKind::TailSampling => {
            let sampling = crate::tier::LearnerSampling::find(crate_dir)?.with_context(|| {
                format!(
                    "{} has no {}: the tier's settings are its lesson",
                    crate_dir.display(),
                    crate::tier::SAMPLING_FILE
                )
            })?;
            let options = crate::tier::TierOptions::with_learner_sampling(&sampling);
            Box::new(crate::tier::TierStage::new(crate::tier::Lesson::KeepWhatMatters, options))
        }
        StageKind::SamplingCannotRepair => {
            anyhow::bail!("sampling-cannot-repair is not a step's stage: `cargo xtask sampling-cannot-repair` runs it")
        }
        StageKind::Mesh => Box::new(crate::mesh::MeshStage::new(crate_dir)?),
        StageKind::Browser => Box::new(crate::browser::BrowserStage::new(crate_dir)?),
        StageKind::LongTrace => Box::new(crate::long_trace::LongTraceStage::check()),
    })
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
        let data = StageData::Browser(stitch_model::fixtures::stages::browser());
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json["stage"], "browser");
        assert_eq!(json["one_trace"], 200);
        let back: StageData = serde_json::from_value(json.clone()).unwrap();
        assert!(matches!(back, StageData::Browser(browser) if browser.one_trace == 200));
        // A field the stage no longer writes is an error, not a zero.
        let mut renamed = json;
        let one_trace = renamed.as_object_mut().unwrap().remove("one_trace").unwrap();
        renamed["whole_traces"] = one_trace;
        let error = serde_json::from_value::<StageData>(renamed).unwrap_err().to_string();
        assert!(error.contains("one_trace"), "{error}");
    }
}
