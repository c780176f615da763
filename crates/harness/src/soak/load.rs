//! A steady open-loop rate through the fixed flow: every request's spans
//! accounted for, orphans as lineage reports them, and the latencies.

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::account::order_spans;
use super::drive::{Rate, Sent, millis, open_loop, percentile, progress};
use crate::check::{Flow, wait_for_spans};

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
    /// Spans that reached lineage after their trace had settled (2 s
    /// without a new span): lineage judges such a span alone, and an orphan
    /// it counts then stays counted.
    pub late_spans: u64,
    /// Accepted requests that are not one connected trace of the flow's shape.
    pub incomplete_requests: usize,
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

/// Drives `rate` through `flow` from a fresh lineage and accounts for every span.
pub fn run(flow: &mut Flow<'_>, rate: Rate, spans_per_request: u64) -> anyhow::Result<LoadResult> {
    flow.lineage.reset();
    let bar = progress("load", rate.requests());
    let sent = flow.runtime.block_on(open_loop(flow.services.gateway(), rate, bar.clone()))?;
    bar.finish_and_clear();
    flow.check_alive()?;
    let accepted: Vec<&Sent> = sent.iter().filter(|sent| sent.outcome.is_ok()).collect();
    if accepted.is_empty() {
        bail!(
            "no request of the load was accepted; first error: {}",
            first_failure(&sent).unwrap_or_else(|| "none sent".to_owned())
        );
    }
    let spans_expected = accepted.len() as u64 * spans_per_request;
    let services = &flow.services;
    wait_for_spans(flow.lineage, spans_expected, || services.check_alive())?;
    flow.lineage.settle_now();
    let report = flow.lineage.report();

    let mut spans_received = 0;
    let mut incomplete_requests = 0;
    for sent in &accepted {
        let Ok(order) = &sent.outcome else { continue };
        let spans = order_spans(flow.lineage, &order.order_id);
        spans_received += spans.spans;
        incomplete_requests += usize::from(!spans.whole(spans_per_request));
    }
    let latencies: Vec<f64> = accepted.iter().map(|sent| millis(sent.latency)).collect();
    let lags: Vec<f64> = sent.iter().map(|sent| millis(sent.lag)).collect();
    if report.completeness.count == 0 {
        bail!("lineage measured no completeness latency: no request became a connected trace");
    }
    Ok(LoadResult {
        rps: rate.rps,
        seconds: rate.seconds,
        requests: sent.len(),
        failed: sent.len() - accepted.len(),
        spans_expected,
        spans_received,
        orphans: report.orphans(),
        late_spans: report.late_spans,
        incomplete_requests,
        latency_p50_ms: percentile(&latencies, 0.50).context("no latency")?,
        latency_p99_ms: percentile(&latencies, 0.99).context("no latency")?,
        completeness_p99_ms: report.completeness.p99_ms,
        send_lag_p99_ms: percentile(&lags, 0.99).context("no send lag")?,
        send_lag_max_ms: percentile(&lags, 1.0).context("no send lag")?,
        first_failure: first_failure(&sent),
    })
}

/// The first error among `sent`, as the client saw it.
pub fn first_failure(sent: &[Sent]) -> Option<String> {
    sent.iter().find_map(|sent| sent.outcome.as_ref().err().cloned())
}
