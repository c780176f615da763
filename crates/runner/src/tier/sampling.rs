//! Step 4's `sampling.yaml`: the learner's tail-sampling settings, layered
//! last over `infra/collector/tier2.yaml`. The check reads what it needs of
//! it before any collector starts, so a typo is an error that names the
//! file and the line, not a collector that exits in a log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use stitch_model::sampling::{CHECK_SLOW_THRESHOLD, SLOW_MS_VARIABLE, SamplingSettings};

/// The file a step's crate carries when its lesson includes the tier's
/// sampling settings.
pub const FILE_NAME: &str = "sampling.yaml";

/// What the check reads of a learner's `sampling.yaml`.
#[derive(Debug, Clone)]
pub struct LearnerSampling {
    pub path: PathBuf,
    pub decision_wait: Duration,
    pub num_traces: u64,
    /// `name (type)`, in the file's order.
    pub policies: Vec<String>,
    /// The threshold of the latency policy named `slow`, with the check's
    /// `${env:STITCH_SLOW_MS}`.
    pub slow_threshold_ms: Option<u64>,
    /// Whether that threshold is `${env:STITCH_SLOW_MS}`'s value, whatever it is.
    pub slow_threshold_from_variable: bool,
}

impl LearnerSampling {
    /// Step 4's solved settings, for the runs that need a tier that keeps
    /// what matters whoever's crate runs (step 8's check, the campaigns).
    /// The answer lives in `solutions/`, not in `infra/`, whose files the
    /// chapter sends a learner to read.
    pub fn solved() -> Result<LearnerSampling> {
        let step = crate::step::all()?
            .into_iter()
            .find(|step| step.meta.stage == Some(stitch_model::StageKind::TailSampling))
            .context("no step's step.toml names the tail-sampling stage")?;
        let dir = crate::step::StepDirs::dir(&step, true);
        LearnerSampling::find(&dir)?.with_context(|| format!("{} has no {FILE_NAME}", dir.display()))
    }

    /// `dir/sampling.yaml`, or `None` when the step has no such file.
    pub fn find(dir: &Path) -> Result<Option<LearnerSampling>> {
        let path = dir.join(FILE_NAME);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        LearnerSampling::parse(&text, &path).map(Some)
    }

    /// The settings as the check runs them: `${env:STITCH_SLOW_MS}` is the
    /// check's slow threshold.
    fn parse(text: &str, path: &Path) -> Result<LearnerSampling> {
        let threshold = (SLOW_MS_VARIABLE, CHECK_SLOW_THRESHOLD.as_millis().to_string());
        let settings = SamplingSettings::parse(text, &[threshold]).with_context(|| format!("in {}", path.display()))?;
        Ok(LearnerSampling {
            path: path.to_owned(),
            decision_wait: settings.decision_wait,
            num_traces: settings.num_traces,
            policies: settings.policies.iter().map(|policy| policy.describe()).collect(),
            slow_threshold_ms: settings.slow_threshold_ms(),
            slow_threshold_from_variable: SamplingSettings::slow_threshold_follows_variable(text)
                .with_context(|| format!("in {}", path.display()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLVED: &str = r"
processors:
  tail_sampling:
    decision_wait: 10s
    num_traces: 4400
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: baseline
        type: probabilistic
        probabilistic: {sampling_percentage: 1}
";

    #[test]
    fn reads_the_settings_the_check_describes() {
        let sampling = LearnerSampling::parse(SOLVED, Path::new("sampling.yaml")).unwrap();
        assert_eq!(sampling.decision_wait, Duration::from_secs(10));
        assert_eq!(sampling.num_traces, 4400);
        assert_eq!(sampling.policies, ["errors (status_code)", "baseline (probabilistic)"]);
    }

    #[test]
    fn a_file_without_the_settings_names_what_is_missing() {
        let error = LearnerSampling::parse("processors:\n  batch: {}\n", Path::new("sampling.yaml")).unwrap_err();
        assert!(format!("{error:#}").contains("processors.tail_sampling"), "{error:#}");
        let no_policy = SOLVED.split("    policies:").next().unwrap().to_owned() + "    policies: []\n";
        let error = LearnerSampling::parse(&no_policy, Path::new("sampling.yaml")).unwrap_err();
        assert!(format!("{error:#}").contains("no policy"), "{error:#}");
    }
}
