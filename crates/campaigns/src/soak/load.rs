//! A steady open-loop rate through the fixed flow: every request's spans
//! accounted for, orphans as lineage reports them, and the latencies.

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::account::order_spans;
use super::drive::{Rate, Sent, millis, open_loop, percentile, progress};
use crate::check::{Flow, wait_for_spans};
use crate::sdk_export::lost_between;

/// What one steady run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub rps: u32,
    pub seconds: f64,
    pub requests: usize,
    /// Requests the gateway did not accept (an error status, a timeout).
    pub failed: usize,
    /// Accepted requests × the flow's spans per request.
    pub spans_expected: u64,
    /// Spans lineage holds under the accepted requests' keys.
    pub spans_received: u64,
    /// Orphan spans over the whole run, from lineage's report.
    pub orphans: u64,
    /// Spans that reached lineage after their trace had settled (
    /// `check::SETTLE_AFTER` without a new span): lineage judges such a span
    /// alone, and an orphan it counts then stays counted.
    pub late_spans: u64,
    /// Accepted requests that are not one connected trace of the flow's shape.
    pub incomplete_requests: usize,
    /// Spans the services' SDKs dropped or failed to export during the run.
    #[serde(default)]
    pub spans_dropped_by_sdk: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Lineage's completeness latency: from the root span's end to the
    /// arrival of the request's last span.
    pub completeness_p99_ms: f64,
    /// How late requests left against their schedule.
    pub send_lag_p99_ms: f64,
    pub send_lag_max_ms: f64,
    /// The first failure's message, when a request failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// One open-loop run from a fresh lineage, with whatever it did: the load
/// judges it, the saturation climb reports it.
#[derive(Debug)]
pub struct Measured {
    pub sent: Vec<Sent>,
    /// Requests the gateway accepted.
    pub accepted: usize,
    /// Accepted requests × the flow's spans per request.
    pub spans_expected: u64,
    /// Spans lineage holds under the accepted requests' keys.
    pub spans_received: u64,
    /// Accepted requests that are not one connected trace of the flow's shape.
    pub incomplete_requests: usize,
    /// Spans the services' SDKs dropped or failed to export meanwhile.
    pub spans_dropped_by_sdk: u64,
    pub report: lineage::Report,
    /// The accepted requests' gateway latencies, in ms.
    pub latencies_ms: Vec<f64>,
    /// How late each request left against its schedule, in ms.
    pub lags_ms: Vec<f64>,
}

impl Measured {
    /// The latencies' percentile `p`; an error when no request was accepted.
    pub fn latency_ms(&self, p: f64) -> anyhow::Result<f64> {
        percentile(&self.latencies_ms, p).with_context(|| {
            format!(
                "no request was accepted; first error: {}",
                first_failure(&self.sent).unwrap_or_else(|| "none sent".to_owned())
            )
        })
    }

    pub fn send_lag_ms(&self, p: f64) -> anyhow::Result<f64> {
        percentile(&self.lags_ms, p).context("no request was sent")
    }
}

/// Drives `rate` through `flow` from a fresh lineage, waits for the spans
/// the accepted requests owe, and counts what lineage and the SDKs say.
pub fn measure(
    flow: &mut Flow<'_>,
    label: &'static str,
    rate: Rate,
    spans_per_request: u64,
) -> anyhow::Result<Measured> {
    super::drain(flow, "the last run")?;
    flow.lineage.reset();
    let before = flow.services.export_counts()?;
    let bar = progress(label, rate.requests());
    let sent = flow.runtime.block_on(open_loop(flow.services.gateway(), rate, bar.clone()))?;
    bar.finish_and_clear();
    flow.check_alive()?;
    let accepted: Vec<&str> =
        sent.iter().filter_map(|sent| sent.outcome.as_ref().ok().map(|order| order.order_id.as_str())).collect();
    let spans_expected = accepted.len() as u64 * spans_per_request;
    let services = &flow.services;
    wait_for_spans(flow.lineage, spans_expected, || services.check_alive())?;
    let spans_dropped_by_sdk = lost_between(&before, &flow.services.export_counts()?)?;
    flow.lineage.settle_now();
    let report = flow.lineage.report();
    let (mut spans_received, mut incomplete_requests) = (0, 0);
    for order_id in &accepted {
        let spans = order_spans(flow.lineage, order_id);
        spans_received += spans.spans;
        incomplete_requests += usize::from(!spans.whole(spans_per_request));
    }
    let latencies_ms = sent.iter().filter(|sent| sent.outcome.is_ok()).map(|sent| millis(sent.latency)).collect();
    let lags_ms = sent.iter().map(|sent| millis(sent.lag)).collect();
    Ok(Measured {
        accepted: accepted.len(),
        spans_expected,
        spans_received,
        incomplete_requests,
        spans_dropped_by_sdk,
        report,
        latencies_ms,
        lags_ms,
        sent,
    })
}

/// The steady load: [`measure`], refused when no request became a
/// connected trace, since then nothing was measured.
pub fn run(flow: &mut Flow<'_>, rate: Rate, spans_per_request: u64) -> anyhow::Result<LoadResult> {
    let measured = measure(flow, "load", rate, spans_per_request)?;
    let latency_p50_ms = measured.latency_ms(0.50)?;
    if measured.report.completeness.count == 0 {
        bail!("lineage measured no completeness latency: no request became a connected trace");
    }
    Ok(LoadResult {
        rps: rate.rps,
        seconds: rate.seconds,
        requests: measured.sent.len(),
        failed: measured.sent.len() - measured.accepted,
        spans_expected: measured.spans_expected,
        spans_received: measured.spans_received,
        orphans: measured.report.orphans(),
        late_spans: measured.report.late_spans,
        incomplete_requests: measured.incomplete_requests,
        spans_dropped_by_sdk: measured.spans_dropped_by_sdk,
        latency_p50_ms,
        latency_p99_ms: measured.latency_ms(0.99)?,
        completeness_p99_ms: measured.report.completeness.p99_ms,
        send_lag_p99_ms: measured.send_lag_ms(0.99)?,
        send_lag_max_ms: measured.send_lag_ms(1.0)?,
        first_failure: first_failure(&measured.sent),
    })
}

/// The first error among `sent`, as the client saw it.
pub fn first_failure(sent: &[Sent]) -> Option<String> {
    sent.iter().find_map(|sent| sent.outcome.as_ref().err().cloned())
}
