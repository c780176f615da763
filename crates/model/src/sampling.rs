//! Step 4's tail-sampling settings (`sampling.yaml`, layered last over
//! `infra/collector/tier2.yaml`), as the check reads them before a collector
//! starts, and the collector's policies evaluated on one whole trace, as
//! the step's fast test judges them without a collector.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

/// The `slow` policy's threshold the check sets (`STITCH_SLOW_MS`): above
/// what an ordinary request takes on a loaded two-core machine.
pub const CHECK_SLOW_THRESHOLD: Duration = Duration::from_millis(4_000);
/// How much slower the check makes its injected slow request.
pub const CHECK_SLOW_DELAY: Duration = Duration::from_millis(5_000);
/// The variable the check sets to [`CHECK_SLOW_THRESHOLD`], in milliseconds.
pub const SLOW_MS_VARIABLE: &str = "STITCH_SLOW_MS";

/// What tier 2 is told to do.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingSettings {
    pub decision_wait: Duration,
    pub num_traces: u64,
    /// In the file's order.
    pub policies: Vec<Policy>,
}

/// One policy: its name (the collector counts its decisions by it) and what it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub rule: Rule,
}

/// What a policy keeps, for the types step 4 teaches.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// A trace with a span whose status is one of these (`OK`, `ERROR`, `UNSET`).
    StatusCode(Vec<String>),
    /// A trace lasting at least `threshold_ms` (and at most `upper_threshold_ms`, when set).
    Latency { threshold_ms: u64, upper_threshold_ms: Option<u64> },
    /// This share of traces, by a hash of the trace id.
    Probabilistic { percentage: f64 },
    /// A type this model does not evaluate; the collector may well run it.
    Other(String),
}

impl Policy {
    /// `name (type)`, as the check lists the policies.
    pub fn describe(&self) -> String {
        let kind = match &self.rule {
            Rule::StatusCode(_) => "status_code",
            Rule::Latency { .. } => "latency",
            Rule::Probabilistic { .. } => "probabilistic",
            Rule::Other(kind) => kind,
        };
        format!("{} ({kind})", self.name)
    }
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
    policies: Vec<PolicyEntry>,
}

#[derive(Deserialize)]
struct PolicyEntry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    status_code: Option<StatusCodeConfig>,
    latency: Option<LatencyConfig>,
    probabilistic: Option<ProbabilisticConfig>,
}

#[derive(Deserialize)]
struct StatusCodeConfig {
    status_codes: Vec<String>,
}

#[derive(Deserialize)]
struct LatencyConfig {
    threshold_ms: u64,
    #[serde(default)]
    upper_threshold_ms: Option<u64>,
}

#[derive(Deserialize)]
struct ProbabilisticConfig {
    sampling_percentage: f64,
}

impl SamplingSettings {
    /// The settings in `text`, with `${env:NAME}` (or `${env:NAME:-default}`)
    /// replaced as the collector would, from `variables`. An error names
    /// what is missing or wrong; a variable the check does not set is one.
    pub fn parse(text: &str, variables: &[(&str, String)]) -> Result<SamplingSettings> {
        let expanded = expand(text, variables)?;
        let file: File = serde_saphyr::from_str(&expanded).context(
            "this is not the tier's sampling settings: it needs processors.tail_sampling with decision_wait, \
             num_traces and policies, each policy with its type's settings",
        )?;
        let settings = file.processors.tail_sampling;
        if settings.num_traces == 0 {
            bail!("num_traces is 0: the tier could hold no trace");
        }
        if settings.policies.is_empty() {
            bail!("no policy: the tier would keep nothing");
        }
        let decision_wait = parse_duration(&settings.decision_wait)
            .with_context(|| format!("decision_wait {:?}", settings.decision_wait))?;
        let policies = settings.policies.into_iter().map(Policy::from_entry).collect::<Result<_>>()?;
        Ok(SamplingSettings { decision_wait, num_traces: settings.num_traces, policies })
    }

    /// The threshold of the latency policy named `slow` (the one the check
    /// reads), in milliseconds; `None` when there is no such policy.
    pub fn slow_threshold_ms(&self) -> Option<u64> {
        self.policies.iter().find(|policy| policy.name == "slow").and_then(|policy| match policy.rule {
            Rule::Latency { threshold_ms, .. } => Some(threshold_ms),
            _ => None,
        })
    }

    /// Whether the `slow` policy's threshold in `text` is
    /// `${env:STITCH_SLOW_MS}`: read with the check's value and with
    /// another, it is each in turn. A number typed in its place is not, even
    /// one equal to the check's.
    pub fn slow_threshold_follows_variable(text: &str) -> Result<bool> {
        let read = |ms: u64| {
            SamplingSettings::parse(text, &[(SLOW_MS_VARIABLE, ms.to_string())]).map(|s| s.slow_threshold_ms())
        };
        let check = CHECK_SLOW_THRESHOLD.as_millis() as u64;
        Ok(read(check)? == Some(check) && read(check + 1)? == Some(check + 1))
    }

    /// The chance (0 to 1) that tier 2 keeps `trace`: 1 when a policy that
    /// decides on what the trace shows keeps it, else the chance that one
    /// of the probabilistic policies does. The collector keeps a trace when
    /// any policy says so.
    pub fn keeps(&self, trace: &Trace) -> Result<f64> {
        let mut dropped_by_chance = 1.0;
        for policy in &self.policies {
            match &policy.rule {
                Rule::StatusCode(codes) => {
                    if trace
                        .spans
                        .iter()
                        .any(|span| codes.iter().any(|code| code.eq_ignore_ascii_case(span.status.as_str())))
                    {
                        return Ok(1.0);
                    }
                }
                Rule::Latency { threshold_ms, upper_threshold_ms } => {
                    let lasted = trace.duration_ms();
                    if lasted >= *threshold_ms && upper_threshold_ms.is_none_or(|upper| lasted <= upper) {
                        return Ok(1.0);
                    }
                }
                Rule::Probabilistic { percentage } => dropped_by_chance *= 1.0 - (percentage / 100.0).clamp(0.0, 1.0),
                Rule::Other(kind) => bail!(
                    "policy `{}` is of type {kind}, which this test does not evaluate (it reads status_code, latency \
                     and probabilistic); `cargo xtask check step-4` runs the collector on it",
                    policy.name
                ),
            }
        }
        Ok(1.0 - dropped_by_chance)
    }
}

impl Policy {
    fn from_entry(entry: PolicyEntry) -> Result<Policy> {
        let missing = |key: &str| format!("policy `{}` of type {} has no `{key}` settings", entry.name, entry.kind);
        let rule = match entry.kind.as_str() {
            "status_code" => Rule::StatusCode(entry.status_code.with_context(|| missing("status_code"))?.status_codes),
            "latency" => {
                let latency = entry.latency.with_context(|| missing("latency"))?;
                Rule::Latency { threshold_ms: latency.threshold_ms, upper_threshold_ms: latency.upper_threshold_ms }
            }
            "probabilistic" => Rule::Probabilistic {
                percentage: entry.probabilistic.with_context(|| missing("probabilistic"))?.sampling_percentage,
            },
            other => Rule::Other(other.to_owned()),
        };
        Ok(Policy { name: entry.name, rule })
    }
}

/// `text` with each `${env:NAME}` and `${env:NAME:-default}` replaced.
fn expand(text: &str, variables: &[(&str, String)]) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${env:") {
        out.push_str(&rest[..at]);
        let reference = &rest[at + "${env:".len()..];
        let end = reference.find('}').context("a `${env:` reference without its closing `}`")?;
        let (name, default) = match reference[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&reference[..end], None),
        };
        match (variables.iter().find(|(known, _)| *known == name), default) {
            (Some((_, value)), _) => out.push_str(value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                let set: Vec<&str> = variables.iter().map(|(name, _)| *name).collect();
                bail!("${{env:{name}}}: the check does not set {name} (it sets {})", set.join(", "))
            }
        }
        rest = &reference[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A collector duration as a person writes one in this tier: `500ms`, `10s`,
/// `2m`. The collector (Go) wants the unit written, where lineage's parser
/// would read a bare number as seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let unit = text.trim().trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    if !matches!(unit, "ms" | "s" | "m") {
        bail!("unit {unit:?}: use ms, s or m");
    }
    lineage::parse_duration(text).map_err(anyhow::Error::msg)
}

/// One trace as tier 2 sees it when it decides: every span, whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub spans: Vec<TraceSpan>,
}

/// What the policies read of a span.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpan {
    pub service: String,
    pub name: String,
    pub status: SpanStatus,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// An OpenTelemetry span status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStatus {
    Unset,
    Ok,
    Error,
}

impl SpanStatus {
    /// As the collector's `status_code` policy names it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Unset => "UNSET",
            SpanStatus::Ok => "OK",
            SpanStatus::Error => "ERROR",
        }
    }
}

impl Trace {
    /// From its first span's start to its last span's end.
    pub fn duration_ms(&self) -> u64 {
        let start = self.spans.iter().map(|span| span.start_ms).min().unwrap_or_default();
        let end = self.spans.iter().map(|span| span.end_ms).max().unwrap_or_default();
        end.saturating_sub(start)
    }
}
