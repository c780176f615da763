//! What the tier kept, judged: the claims of step 4 (and of step 0 through
//! the same tier) and the data the book's tables read.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};

use super::{KeptSpan, TierStage, jaeger_trace};
use crate::otelcol::Metrics;
use crate::process::spinner;
use stitch_model::stage::tier::{CannotRepairData, RoutingRow, TierData};
use stitch_model::{Assertion, Evidence, Order, StageData};

/// Probability the baseline policy keeps a trace.
pub const BASELINE_RATIO: f64 = 0.01;
/// Two-sided z for the kept-share tolerance: a correct tier fails it about
/// once in a thousand runs.
const Z_999: f64 = 3.29;

/// The counts of kept baseline traces a correct tier produces, out of
/// `baseline` traces each kept with [`BASELINE_RATIO`]: the binomial mean
/// ± [`Z_999`] standard deviations, whole traces inside it.
pub fn baseline_tolerance(baseline: usize) -> (usize, usize) {
    let n = baseline as f64;
    let mean = n * BASELINE_RATIO;
    let spread = Z_999 * (n * BASELINE_RATIO * (1.0 - BASELINE_RATIO)).sqrt();
    ((mean - spread).max(0.0).ceil() as usize, (mean + spread).floor() as usize)
}

impl TierStage {
    pub(super) fn measure_kept(&self, lineage: &lineage::Lineage, orders: &[Order]) -> Result<Evidence> {
        self.wait_for_decisions()?;
        let jaeger = self.jaeger_url()?;
        let scrapes = self.scrape()?;
        let kept_by_collector = self.kept_spans()?;
        let options = &self.options;
        let mut assertions = Vec::new();
        let mut notes = vec![format!(
            "tier 2 ×{}: decision_wait {:?}, num_traces {} each, policies: {}; the check's slow threshold {} ms",
            kept_by_collector.len(),
            options.decision_wait,
            options.num_traces,
            options.policies.join(", "),
            options.slow_threshold.as_millis(),
        )];

        // Which tier-2 collector kept each trace id.
        let mut keepers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (collector, spans) in &kept_by_collector {
            for span in spans {
                keepers.entry(span.trace_id.clone()).or_default().insert(collector.clone());
            }
        }

        // Every request, read back from Jaeger by the trace id the gateway answered.
        let special: BTreeSet<&str> =
            [self.error_order.as_deref(), self.slow_order.as_deref()].into_iter().flatten().collect();
        // Baseline traces over the threshold are the `slow` policy's to keep:
        // lineage, which saw every span, says which took that long.
        let threshold_nanos = options.slow_threshold.as_nanos() as u64;
        // From the first span of the requests to reach lineage to the last:
        // the seconds of traffic that size `num_traces`.
        let mut arrivals: Option<(u64, u64)> = None;
        let mut baseline_kept = 0usize;
        let mut baseline_total = 0usize;
        let mut slow_baseline = 0usize;
        let mut slow_baseline_kept = 0usize;
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
                // judged below, one by one
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

        for (label, order_id, policy, others) in
            [("error", &self.error_order, "errors", 0), ("slow", &self.slow_order, "slow", slow_baseline)]
        {
            let Some(order_id) = order_id else { continue };
            let order = orders.iter().find(|order| &order.order_id == order_id);
            let spans = in_jaeger.get(order_id).cloned().flatten().unwrap_or_default();
            let whole = order.is_some_and(|order| {
                spans.len() == options.spans_per_request && spans.iter().all(|span| span.trace_id == order.trace_id)
            });
            assertions.push(Assertion::new(
                format!(
                    "the injected {label} trace is in Jaeger, whole ({} spans, one trace id)",
                    options.spans_per_request
                ),
                format!("{} spans", spans.len()),
                whole,
            ));
            // The policy's own verdict, independent of the 1% that keeps
            // anything now and then: only it proves the tier saw the signal.
            let fired = scrapes
                .iter()
                .map(|(_, metrics)| {
                    metrics.sum(
                        "otelcol_processor_tail_sampling_count_traces_sampled",
                        &[("policy", policy), ("sampled", "true")],
                    ) as u64
                })
                .sum::<u64>();
            let expected = 1 + others as u64;
            let claim = if others == 0 {
                format!("the `{policy}` policy kept exactly the injected {label} trace")
            } else {
                format!(
                    "the `{policy}` policy kept the injected {label} trace and the {others} baseline traces over the threshold"
                )
            };
            let measured = if fired == 1 { "1 trace".to_owned() } else { format!("{fired} traces") };
            assertions.push(Assertion::new(claim, measured, fired == expected));
        }

        let n = baseline_total as f64;
        let (low, high) = baseline_tolerance(baseline_total);
        assertions.push(Assertion::new(
            format!("baseline traces kept: {}% within a binomial tolerance [{low}, {high}]", BASELINE_RATIO * 100.0),
            format!(
                "{baseline_kept} of {baseline_total} ({:.2}%), {} dropped",
                100.0 * baseline_kept as f64 / n.max(1.0),
                baseline_total - baseline_kept
            ),
            (low..=high).contains(&baseline_kept),
        ));
        if slow_baseline > 0 {
            notes.push(format!(
                "{slow_baseline} baseline traces took longer than {} ms (a loaded machine queues the producer); \
                 {slow_baseline_kept} of them are in Jaeger",
                options.slow_threshold.as_millis()
            ));
        }
        assertions.push(Assertion::new(
            "every trace in Jaeger is whole",
            format!("{kept_whole} of {kept_total}"),
            kept_whole == kept_total,
        ));

        let split: Vec<_> = keepers.iter().filter(|(_, collectors)| collectors.len() > 1).collect();
        let kept_ids: BTreeSet<&String> =
            orders.iter().filter(|order| in_jaeger[&order.order_id].is_some()).map(|order| &order.trace_id).collect();
        let unaccounted = kept_ids.iter().filter(|id| !keepers.contains_key(**id)).count();
        assertions.push(Assertion::new(
            "every kept trace was kept by exactly one tier-2 collector",
            format!("{} split across collectors, {unaccounted} in no collector's file", split.len()),
            split.is_empty() && unaccounted == 0,
        ));

        let dropped_early = scrapes
            .iter()
            .map(|(_, metrics)| {
                metrics.sum("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early", &[]) as u64
            })
            .sum::<u64>();
        assertions.push(Assertion::new(
            "no trace evicted undecided (the num_traces cap was never hit)",
            format!("{dropped_early} evicted"),
            dropped_early == 0,
        ));

        let routing = routing_summary(&scrapes, &kept_by_collector)?;
        let received: Vec<f64> = routing.iter().map(|row| row.traces_received).collect();
        assertions.push(Assertion::new(
            "the load-balancing exporter spread the traces over both tier-2 collectors",
            received.iter().map(|count| format!("{count}")).collect::<Vec<_>>().join(" / "),
            received.len() == 2 && received.iter().all(|&count| count > 0.0),
        ));
        // What sizes `num_traces` (the chapter's rule): new traces per second
        // per collector, over the seconds the requests' spans kept arriving.
        let window = match arrivals {
            Some((first, last)) if last > first => std::time::Duration::from_nanos(last - first),
            _ => anyhow::bail!("lineage holds no span of the run's requests: no traffic to size the tier by"),
        };
        let busiest = received.iter().copied().fold(0.0, f64::max);
        notes.push(format!(
            "traffic: {:.0} new traces per second per tier-2 collector (the busier one: {busiest} traces in {:.1} s \
             of arrivals)",
            busiest / window.as_secs_f64().max(0.001),
            window.as_secs_f64()
        ));
        for row in &routing {
            notes.push(format!(
                "{}: {} traces received, {} kept ({} spans), RSS {:.0} MiB",
                row.collector,
                row.traces_received,
                row.traces_kept,
                row.spans_kept,
                row.rss_bytes / (1024.0 * 1024.0)
            ));
        }
        let names: BTreeMap<String, String> = self
            .running()?
            .tier2
            .iter()
            .map(|(process, port, _)| (format!("127.0.0.1:{port}"), process.name.clone()))
            .collect();
        notes.extend(backend_outcomes(&scrapes, &names));
        Ok(Evidence {
            assertions,
            notes,
            data: StageData::TailSampling(TierData {
                decision_wait_ms: options.decision_wait.as_millis() as u64,
                num_traces: options.num_traces,
                baseline_total,
                baseline_kept,
                slow_baseline,
                slow_baseline_kept,
                baseline_tolerance: (low, high),
                kept_total,
                kept_whole,
                dropped_too_early: dropped_early,
                routing,
            }),
        })
    }

    pub(super) fn measure_cannot_repair(&self, orders: &[Order]) -> Result<Evidence> {
        self.wait_for_decisions()?;
        let jaeger = self.jaeger_url()?;
        let scrapes = self.scrape()?;
        let kept_by_collector = self.kept_spans()?;
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
        let requests = orders.len();
        let touched = orders.iter().filter(|order| fragments.contains_key(&order.order_id)).count();
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
        let error_fragments = self.error_order.as_ref().map_or(0, |id| fragments.get(id).map_or(0, BTreeSet::len));
        // The failed span itself, kept by the `errors` policy on its own trace id.
        let error_span_kept = self.error_order.as_ref().is_some_and(|id| {
            kept_by_collector
                .iter()
                .flat_map(|(_, spans)| spans)
                .any(|span| span.error && span.order_id.as_ref() == Some(id))
        });
        let mut assertions = vec![
            Assertion::new("no request reaches the backend whole", format!("{whole} of {requests} whole"), whole == 0),
            Assertion::new(
                "what the tier kept are fragments, each sampled on its own trace id",
                format!("{} fragments of {touched} requests", kept_ids.len()),
                !kept_ids.is_empty(),
            ),
            Assertion::new(
                "Jaeger holds every fragment the tier kept",
                format!("{in_jaeger} of {}", kept_ids.len()),
                in_jaeger == kept_ids.len(),
            ),
        ];
        if self.error_order.is_some() {
            let error_whole = orders
                .iter()
                .find(|order| self.error_order.as_ref() == Some(&order.order_id))
                .map(|order| jaeger_trace(&jaeger, &order.trace_id))
                .transpose()?
                .flatten()
                .is_some_and(|spans| spans.len() == per_request);
            assertions.push(Assertion::new(
                "the injected error keeps its own fragment, never the request",
                format!(
                    "failed span kept: {error_span_kept}; {error_fragments} fragment(s) of that order kept; whole: {error_whole}"
                ),
                error_span_kept && !error_whole,
            ));
        }
        let mut notes = vec![format!(
            "the broken flow through the same tier: {requests} requests, {} fragments kept from {touched} requests",
            kept_ids.len()
        )];
        for (service, count) in &by_service {
            notes.push(format!("kept fragments with {service} spans: {count}"));
        }
        let routing = routing_summary(&scrapes, &kept_by_collector)?;
        Ok(Evidence {
            assertions,
            notes,
            data: StageData::SamplingCannotRepair(CannotRepairData {
                requests,
                requests_whole_in_backend: whole,
                requests_with_a_kept_fragment: touched,
                fragments_kept: kept_ids.len(),
                fragments_kept_by_service: by_service,
                error_request_fragments_kept: error_fragments,
                routing,
            }),
        })
    }
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
                traces_received: metrics.sum("otelcol_processor_tail_sampling_new_trace_id_received", &[]),
                traces_kept: traces.len(),
                spans_kept: spans.len(),
                rss_bytes: metrics.sum("otelcol_process_memory_rss", &[]),
            })
        })
        .collect()
}

/// Tier 1's load-balancer outcome per backend, as report lines.
fn backend_outcomes(scrapes: &[(String, Metrics)], names: &BTreeMap<String, String>) -> Vec<String> {
    let Some((_, tier1)) = scrapes.iter().find(|(name, _)| name == "tier1") else { return Vec::new() };
    let mut by_endpoint: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (labels, value) in tier1.series("otelcol_loadbalancer_backend_outcome", &[]) {
        let endpoint = labels.get("endpoint").cloned().unwrap_or_else(|| "?".to_owned());
        let entry = by_endpoint.entry(endpoint).or_default();
        if labels.get("success").is_some_and(|success| success == "true") {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    by_endpoint
        .into_iter()
        .map(|(endpoint, (ok, failed))| {
            let name = names.get(&endpoint).map_or(endpoint.as_str(), String::as_str);
            format!("tier 1 → {name}: {ok} exports ok, {failed} failed")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_tolerance_is_binomial_around_one_percent() {
        // 2000 traces: mean 20, σ = √(2000 × 0.01 × 0.99) = 4.45, ± 3.29 σ = 14.6.
        let (low, high) = baseline_tolerance(2000);
        assert_eq!((low, high), (6, 34));
        assert!((low..=high).contains(&20), "a correct tier keeps about 20");
        assert!(!(low..=high).contains(&0), "a tier that drops the baseline fails");
        assert!(!(low..=high).contains(&200), "a tier that keeps 10% fails");
        // Too few traces to expect any: keeping none passes.
        assert_eq!(baseline_tolerance(0), (0, 0));
    }
}
