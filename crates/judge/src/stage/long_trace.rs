//! Step 8's judge: a batch job through the tier. Every trace fits the
//! decision window, nothing arrives late or is lost, every item is a root
//! linked to its batch (and half a fix is named), and tier 2 lives through
//! its hard memory limit.

use std::time::Duration;

use stitch_model::stage::long_trace::{CollectorUnderLimit, HardLimitRun, ItemShapes, LongTraceData};

use super::{Claim, StageVerdict};

const MIB: f64 = 1024.0 * 1024.0;

/// Judges what the long-trace stage measured.
pub fn judge(data: &LongTraceData) -> StageVerdict {
    let wait = Duration::from_millis(data.decision_wait_ms);
    let workload = &data.workload;
    // Lineage counts both spans of an item (the item and its store) as linked.
    let item_spans = workload.all_items() * 2;
    let mut claims = vec![
        Claim::new(
            format!("no trace outlives decision_wait: its spans reach the tier within {wait:?} of the first"),
            format!(
                "longest {:.1} s; {} of {} traces took {wait:?} or more",
                data.longest_trace_seconds, data.traces_outliving_the_window, data.traces_before
            ),
            data.traces_outliving_the_window == 0,
        ),
        Claim::new(
            "no late-span orphans after sampling (the lineage behind tier 2)",
            format!("{} orphan spans, {} of them missing their parent", data.orphans_after, data.missing_parent_after),
            data.orphans_after == 0,
        ),
        Claim::new(
            "every failed item reached the backend: the errors policy saw each one",
            format!("{} of {}", data.failed_items_kept, data.failed_items),
            data.failed_items_kept as u64 == data.failed_items,
        ),
        Claim::new(
            "every trace of a batch is kept whole or dropped whole",
            format!(
                "{} kept whole, {} kept in part, of {}",
                data.batch_traces_kept_whole, data.batch_traces_kept_in_part, data.batch_traces
            ),
            data.batch_traces_kept_in_part == 0,
        ),
        items_claim(data.linked_before, item_spans, &data.items, workload.all_items()),
        // An evicted trace is judged never, or in pieces: said by name here,
        // not left to show as a lost failed item.
        Claim::new(
            format!("no trace evicted undecided (num_traces {} per collector was never full)", data.num_traces),
            format!("{} evicted", data.dropped_too_early),
            data.dropped_too_early == 0.0,
        ),
    ];
    if let Some(why) = &data.no_memory_cgroup {
        // Only a hard limit proves it: on a machine without one, the claim
        // fails and says why, so that the step never passes without it.
        claims.push(Claim::new(
            "tier 2 survived a hard memory limit (its idle usage + a margin, memory_limiter off)",
            format!("NOT JUDGED, no memory cgroup: {why}"),
            false,
        ));
    }
    if let Some(run) = &data.hard_limit {
        claims.push(survived_claim(run, data.lost_spans, data.lost_traces));
    }
    if data.hard_limit.is_some() || data.no_memory_cgroup.is_some() {
        claims.push(Claim::new(
            "nothing lost: every span of a trace with a failed span (the errors policy's to keep) was exported",
            format!("{} spans of {} such traces lost", data.lost_spans, data.lost_traces),
            data.lost_spans == 0,
        ));
    }
    StageVerdict { claims, notes: notes(data, wait) }
}

/// Every item a root linked to its batch, as lineage counts it; when not,
/// which shape the items have instead: the unsolved one (the batch as
/// parent), half the fix (the parent kept, the link added), or the link
/// forgotten.
fn items_claim(linked: u64, item_spans: u64, items: &ItemShapes, all_items: u64) -> Claim {
    let mut measured = format!("{linked} of {item_spans} item spans linked");
    let passed = linked == item_spans;
    if !passed {
        for (count, shape) in [
            (
                items.parent_and_link,
                "have a parent (the batch) and a link: an item must be a root, linked to its batch",
            ),
            (
                items.parent_only,
                "are children of their batch, with no link: the batch and its items are one trace, as long as the \
                 batch",
            ),
            (items.root_unlinked, "are roots with no link: nothing leads back to their batch"),
        ] {
            if count > 0 {
                measured += &format!("; {count} of {all_items} items {shape}");
            }
        }
    }
    Claim::new("every item is a trace of its own, linked to its batch (lineage: LINKED)", measured, passed)
}

/// The claim that tier 2 lived through its hard limit, and what the kernel did.
fn survived_claim(run: &HardLimitRun, lost_spans: u64, lost_traces: usize) -> Claim {
    let limits: Vec<String> =
        run.collectors.iter().map(|c| format!("{} {:.1} MiB", c.collector, c.limit_bytes as f64 / MIB)).collect();
    let claim = format!(
        "tier 2 survived a hard memory limit of its idle usage + {} MiB ({}: {}), memory_limiter off, GOGC={}",
        run.margin_mib,
        run.cgroup,
        limits.join(", "),
        run.gogc
    );
    let killed: Vec<&CollectorUnderLimit> = run.collectors.iter().filter(|c| c.oom_kills > 0).collect();
    let measured = if killed.is_empty() {
        let peaks: Vec<String> = run
            .collectors
            .iter()
            .map(|c| format!("{} peak {:.0} MiB", c.collector, c.peak_bytes as f64 / MIB))
            .collect();
        format!("no OOM kill; {}", peaks.join(", "))
    } else {
        let kills: Vec<String> = killed
            .iter()
            .map(|c| {
                format!(
                    "{} OOM-killed {} (oom_kill {}, signal {})",
                    c.collector,
                    c.died_at_seconds
                        .map_or_else(|| "after the workload".to_owned(), |t| format!("{t:.0} s into the workload")),
                    c.oom_kills,
                    c.exit_signal.map_or_else(|| "none".to_owned(), |signal| signal.to_string())
                )
            })
            .collect();
        format!("{}; {lost_spans} spans of {lost_traces} traces with a failed span lost", kills.join(", "))
    };
    Claim::new(claim, measured, killed.is_empty())
}

fn notes(data: &LongTraceData, wait: Duration) -> Vec<String> {
    let workload = &data.workload;
    let late = data.late_spans_in_map;
    let cached = &data.late_spans_cached;
    let mut notes = vec![
        format!(
            "{} batches of {} items, an item every {:?}, failing from item {} on; {} orders alongside",
            workload.batches, workload.items, workload.interval, workload.fail_from, data.orders
        ),
        format!(
            "tier 2 ×2: decision_wait {wait:?}, num_traces {} each, decision cache {} / {} (sampled / not), slow > {} s{}",
            data.num_traces,
            data.decision_cache.0,
            data.decision_cache.1,
            data.slow_threshold_seconds,
            data.memory_limit_mib
                .map_or_else(String::new, |(limit, spike)| format!(", memory_limiter {limit} MiB (spike {spike})"))
        ),
        format!(
            "spans reaching tier 2 after their trace's decision: {late} while the trace still held its slot (mean age {:.1} s), {} followed a cached decision ({} kept, {} dropped)",
            if late > 0.0 { data.late_span_age_sum_seconds / late } else { 0.0 },
            cached.kept + cached.dropped,
            cached.kept,
            cached.dropped
        ),
        format!(
            "tier 2: {} trace ids received (a trace judged again after its decision was forgotten counts twice), {} evicted undecided",
            data.new_trace_ids, data.dropped_too_early
        ),
        format!(
            "after sampling: {} spans kept, {} connected, {} linked, {} orphans",
            data.spans_after, data.connected_after, data.linked_after, data.orphans_after
        ),
    ];
    for row in &data.memory {
        notes.push(format!(
            "{}: RSS {:.0} → {:.0} MiB (max {:.0}), heap max {:.0} MiB, at most {} traces held, {} spans refused",
            row.collector,
            row.first_rss_mib,
            row.last_rss_mib,
            row.max_rss_mib,
            row.max_heap_mib,
            row.max_traces_on_memory,
            row.refused_spans
        ));
    }
    if data.memory_limit_mib.is_some() {
        notes.push(format!(
            "memory_limiter: {} forced GCs, {} times it started refusing data, {} spans refused",
            data.limiter_forced_gcs, data.limiter_started_refusing, data.refused_spans
        ));
    }
    if data.tier1_send_failed_spans > 0.0 {
        notes.push(format!("tier 1 could not deliver {} spans to tier 2", data.tier1_send_failed_spans));
    }
    if let Some(run) = &data.hard_limit {
        for c in &run.collectors {
            notes.push(format!(
                "{} in a {} memory cgroup: idle {:.1} MiB, limit {:.1} MiB, peak {:.1} MiB{}, oom_kill {}{}",
                c.collector,
                run.cgroup,
                c.idle_bytes as f64 / MIB,
                c.limit_bytes as f64 / MIB,
                c.peak_bytes as f64 / MIB,
                // Only where the first decision came late enough to measure it.
                c.bytes_per_held_span
                    .map_or_else(String::new, |b| format!(", {b:.0} bytes per span held before the first decision")),
                c.oom_kills,
                c.died_at_seconds.map_or_else(String::new, |t| format!(", dead {t:.1} s into the workload"))
            ));
        }
        notes.push(format!("lost: {} spans of {} traces with a failed span", data.lost_spans, data.lost_traces));
    }
    notes
}

#[cfg(test)]
mod tests {
    use stitch_model::fixtures::stages;

    use super::*;
    use crate::stage::testing::{all_pass, claim, only_failure};

    const ITEMS: &str = "every item is a trace of its own, linked to its batch (lineage: LINKED)";

    #[test]
    fn a_fixed_batch_through_the_tier_passes_every_claim() {
        let verdict = judge(&stages::long_trace());
        all_pass(&verdict);
        assert_eq!(verdict.claims.len(), 8);
        assert_eq!(claim(&verdict, ITEMS).measured, "400 of 400 item spans linked");
        assert_eq!(
            claim(&verdict, "tier 2 survived").claim,
            "tier 2 survived a hard memory limit of its idle usage + 14 MiB (cgroup v1: tier2-a 64.0 MiB, tier2-b \
             64.0 MiB), memory_limiter off, GOGC=25"
        );
        assert_eq!(
            claim(&verdict, "tier 2 survived").measured,
            "no OOM kill; tier2-a peak 60 MiB, tier2-b peak 60 MiB"
        );
        assert_eq!(
            verdict.notes[..2],
            [
                "2 batches of 100 items, an item every 20ms, failing from item 91 on; 162 orders alongside",
                "tier 2 ×2: decision_wait 3s, num_traces 1215 each, decision cache 0 / 0 (sampled / not), slow > 600 s",
            ]
        );
        assert_eq!(verdict.notes.last().map(String::as_str), Some("lost: 0 spans of 0 traces with a failed span"));
    }

    #[test]
    fn a_trace_outliving_the_window_fails() {
        let mut data = stages::long_trace();
        (data.longest_trace_seconds, data.traces_outliving_the_window) = (2.4, 2);
        let measured =
            only_failure(&judge(&data), "no trace outlives decision_wait: its spans reach the tier within 3s");
        assert_eq!(measured, "longest 2.4 s; 2 of 364 traces took 3s or more");
    }

    #[test]
    fn late_span_orphans_fail() {
        let mut data = stages::long_trace();
        (data.orphans_after, data.missing_parent_after) = (30, 30);
        let measured = only_failure(&judge(&data), "no late-span orphans after sampling");
        assert_eq!(measured, "30 orphan spans, 30 of them missing their parent");
    }

    #[test]
    fn a_failed_item_that_never_reached_the_backend_fails() {
        let mut data = stages::long_trace();
        data.failed_items_kept = 0;
        let measured = only_failure(&judge(&data), "every failed item reached the backend");
        assert_eq!(measured, "0 of 20");
    }

    #[test]
    fn a_batch_kept_in_part_fails() {
        let mut data = stages::long_trace();
        data.batch_traces_kept_in_part = 2;
        let measured = only_failure(&judge(&data), "every trace of a batch is kept whole or dropped whole");
        assert_eq!(measured, "22 kept whole, 2 kept in part, of 202");
    }

    #[test]
    fn the_unsolved_items_are_named_children_of_their_batch() {
        let mut data = stages::long_trace();
        data.linked_before = 0;
        data.items = ItemShapes { parent_only: 200, ..ItemShapes::default() };
        assert_eq!(
            only_failure(&judge(&data), ITEMS),
            "0 of 400 item spans linked; 200 of 200 items are children of their batch, with no link: the batch and \
             its items are one trace, as long as the batch"
        );
    }

    #[test]
    fn half_a_fix_is_named_a_parent_and_a_link() {
        let mut data = stages::long_trace();
        data.linked_before = 0;
        data.items = ItemShapes { parent_and_link: 200, ..ItemShapes::default() };
        assert_eq!(
            only_failure(&judge(&data), ITEMS),
            "0 of 400 item spans linked; 200 of 200 items have a parent (the batch) and a link: an item must be a \
             root, linked to its batch"
        );
    }

    #[test]
    fn roots_without_their_link_are_named() {
        let mut data = stages::long_trace();
        data.linked_before = 40;
        data.items = ItemShapes { root_linked: 20, root_unlinked: 180, ..ItemShapes::default() };
        assert_eq!(
            only_failure(&judge(&data), ITEMS),
            "40 of 400 item spans linked; 180 of 200 items are roots with no link: nothing leads back to their batch"
        );
    }

    #[test]
    fn an_eviction_fails() {
        let mut data = stages::long_trace();
        data.dropped_too_early = 5.0;
        let measured = only_failure(&judge(&data), "no trace evicted undecided (num_traces 1215 per collector");
        assert_eq!(measured, "5 evicted");
    }

    #[test]
    fn an_oom_kill_fails_with_when_and_what_was_lost() {
        let mut data = stages::long_trace();
        let run = data.hard_limit.as_mut().expect("a hard limit");
        (run.collectors[0].oom_kills, run.collectors[0].died_at_seconds, run.collectors[0].exit_signal) =
            (1, Some(12.4), Some(9));
        let measured = only_failure(&judge(&data), "tier 2 survived a hard memory limit");
        assert_eq!(
            measured,
            "tier2-a OOM-killed 12 s into the workload (oom_kill 1, signal 9); 0 spans of 0 traces with a failed span lost"
        );
    }

    #[test]
    fn lost_spans_of_a_failed_trace_fail() {
        let mut data = stages::long_trace();
        (data.lost_spans, data.lost_traces) = (12, 3);
        let measured = only_failure(&judge(&data), "nothing lost: every span of a trace with a failed span");
        assert_eq!(measured, "12 spans of 3 such traces lost");
    }

    #[test]
    fn without_a_memory_cgroup_the_limit_claim_fails_and_says_why() {
        let mut data = stages::long_trace();
        data.hard_limit = None;
        data.no_memory_cgroup = Some("no cgroup memory controller is mounted here".to_owned());
        let measured = only_failure(&judge(&data), "tier 2 survived a hard memory limit");
        assert_eq!(measured, "NOT JUDGED, no memory cgroup: no cgroup memory controller is mounted here");
    }

    #[test]
    fn without_a_hard_limit_its_claims_are_not_made() {
        let mut data = stages::long_trace();
        data.hard_limit = None;
        data.memory_limit_mib = Some((30, 16));
        let verdict = judge(&data);
        all_pass(&verdict);
        assert_eq!(verdict.claims.len(), 6);
        assert!(
            verdict.notes.contains(
                &"memory_limiter: 0 forced GCs, 0 times it started refusing data, 0 spans refused".to_owned()
            )
        );
    }
}
