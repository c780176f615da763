//! What tracing costs: the same traffic through the same services with
//! OpenTelemetry on and then off (no layer, no exporter), in one run.
//! Lineage shares the machine, so "on" also pays for receiving the spans.
//!
//! Only the gateway and the worker are switched: the callers time the
//! answer to `POST /orders`, which waits for neither Kafka nor the consumer,
//! and a restarted consumer costs a group rebalance (on Tansu 0.6 it was
//! once handed no partition at all). The consumer's one span per request
//! is exported in both runs.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use stitch_flow::Role;
use stitch_telemetry::Tracing;

use super::drive::{Rate, closed_loop, millis, open_loop, percentile, progress};
use crate::check::{Flow, wait_for_spans};

/// The services restarted with tracing off (see the module's comment).
pub const SWITCHED: [Role; 2] = [Role::Worker, Role::Gateway];

/// One side of the comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverheadSide {
    /// Gateway latency under the open-loop rate.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Requests answered per second by the closed loop.
    pub throughput_rps: f64,
    /// Requests that failed, in both loops.
    pub failed: usize,
    /// Spans the services' SDKs dropped or failed to export over both
    /// loops; `None` with tracing off.
    pub spans_dropped_by_sdk: Option<u64>,
}

/// Tracing on against tracing off.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverheadResult {
    /// The open loop that measures latency.
    pub rate: Rate,
    /// Concurrent callers of the closed loop that measures throughput.
    pub callers: usize,
    pub on: OverheadSide,
    pub off: OverheadSide,
    /// On over off: above 1 is slower with tracing.
    pub latency_p50_ratio: f64,
    pub latency_p99_ratio: f64,
    /// On over off: below 1 is fewer requests with tracing.
    pub throughput_ratio: f64,
}

/// Measures with tracing on (the services as they run), restarts them with
/// tracing off, measures again, and leaves them running with tracing on.
pub fn run(flow: &mut Flow<'_>, rate: Rate, callers: usize, spans_per_request: u64) -> anyhow::Result<OverheadResult> {
    let on = measure(flow, rate, callers, spans_per_request, Tracing::On)?;
    flow.services.restart_with_tracing(&SWITCHED, Tracing::Off)?;
    let off = measure(flow, rate, callers, spans_per_request, Tracing::Off);
    // Back on whatever happened: the scenarios after this one need spans.
    flow.services.restart_with_tracing(&SWITCHED, Tracing::On)?;
    let off = off?;
    Ok(OverheadResult {
        rate,
        callers,
        latency_p50_ratio: on.latency_p50_ms / off.latency_p50_ms,
        latency_p99_ratio: on.latency_p99_ms / off.latency_p99_ms,
        throughput_ratio: on.throughput_rps / off.throughput_rps,
        on,
        off,
    })
}

fn measure(
    flow: &mut Flow<'_>,
    rate: Rate,
    callers: usize,
    spans_per_request: u64,
    tracing: Tracing,
) -> anyhow::Result<OverheadSide> {
    let latency_label = format!("tracing {}", tracing.name());
    let throughput_label = format!("{latency_label}: closed loop");
    flow.lineage.reset();
    let before = if tracing.exports() { Some(flow.services.export_counts()?) } else { None };
    let gateway = flow.services.gateway();
    let bar = progress(latency_label.clone(), rate.requests());
    let sent = flow.runtime.block_on(open_loop(gateway, rate, bar.clone()))?;
    bar.finish_and_clear();
    let latencies: Vec<f64> =
        sent.iter().filter(|sent| sent.outcome.is_ok()).map(|sent| millis(sent.latency)).collect();
    let mut failed = sent.len() - latencies.len();
    drain(flow, tracing, latencies.len() as u64, spans_per_request)?;

    eprintln!("· {throughput_label}: {callers} callers for {} s", rate.seconds);
    let throughput = flow.runtime.block_on(closed_loop(gateway, callers, rate.seconds))?;
    failed += throughput.failed;
    drain(flow, tracing, throughput.completed as u64, spans_per_request)?;
    flow.check_alive()?;
    let spans_dropped_by_sdk = match before {
        Some(before) => Some(crate::sdk_export::lost_between(&before, &flow.services.export_counts()?)?),
        None => None,
    };
    Ok(OverheadSide {
        spans_dropped_by_sdk,
        latency_p50_ms: percentile(&latencies, 0.50).context("no request of the open loop was answered")?,
        latency_p99_ms: percentile(&latencies, 0.99).context("no request of the open loop was answered")?,
        throughput_rps: throughput.per_second(),
        failed,
    })
}

/// Lets the traffic's tail finish before the next measurement starts: its
/// spans reach lineage, all of them with tracing on, the consumer's one per
/// request with it off.
fn drain(flow: &mut Flow<'_>, tracing: Tracing, requests: u64, spans_per_request: u64) -> anyhow::Result<()> {
    let spans = if tracing.exports() { requests * spans_per_request } else { requests };
    let services = &flow.services;
    wait_for_spans(flow.lineage, spans, || services.check_alive())?;
    Ok(())
}
