//! Step 8's measurement: what the run's lineage saw before sampling, what
//! tier 2 kept and what the lineage behind it saw, tier 2's own counters
//! and logs, and what the kernel did under the hard limit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::memory::memory_summary;
use super::{LongTraceStage, SLOW_THRESHOLD};
use crate::otelcol::Metrics;
use crate::stage::StageEnv;
use stitch_flow::batch::ITEM_SPAN;
use stitch_model::stage::long_trace::{CachedLateSpans, ItemShapes, LongTraceData, Sample};
use stitch_model::{Order, StageData};

/// Spans tier 2's receiver accepted and refused (its memory limiter), as
/// the pinned collector names them (no `_total`); both appear with the first
/// span received.
const REFUSED: &str = "otelcol_receiver_refused_spans";
const ACCEPTED: &str = "otelcol_receiver_accepted_spans";
/// Spans tier 1 could not hand on: a counter that appears at its first failure.
const SEND_FAILED: &str = "otelcol_exporter_send_failed_spans";
const LATE_SPAN_AGE: &str = "otelcol_processor_tail_sampling_sampling_late_span_age";
const CACHED_RELEASES: &str = "otelcol_processor_tail_sampling_early_releases_from_cache_decision";
const DROPPED_TOO_EARLY: &str = "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early";
const TRACES_ON_MEMORY: &str = "otelcol_processor_tail_sampling_sampling_traces_on_memory";
const NEW_TRACES: &str = "otelcol_processor_tail_sampling_new_trace_id_received";

impl LongTraceStage {
    pub(super) fn sample(&mut self, started: Instant) -> Result<()> {
        let t = started.elapsed().as_secs_f64();
        let dead = self.dead();
        let scrapes = self.tier.scrape_except(&dead)?;
        for (collector, metrics) in scrapes.into_iter().filter(|(name, _)| name.starts_with("tier2")) {
            let cgroup = self.cgroups.iter().find(|limited| limited.collector == collector);
            let cgroup_bytes = cgroup.map(|limited| limited.cgroup.usage()).transpose()?.map(|bytes| bytes as f64);
            // Before the first span, the receiver's counters have no series yet.
            self.samples.push(Sample {
                cgroup_bytes,
                accepted_spans: metrics.events(ACCEPTED, &[]),
                t,
                rss_bytes: metrics.sum("otelcol_process_memory_rss", &[]).with_context(|| collector.clone())?,
                heap_bytes: metrics
                    .sum("otelcol_process_runtime_heap_alloc_bytes", &[])
                    .with_context(|| collector.clone())?,
                traces_on_memory: metrics.sum(TRACES_ON_MEMORY, &[]).with_context(|| collector.clone())?,
                refused_spans: metrics.events(REFUSED, &[]),
                collector,
            });
        }
        Ok(())
    }

    /// What the run measured, before and after sampling, once every
    /// tier-2 collector alive has decided.
    pub(super) fn measure_run(&mut self, env: &StageEnv, orders: &[Order]) -> Result<StageData> {
        let lineage = env.lineage;
        let started = self.started.context("the workload never ran")?;
        // A collector may be killed while the others are waited for: then
        // the wait starts again without it.
        loop {
            self.check_tier(started)?;
            let dead = self.dead();
            if dead.len() == self.tier.tier2_exits()?.len() {
                break;
            }
            match self.tier.wait_for_decisions_except(&dead) {
                Ok(()) => break,
                Err(err) => {
                    std::thread::sleep(Duration::from_millis(500));
                    self.check_tier(started)?;
                    if self.dead().len() == dead.len() {
                        return Err(err);
                    }
                }
            }
        }
        let dead = self.dead();
        let after = self.after.as_ref().context("the lineage after sampling is not running")?;
        after.lineage.settle_now();
        let report_after = after.lineage.report();
        let scrapes = self.tier.scrape_except(&dead)?;
        let kept = self.tier.kept_spans()?;
        let options = &self.options;
        let workload = &options.workload;
        let wait = self.tier.options.decision_wait;

        // Before sampling: how long each trace kept arriving at the tier.
        let batch_ids: BTreeSet<&str> = self.batches.iter().map(|batch| batch.order_id.as_str()).collect();
        let batches_before: Vec<lineage::TraceView> =
            self.traces_before(lineage, &self.batches).into_values().collect();
        let all_before = self.traces_before(lineage, orders);
        let longest = all_before
            .values()
            .map(arrival_spread)
            .max()
            .context("lineage holds no trace of the run's batches and orders: nothing to judge the window by")?;
        let outliving = all_before.values().filter(|trace| arrival_spread(trace) >= wait).count();
        let report_before = lineage.report();

        // After sampling: what tier 2 kept of each batch trace.
        let mut kept_by_trace: BTreeMap<&str, usize> = BTreeMap::new();
        let mut errors_kept = BTreeSet::new();
        for span in kept.iter().flat_map(|(_, spans)| spans) {
            *kept_by_trace.entry(span.trace_id.as_str()).or_default() += 1;
            if span.error && span.order_id.as_deref().is_some_and(|id| batch_ids.contains(id)) {
                errors_kept.insert((span.trace_id.clone(), span.span_id.clone()));
            }
        }
        // A trace of which tier 2 kept nothing is in no collector's file.
        let kept_of = |trace: &lineage::TraceView| kept_by_trace.get(trace.trace_id.as_str()).copied().unwrap_or(0);
        let mut kept_whole = 0;
        let mut kept_partly = 0;
        for trace in &batches_before {
            match kept_of(trace) {
                0 => {}
                count if count >= trace.spans.len() => kept_whole += 1,
                _ => kept_partly += 1,
            }
        }
        // Every trace with a failed span is the errors policy's to keep:
        // what of it no tier-2 collector exported was lost.
        let (mut lost_spans, mut lost_traces) = (0u64, 0usize);
        for trace in all_before.values().filter(|trace| trace.spans.iter().any(|span| span.span_status == "error")) {
            let kept = kept_of(trace);
            if kept < trace.spans.len() {
                lost_spans += (trace.spans.len() - kept) as u64;
                lost_traces += 1;
            }
        }

        // The tier's own evidence, summed over the tier-2 collectors alive.
        let tier2: Vec<&(String, Metrics)> = scrapes.iter().filter(|(name, _)| name.starts_with("tier2")).collect();
        let total = |name: &str, labels: &[(&str, &str)]| -> Result<f64> {
            tier2.iter().map(|(collector, metrics)| metrics.sum(name, labels).with_context(|| collector.clone())).sum()
        };
        // Counters that appear with their first event: a late span, a decision from the cache.
        let events = |name: &str, labels: &[(&str, &str)]| -> f64 {
            tier2.iter().map(|(_, metrics)| metrics.events(name, labels)).sum::<f64>() + 0.0
        };
        let (_, tier1) = scrapes.iter().find(|(name, _)| name == "tier1").context("no scrape of tier 1")?;
        let (forced_gcs, refusing) = limiter_log_counts(&env.logs)?;
        Ok(StageData::LongTrace(Box::new(LongTraceData {
            label: options.label.clone(),
            workload: workload.clone(),
            orders: self.orders,
            decision_wait_ms: wait.as_millis() as u64,
            num_traces: self.tier.options.num_traces,
            slow_threshold_seconds: SLOW_THRESHOLD.as_secs(),
            decision_cache: options.decision_cache,
            memory_limit_mib: options.memory_limit_mib,
            longest_trace_seconds: longest.as_secs_f64(),
            traces_outliving_the_window: outliving,
            traces_before: all_before.len(),
            orphans_after: report_after.orphans(),
            missing_parent_after: report_after.services.iter().map(|service| service.causes.missing_parent).sum(),
            spans_after: report_after.spans_settled,
            connected_after: report_after.services.iter().map(|service| service.connected).sum(),
            linked_after: report_after.linked(),
            failed_items: workload.batches as u64 * workload.failing_items(),
            failed_items_kept: errors_kept.len(),
            batch_traces: batches_before.len(),
            batch_traces_kept_whole: kept_whole,
            batch_traces_kept_in_part: kept_partly,
            linked_before: report_before.linked(),
            items: item_shapes(&batches_before),
            late_spans_in_map: events(&format!("{LATE_SPAN_AGE}_count"), &[]),
            late_span_age_sum_seconds: events(&format!("{LATE_SPAN_AGE}_sum"), &[]),
            late_spans_cached: CachedLateSpans {
                kept: events(CACHED_RELEASES, &[("sampled", "true")]),
                dropped: events(CACHED_RELEASES, &[("sampled", "false")]),
            },
            dropped_too_early: total(DROPPED_TOO_EARLY, &[])?,
            new_trace_ids: total(NEW_TRACES, &[])?,
            refused_spans: total(REFUSED, &[])?,
            limiter_forced_gcs: forced_gcs,
            limiter_started_refusing: refusing,
            tier1_send_failed_spans: tier1.events(SEND_FAILED, &[]),
            lost_spans,
            lost_traces,
            hard_limit: self.hard_limit_run()?,
            no_memory_cgroup: self.no_cgroup.clone(),
            memory: memory_summary(&self.samples),
            samples: self.samples.clone(),
        })))
    }

    /// Every trace of the run's requests, as the run's lineage (before
    /// sampling) holds them.
    fn traces_before(&self, lineage: &lineage::Lineage, orders: &[Order]) -> BTreeMap<String, lineage::TraceView> {
        let mut traces = BTreeMap::new();
        for order in orders {
            for trace in lineage.request_traces(&order.order_id) {
                traces.entry(trace.trace_id.clone()).or_insert(trace);
            }
        }
        traces
    }
}

/// What the run's lineage says about a trace: the spread of its spans'
/// arrivals, which is what the tier experiences.
fn arrival_spread(trace: &lineage::TraceView) -> Duration {
    trace.arrival_range().map_or(Duration::ZERO, |(first, last)| Duration::from_nanos(last - first))
}

/// How each item's span relates to its batch, over the traces of the
/// batches before sampling.
fn item_shapes(batch_traces: &[lineage::TraceView]) -> ItemShapes {
    let mut shapes = ItemShapes::default();
    for span in batch_traces.iter().flat_map(|trace| &trace.spans).filter(|span| span.name == ITEM_SPAN) {
        let count = match (span.parent_span_id.is_some(), !span.links.is_empty()) {
            (false, true) => &mut shapes.root_linked,
            (true, true) => &mut shapes.parent_and_link,
            (true, false) => &mut shapes.parent_only,
            (false, false) => &mut shapes.root_unlinked,
        };
        *count += 1;
    }
    shapes
}

/// From tier 2's logs: how often the memory limiter forced a GC and started
/// refusing data (it says so only there).
fn limiter_log_counts(logs: &std::path::Path) -> Result<(usize, usize)> {
    let mut text = String::new();
    for name in ["tier2-a", "tier2-b"] {
        let log = logs.join("tier").join(format!("{name}.log"));
        text += &std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    }
    Ok((text.matches("Forcing a GC").count(), text.matches("Refusing data").count()))
}
