//! Step 4's `sampling.yaml`: the learner's tail-sampling settings, layered
//! last over `infra/collector/tier2.yaml`. The check reads what it needs of
//! it before any collector starts, so a typo is an error that names the
//! file and the line, not a collector that exits in a log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

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
}

#[derive(Deserialize)]
struct File {
    processors: Processors,
}

#[derive(Deserialize)]
struct Processors {
    tail_sampling: TailSampling,
}

#[derive(Deserialize)]
struct TailSampling {
    decision_wait: String,
    num_traces: u64,
    policies: Vec<Policy>,
}

#[derive(Deserialize)]
struct Policy {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

impl LearnerSampling {
    /// `dir/sampling.yaml`, or `None` when the step has no such file.
    pub fn find(dir: &Path) -> Result<Option<LearnerSampling>> {
        let path = dir.join(FILE_NAME);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        LearnerSampling::parse(&text, &path).map(Some)
    }

    fn parse(text: &str, path: &Path) -> Result<LearnerSampling> {
        let file: File = serde_saphyr::from_str(text).with_context(|| {
            format!(
                "{} is not the tier's sampling settings: it needs processors.tail_sampling with \
                 decision_wait, num_traces and policies",
                path.display()
            )
        })?;
        let settings = file.processors.tail_sampling;
        if settings.num_traces == 0 {
            bail!("{}: num_traces is 0: the tier could hold no trace", path.display());
        }
        if settings.policies.is_empty() {
            bail!("{}: no policy: the tier would keep nothing", path.display());
        }
        let decision_wait = parse_duration(&settings.decision_wait)
            .with_context(|| format!("{}: decision_wait {:?}", path.display(), settings.decision_wait))?;
        Ok(LearnerSampling {
            path: path.to_owned(),
            decision_wait,
            num_traces: settings.num_traces,
            policies: settings
                .policies
                .into_iter()
                .map(|policy| format!("{} ({})", policy.name, policy.kind))
                .collect(),
        })
    }
}

/// A collector duration as a person writes one in this tier: `500ms`, `10s`,
/// `2m`. The collector (Go) wants the unit written, where lineage's parser
/// would read a bare number as seconds.
fn parse_duration(text: &str) -> Result<Duration> {
    let unit = text.trim().trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    if !matches!(unit, "ms" | "s" | "m") {
        bail!("unit {unit:?}: use ms, s or m");
    }
    lineage::parse_duration(text).map_err(anyhow::Error::msg)
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

    #[test]
    fn durations_are_read_with_their_unit() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10h").is_err());
    }
}
