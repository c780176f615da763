//! What the tier kept, measured into step 4's data (and step 0's through
//! the same tier); `stitch_judge::stage::tier` judges it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};

use super::{KeptSpan, TierStage, jaeger_trace};
use crate::otelcol::Metrics;
use crate::process::spinner;
use stitch_model::stage::tier::{BackendExports, CannotRepairData, InjectedTrace, RoutingRow, TierData};
use stitch_model::{Order, StageData};

const NEW_TRACES: &str = "otelcol_processor_tail_sampling_new_trace_id_received";
const POLICY_DECISIONS: &str = "otelcol_processor_tail_sampling_count_traces_sampled";
const DROPPED_TOO_EARLY: &str = "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early";
const BACKEND_OUTCOME: &str = "otelcol_loadbalancer_backend_outcome";

/// The order the stage injected for a policy, as the gateway accepted it.
fn injected<'a>(orders: &'a [Order], order_id: Option<&String>, what: &str) -> Result<&'a Order> {
    let order_id = order_id.with_context(|| format!("the {what} request was never placed"))?;
    orders
        .iter()
        .find(|order| &order.order_id == order_id)
        .with_context(|| format!("the {what} request {order_id} is not among the run's orders"))
}

impl TierStage {
    pub(super) fn measure_kept(&self, lineage: &lineage::Lineage, orders: &[Order]) -> Result<StageData> {
        self.wait_for_decisions()?;
        let jaeger = self.jaeger_url()?;
        let scrapes = self.scrape()?;
        let kept_by_collector = self.kept_spans()?;
        let options = &self.options;
        let error_order = injected(orders, self.error_order.as_ref(), "injected error")?;
        let slow_order = injected(orders, self.slow_order.as_ref(), "slow")?;

        // Which tier-2 collector kept each trace id.
        let mut keepers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (collector, spans) in &kept_by_collector {
            for span in spans {
                keepers.entry(span.trace_id.clone()).or_default().insert(collector.clone());
            }
        }

        // Every request, read back from Jaeger by the trace id the gateway answered.
        let special: BTreeSet<&str> = [error_order.order_id.as_str(), slow_order.order_id.as_str()].into();
        // Baseline traces over the threshold are the `slow` policy's to keep:
        // lineage, which saw every span, says which took that long.
        let threshold_nanos = options.slow_threshold.as_nanos() as u64;
        let mut arrivals: Option<(u64, u64)> = None;
        let (mut baseline_total, mut baseline_kept, mut slow_baseline, mut slow_baseline_kept) = (0, 0, 0, 0);
        let mut kept_whole = 0usize;
        let mut in_jaeger = BTreeMap::new();
        let reading = spinner("reading the requests back from Jaeger");
        for order in orders {
            let seen = lineage.trace(&order.trace_id);
            if let Some((first, last)) = seen.as_ref().and_then(lineage::TraceView::arrival_range) {
                arrivals = Some(arrivals.map_or((first, last), |(from, to)| (from.min(first), to.max(last))));
            }
            let over_threshold =
                seen.is_some_and(|trace| trace.end_unix_nanos.saturating_sub(trace.start_unix_nanos) > threshold_nanos);
            let trace = jaeger_trace(&jaeger, &order.trace_id)?;
            if let Some(spans) = &trace
                && spans.len() == options.spans_per_request
                && spans.iter().all(|s| s.trace_id == order.trace_id)
            {
                kept_whole += 1;
            }
            if special.contains(order.order_id.as_str()) {
                // measured below, one by one
            } else if over_threshold {
                slow_baseline += 1;
                slow_baseline_kept += usize::from(trace.is_some());
            } else {
                baseline_total += 1;
                baseline_kept += usize::from(trace.is_some());
            }
            in_jaeger.insert(order.order_id.clone(), trace);
        }
        reading.finish_and_clear();
        let kept_total = in_jaeger.values().filter(|trace| trace.is_some()).count();

        let injected = |order: &Order, policy: &str| -> Result<InjectedTrace> {
            let spans = in_jaeger[&order.order_id].as_deref().unwrap_or_default();
            // The policy's own verdict, independent of the 1% that keeps
            // anything now and then: only it proves the tier saw the signal.
            let mut kept_by_policy = 0.0;
            for (_, metrics) in scrapes.iter().filter(|(name, _)| name.starts_with("tier2")) {
                kept_by_policy += metrics.sum(POLICY_DECISIONS, &[("policy", policy), ("sampled", "true")])?;
            }
            Ok(InjectedTrace {
                spans_in_jaeger: spans.len(),
                spans_with_its_trace_id: spans.iter().filter(|span| span.trace_id == order.trace_id).count(),
                kept_by_policy: kept_by_policy as u64,
            })
        };
        let error = injected(error_order, "errors")?;
        let slow = injected(slow_order, "slow")?;

        let kept_ids: BTreeSet<&String> =
            orders.iter().filter(|order| in_jaeger[&order.order_id].is_some()).map(|order| &order.trace_id).collect();
        let mut dropped_too_early = 0.0;
        for (_, metrics) in scrapes.iter().filter(|(name, _)| name.starts_with("tier2")) {
            dropped_too_early += metrics.sum(DROPPED_TOO_EARLY, &[])?;
        }
        let (first, last) =
            arrivals.context("lineage holds no span of the run's requests: no traffic to size the tier by")?;
        Ok(StageData::TailSampling(TierData {
            decision_wait_ms: options.decision_wait.as_millis() as u64,
            num_traces: options.num_traces,
            policies: options.policies.clone(),
            slow_threshold_ms: options.slow_threshold.as_millis() as u64,
            slow_policy_threshold_ms: options.slow_policy_threshold.map(|threshold| threshold.as_millis() as u64),
            slow_policy_threshold_from_variable: options.slow_policy_threshold_from_variable,
            spans_per_request: options.spans_per_request,
            error,
            slow,
            baseline_total,
            baseline_kept,
            slow_baseline,
            slow_baseline_kept,
            kept_total,
            kept_whole,
            kept_by_several_collectors: keepers.values().filter(|collectors| collectors.len() > 1).count(),
            kept_in_no_collector_file: kept_ids.iter().filter(|id| !keepers.contains_key(**id)).count(),
            dropped_too_early: dropped_too_early as u64,
            arrival_seconds: std::time::Duration::from_nanos(last - first).as_secs_f64(),
            routing: routing_summary(&scrapes, &kept_by_collector)?,
            tier1_exports: self.tier1_exports(&scrapes)?,
        }))
    }

    pub(super) fn measure_cannot_repair(&self, orders: &[Order]) -> Result<StageData> {
        self.wait_for_decisions()?;
        let jaeger = self.jaeger_url()?;
        let scrapes = self.scrape()?;
        let kept_by_collector = self.kept_spans()?;
        let error_order = injected(orders, self.error_order.as_ref(), "injected error")?;
        // Kept spans regrouped by business key: the fragments of each request
        // that the tier kept, each its own trace id.
        let mut fragments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut kept_ids = BTreeSet::new();
        let mut services_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (_, spans) in &kept_by_collector {
            for span in spans {
                kept_ids.insert(span.trace_id.clone());
                services_of.entry(span.trace_id.clone()).or_default().insert(span.service.clone());
                if let Some(order) = &span.order_id {
                    fragments.entry(order.clone()).or_default().insert(span.trace_id.clone());
                }
            }
        }
        let per_request = self.options.spans_per_request;
        let mut whole = 0usize;
        for order in orders {
            if let Some(spans) = jaeger_trace(&jaeger, &order.trace_id)? {
                whole += usize::from(spans.len() == per_request);
            }
        }
        let mut by_service: BTreeMap<String, usize> = BTreeMap::new();
        for services in services_of.values() {
            for service in services {
                *by_service.entry(service.clone()).or_default() += 1;
            }
        }
        let mut in_jaeger = 0usize;
        for id in &kept_ids {
            in_jaeger += usize::from(jaeger_trace(&jaeger, id)?.is_some());
        }
        let error_request_whole =
            jaeger_trace(&jaeger, &error_order.trace_id)?.is_some_and(|spans| spans.len() == per_request);
        Ok(StageData::SamplingCannotRepair(CannotRepairData {
            requests: orders.len(),
            requests_whole_in_backend: whole,
            requests_with_a_kept_fragment: orders
                .iter()
                .filter(|order| fragments.contains_key(&order.order_id))
                .count(),
            fragments_kept: kept_ids.len(),
            fragments_in_jaeger: in_jaeger,
            fragments_kept_by_service: by_service,
            error_request_fragments_kept: fragments.get(&error_order.order_id).map_or(0, BTreeSet::len),
            // The failed span itself, kept by the `errors` policy on its own trace id.
            error_span_kept: kept_by_collector
                .iter()
                .flat_map(|(_, spans)| spans)
                .any(|span| span.error && span.order_id.as_ref() == Some(&error_order.order_id)),
            error_request_whole,
            routing: routing_summary(&scrapes, &kept_by_collector)?,
        }))
    }

    /// Tier 1's load-balancer outcome per tier-2 collector.
    fn tier1_exports(&self, scrapes: &[(String, Metrics)]) -> Result<Vec<BackendExports>> {
        let names: BTreeMap<String, String> = self
            .running()?
            .tier2
            .iter()
            .map(|(process, port, _)| (format!("127.0.0.1:{port}"), process.name.clone()))
            .collect();
        let (_, tier1) = scrapes.iter().find(|(name, _)| name == "tier1").context("no scrape of tier 1")?;
        exports_by_backend(tier1, &names)
    }
}

/// Tier 1's exports per backend, named by `names` (endpoint → collector).
/// A series without its endpoint or outcome, or none at all, is an error.
fn exports_by_backend(tier1: &Metrics, names: &BTreeMap<String, String>) -> Result<Vec<BackendExports>> {
    let mut by_endpoint: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (labels, value) in tier1.series(BACKEND_OUTCOME, &[]) {
        let endpoint = labels.get("endpoint").with_context(|| format!("{BACKEND_OUTCOME} without an endpoint"))?;
        let entry = by_endpoint.entry(endpoint.clone()).or_default();
        match labels.get("success").map(String::as_str) {
            Some("true") => entry.0 += value,
            Some("false") => entry.1 += value,
            other => anyhow::bail!("{BACKEND_OUTCOME} for {endpoint} with success={other:?}"),
        }
    }
    if by_endpoint.is_empty() {
        anyhow::bail!("tier 1 exported nothing: its scrape has no {BACKEND_OUTCOME}");
    }
    Ok(by_endpoint
        .into_iter()
        .map(|(endpoint, (ok, failed))| BackendExports {
            backend: names.get(&endpoint).cloned().unwrap_or(endpoint),
            ok,
            failed,
        })
        .collect())
}

fn routing_summary(scrapes: &[(String, Metrics)], kept: &[(String, Vec<KeptSpan>)]) -> Result<Vec<RoutingRow>> {
    kept.iter()
        .map(|(collector, spans)| {
            let (_, metrics) = scrapes
                .iter()
                .find(|(name, _)| name == collector)
                .with_context(|| format!("no metrics scraped from {collector}"))?;
            let traces: BTreeSet<&String> = spans.iter().map(|span| &span.trace_id).collect();
            Ok(RoutingRow {
                collector: collector.clone(),
                traces_received: metrics.sum(NEW_TRACES, &[])?,
                traces_kept: traces.len(),
                spans_kept: spans.len(),
                rss_bytes: metrics.sum("otelcol_process_memory_rss", &[])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_1s_exports_are_named_by_collector() {
        let tier1 = Metrics::parse(
            "otelcol_loadbalancer_backend_outcome{endpoint=\"127.0.0.1:4001\",success=\"true\"} 30\n\
             otelcol_loadbalancer_backend_outcome{endpoint=\"127.0.0.1:4001\",success=\"false\"} 2\n\
             otelcol_loadbalancer_backend_outcome{endpoint=\"127.0.0.1:4002\",success=\"true\"} 28\n",
        )
        .unwrap();
        let names = BTreeMap::from([("127.0.0.1:4001".to_owned(), "tier2-a".to_owned())]);
        let exports = exports_by_backend(&tier1, &names).unwrap();
        let rows: Vec<(&str, f64, f64)> =
            exports.iter().map(|row| (row.backend.as_str(), row.ok, row.failed)).collect();
        assert_eq!(rows, [("tier2-a", 30.0, 2.0), ("127.0.0.1:4002", 28.0, 0.0)]);
    }

    #[test]
    fn exports_without_an_endpoint_an_outcome_or_any_series_are_errors() {
        let names = BTreeMap::new();
        for (text, message) in [
            ("otelcol_loadbalancer_backend_outcome{success=\"true\"} 3\n", "without an endpoint"),
            ("otelcol_loadbalancer_backend_outcome{endpoint=\"127.0.0.1:1\"} 3\n", "with success=None"),
            ("otelcol_process_memory_rss 1\n", "tier 1 exported nothing"),
        ] {
            let error = exports_by_backend(&Metrics::parse(text).unwrap(), &names).unwrap_err();
            assert!(error.to_string().contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn an_injected_request_never_placed_or_not_accepted_is_an_error() {
        let orders = [Order { order_id: "ord-1".to_owned(), trace_id: "ab".repeat(16) }];
        assert_eq!(injected(&orders, Some(&"ord-1".to_owned()), "slow").unwrap().order_id, "ord-1");
        let error = injected(&orders, None, "injected error").unwrap_err();
        assert_eq!(error.to_string(), "the injected error request was never placed");
        let error = injected(&orders, Some(&"ord-9".to_owned()), "slow").unwrap_err();
        assert_eq!(error.to_string(), "the slow request ord-9 is not among the run's orders");
    }
}
