//! Past capacity: open-loop rates climbing from the steady load until the
//! first span is lost, each span accounted for by lineage and each span the
//! services never sent counted by their SDKs (`/metrics`).

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::drive::Rate;
use super::load;
use crate::check::Flow;

/// The rates the long climb tries, as multiples of the steady load's rate:
/// 2× is always among them, for `orphans_at_2x`.
pub const MULTIPLES: [f64; 8] = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0];

/// The short climb (CI): twice the load only.
pub const SHORT_MULTIPLES: [f64; 1] = [2.0];

/// One rate of the climb.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaturationStep {
    pub rps: u32,
    pub requests: usize,
    pub failed: usize,
    pub spans_expected: u64,
    /// Spans lineage holds under the accepted requests' keys.
    pub spans_received: u64,
    /// Spans the services' SDKs dropped (queue full) or failed to export.
    pub spans_dropped_by_sdk: u64,
    pub orphans: u64,
    /// Spans that reached lineage after their trace had settled.
    pub late_spans: u64,
    pub latency_p99_ms: f64,
    /// How late the sender itself was: past the machine's capacity the
    /// offered rate is lower than the one asked for.
    pub send_lag_p99_ms: f64,
}

impl SaturationStep {
    /// Whether any span of this rate is missing, in lineage or at the source.
    pub fn lost_spans(&self) -> bool {
        self.spans_received < self.spans_expected || self.spans_dropped_by_sdk > 0
    }
}

/// The climb and what it found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaturationResult {
    /// Seconds at each rate.
    pub seconds: f64,
    pub steps: Vec<SaturationStep>,
    /// The lowest rate tried at which a span was lost; `None` when none was
    /// up to the highest rate tried.
    pub first_loss_rps: Option<u32>,
    /// Spans the SDKs dropped or failed to export, over the whole climb.
    pub spans_dropped_by_sdk: u64,
    /// Orphan spans at twice the steady load's rate.
    pub orphans_at_2x: u64,
}

/// Climbs from `load`'s rate by `multiples` (one of which is 2), `seconds`
/// at each, and stops at the first rate that lost a span once 2× has run.
pub fn run(
    flow: &mut Flow<'_>,
    load: Rate,
    multiples: &[f64],
    seconds: f64,
    spans_per_request: u64,
) -> anyhow::Result<SaturationResult> {
    let mut steps = Vec::new();
    let mut orphans_at_2x = None;
    for &multiple in multiples {
        let rate = Rate { rps: (f64::from(load.rps) * multiple).round() as u32, seconds };
        let step = climb(flow, rate, spans_per_request)?;
        eprintln!(
            "· {} requests/s: {} of {} spans received, {} dropped by the SDKs, {} orphans",
            step.rps, step.spans_received, step.spans_expected, step.spans_dropped_by_sdk, step.orphans
        );
        if multiple == 2.0 {
            orphans_at_2x = Some(step.orphans);
        }
        let lost = step.lost_spans();
        steps.push(step);
        if lost && orphans_at_2x.is_some() {
            break;
        }
    }
    let orphans_at_2x = orphans_at_2x.ok_or_else(|| anyhow::anyhow!("the climb never ran at 2× the load"))?;
    Ok(SaturationResult {
        seconds,
        first_loss_rps: steps.iter().find(|step| step.lost_spans()).map(|step| step.rps),
        spans_dropped_by_sdk: steps.iter().map(|step| step.spans_dropped_by_sdk).sum(),
        orphans_at_2x,
        steps,
    })
}

/// One rate of the climb: whatever it did, even when nothing was accepted
/// past capacity (then the latency is what says so).
fn climb(flow: &mut Flow<'_>, rate: Rate, spans_per_request: u64) -> anyhow::Result<SaturationStep> {
    let measured = load::measure(flow, "saturation", rate, spans_per_request)?;
    Ok(SaturationStep {
        rps: rate.rps,
        requests: measured.sent.len(),
        failed: measured.sent.len() - measured.accepted,
        spans_expected: measured.spans_expected,
        spans_received: measured.spans_received,
        spans_dropped_by_sdk: measured.spans_dropped_by_sdk,
        orphans: measured.report.orphans(),
        late_spans: measured.report.late_spans,
        latency_p99_ms: measured.latency_ms(0.99).with_context(|| format!("at {} requests/s", rate.rps))?,
        send_lag_p99_ms: measured.send_lag_ms(0.99)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_climb_goes_through_twice_the_load() {
        assert!(MULTIPLES.contains(&2.0) && SHORT_MULTIPLES.contains(&2.0));
        assert!(MULTIPLES.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
