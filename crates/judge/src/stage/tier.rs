//! Step 4's judge: the tier keeps the injected error and slow traces whole,
//! about 1% of the rest, each trace in one collector; and, for step 0's
//! broken flow through the same tier, that sampling cannot repair it.

use std::time::Duration;

use stitch_model::sampling::SLOW_MS_VARIABLE;
use stitch_model::stage::tier::{CannotRepairData, InjectedTrace, TierData};

use super::{Claim, StageVerdict};

/// Probability the baseline policy keeps a trace.
pub const BASELINE_RATIO: f64 = 0.01;
/// The most chance, on each side, that a correct tier's count falls outside
/// the tolerance: together at most once in ten thousand runs. A room of
/// twenty runs some hundred correct checks of this step in a day; at this
/// rate, fewer than one day in a hundred sees a right answer fail by chance.
pub const BASELINE_TAIL: f64 = 5e-5;

/// The counts of kept baseline traces a correct tier produces, out of
/// `baseline` traces each kept with [`BASELINE_RATIO`]: the binomial
/// distribution's own quantiles, each tail at most [`BASELINE_TAIL`]. Exact
/// rather than the normal approximation, whose bounds are tighter than they
/// claim on the upper side at this size (mean 20 out of 2000, ± 3.29 σ said
/// one failure in a thousand runs and gave one in seven hundred).
pub fn baseline_tolerance(baseline: usize) -> (usize, usize) {
    let mut below = 0.0; // P(X < k)
    let mut low = None;
    for (k, pmf) in baseline_pmf(baseline).enumerate() {
        if low.is_none() && below + pmf > BASELINE_TAIL {
            low = Some(k);
        }
        below += pmf;
        if 1.0 - below <= BASELINE_TAIL {
            return (low.unwrap_or(k), k);
        }
    }
    (low.unwrap_or(0), baseline)
}

/// The chance that a correct tier's count of `baseline` falls outside
/// [`baseline_tolerance`]: the rate at which the claim fails a right answer.
pub fn baseline_false_failure(baseline: usize) -> f64 {
    let (low, high) = baseline_tolerance(baseline);
    baseline_pmf(baseline).enumerate().filter(|(k, _)| *k < low || *k > high).map(|(_, pmf)| pmf).sum()
}

/// P(X = k) for k = 0..=n, X the count of `n` traces each kept with
/// [`BASELINE_RATIO`]: from P(X = 0) = qⁿ by the ratio of successive terms,
/// in logarithms so that no term underflows on the way.
fn baseline_pmf(n: usize) -> impl Iterator<Item = f64> {
    let (p, q) = (BASELINE_RATIO, 1.0 - BASELINE_RATIO);
    (0..=n).scan(n as f64 * q.ln(), move |ln_pmf, k| {
        let pmf = ln_pmf.exp();
        *ln_pmf += ((n - k) as f64 / (k as f64 + 1.0) * p / q).ln();
        Some(pmf)
    })
}

const MIB: f64 = 1024.0 * 1024.0;

/// Judges what the tier kept of the fixed flow.
pub fn judge(data: &TierData) -> StageVerdict {
    let mut claims = Vec::new();
    let mut notes = vec![format!(
        "tier 2 ×{}: decision_wait {:?}, num_traces {} each, policies: {}; the check's slow threshold {} ms",
        data.routing.len(),
        Duration::from_millis(data.decision_wait_ms),
        data.num_traces,
        data.policies.join(", "),
        data.slow_threshold_ms,
    )];

    let threshold = format!("`${{env:{SLOW_MS_VARIABLE}}}`, {} ms in the check", data.slow_threshold_ms);
    let checks_threshold =
        data.slow_policy_threshold_ms == Some(data.slow_threshold_ms) && data.slow_policy_threshold_from_variable;
    claims.push(Claim::new(
        format!("the `slow` policy's threshold is the check's ({threshold})"),
        match data.slow_policy_threshold_ms {
            Some(ms) if checks_threshold => format!("{ms} ms"),
            Some(ms) => format!(
                "{ms} ms: the threshold does not come from `${{env:{SLOW_MS_VARIABLE}}}`, so what counts as slow \
                 is not what the check (or your team) sets"
            ),
            None => "no latency policy named `slow`".to_owned(),
        },
        checks_threshold,
    ));

    for (label, injected, policy, others) in
        [("error", &data.error, "errors", 0), ("slow", &data.slow, "slow", data.slow_baseline)]
    {
        claims.extend(injected_claims(data, label, injected, policy, others));
    }

    let (low, high) = baseline_tolerance(data.baseline_total);
    claims.push(Claim::new(
        format!("baseline traces kept: {}% within a binomial tolerance [{low}, {high}]", BASELINE_RATIO * 100.0),
        format!(
            "{} of {} ({:.2}%), {} dropped",
            data.baseline_kept,
            data.baseline_total,
            100.0 * data.baseline_kept as f64 / (data.baseline_total as f64).max(1.0),
            data.baseline_total.saturating_sub(data.baseline_kept)
        ),
        (low..=high).contains(&data.baseline_kept),
    ));
    if data.slow_baseline > 0 {
        notes.push(format!(
            "{} baseline traces took longer than {} ms (a loaded machine queues the producer); \
             {} of them are in Jaeger",
            data.slow_baseline, data.slow_threshold_ms, data.slow_baseline_kept
        ));
    }
    claims.push(Claim::new(
        "every trace in Jaeger is whole",
        format!("{} of {}", data.kept_whole, data.kept_total),
        data.kept_whole == data.kept_total,
    ));
    claims.push(Claim::new(
        "every kept trace was kept by exactly one tier-2 collector",
        format!(
            "{} split across collectors, {} in no collector's file",
            data.kept_by_several_collectors, data.kept_in_no_collector_file
        ),
        data.kept_by_several_collectors == 0 && data.kept_in_no_collector_file == 0,
    ));
    claims.push(Claim::new(
        "no trace evicted undecided (the num_traces cap was never hit)",
        format!("{} evicted", data.dropped_too_early),
        data.dropped_too_early == 0,
    ));
    let received: Vec<f64> = data.routing.iter().map(|row| row.traces_received).collect();
    claims.push(Claim::new(
        "the load-balancing exporter spread the traces over both tier-2 collectors",
        received.iter().map(|count| format!("{count}")).collect::<Vec<_>>().join(" / "),
        received.len() == 2 && received.iter().all(|&count| count > 0.0),
    ));

    // What sizes `num_traces` (the chapter's rule): new traces per second
    // per collector, over the seconds the requests' spans kept arriving.
    let busiest = received.iter().copied().fold(0.0, f64::max);
    notes.push(format!(
        "traffic: {:.0} new traces per second per tier-2 collector (the busier one: {busiest} traces in {:.1} s \
         of arrivals)",
        busiest / data.arrival_seconds.max(0.001),
        data.arrival_seconds
    ));
    for row in &data.routing {
        notes.push(format!(
            "{}: {} traces received, {} kept ({} spans), RSS {:.0} MiB",
            row.collector,
            row.traces_received,
            row.traces_kept,
            row.spans_kept,
            row.rss_bytes / MIB
        ));
    }
    for exports in &data.tier1_exports {
        notes.push(format!("tier 1 → {}: {} exports ok, {} failed", exports.backend, exports.ok, exports.failed));
    }
    StageVerdict { claims, notes }
}

/// The two claims on one injected trace: it is in Jaeger whole, and its
/// policy (not the 1% that keeps anything now and then) kept it.
fn injected_claims(data: &TierData, label: &str, injected: &InjectedTrace, policy: &str, others: usize) -> [Claim; 2] {
    let spans_per_request = data.spans_per_request;
    let whole =
        injected.spans_in_jaeger == spans_per_request && injected.spans_with_its_trace_id == injected.spans_in_jaeger;
    let expected = 1 + others as u64;
    let claim = if others == 0 {
        format!("the `{policy}` policy kept exactly the injected {label} trace")
    } else {
        format!(
            "the `{policy}` policy kept the injected {label} trace and the {others} baseline traces over the threshold"
        )
    };
    let kept = injected.kept_by_policy;
    let mut measured = if kept == 1 { "1 trace".to_owned() } else { format!("{kept} traces") };
    // `name (type)`: a policy the tier does not run is the cause to name.
    if !data.policies.iter().any(|described| described.split(" (").next() == Some(policy)) {
        measured.push_str(&format!(": the tier runs no policy named `{policy}` ({})", data.policies.join(", ")));
    }
    [
        Claim::new(
            format!("the injected {label} trace is in Jaeger, whole ({spans_per_request} spans, one trace id)"),
            format!("{} spans", injected.spans_in_jaeger),
            whole,
        ),
        Claim::new(claim, measured, kept == expected),
    ]
}

/// Judges step 0's broken flow through the tier: what it kept are
/// fragments, never a request.
pub fn judge_cannot_repair(data: &CannotRepairData) -> StageVerdict {
    let claims = vec![
        Claim::new(
            "no request reaches the backend whole",
            format!("{} of {} whole", data.requests_whole_in_backend, data.requests),
            data.requests_whole_in_backend == 0,
        ),
        Claim::new(
            "what the tier kept are fragments, each sampled on its own trace id",
            format!("{} fragments of {} requests", data.fragments_kept, data.requests_with_a_kept_fragment),
            data.fragments_kept > 0,
        ),
        Claim::new(
            "Jaeger holds every fragment the tier kept",
            format!("{} of {}", data.fragments_in_jaeger, data.fragments_kept),
            data.fragments_in_jaeger == data.fragments_kept,
        ),
        Claim::new(
            "the injected error keeps its own fragment, never the request",
            format!(
                "failed span kept: {}; {} fragment(s) of that order kept; whole: {}",
                data.error_span_kept, data.error_request_fragments_kept, data.error_request_whole
            ),
            data.error_span_kept && !data.error_request_whole,
        ),
    ];
    let mut notes = vec![format!(
        "the broken flow through the same tier: {} requests, {} fragments kept from {} requests",
        data.requests, data.fragments_kept, data.requests_with_a_kept_fragment
    )];
    for (service, count) in &data.fragments_kept_by_service {
        notes.push(format!("kept fragments with {service} spans: {count}"));
    }
    StageVerdict { claims, notes }
}

#[cfg(test)]
mod tests {
    use stitch_model::fixtures::stages;

    use super::*;
    use crate::stage::testing::{all_pass, claim, only_failure};

    #[test]
    fn the_baseline_tolerance_is_binomial_around_one_percent() {
        // 2000 traces: mean 20; P(X < 5) = 1.6e-5 and P(X > 39) = 4.8e-5
        // (exact binomial sums, computed apart from this code).
        let (low, high) = baseline_tolerance(2000);
        assert_eq!((low, high), (5, 39));
        assert_eq!([1000, 200, 4000].map(baseline_tolerance), [(1, 24), (0, 9), (18, 67)]);
        let false_failure = baseline_false_failure(2000);
        assert!((false_failure - 6.40e-5).abs() < 0.01e-5, "{false_failure:e}");
        assert!((low..=high).contains(&20), "a correct tier keeps about 20");
        assert!(!(low..=high).contains(&0), "a tier that drops the baseline fails");
        assert!(!(low..=high).contains(&200), "a tier that keeps 10% fails");
        // Too few traces to expect any: keeping none passes.
        assert_eq!(baseline_tolerance(0), (0, 0));
    }

    #[test]
    fn a_tier_that_keeps_what_matters_passes_every_claim() {
        let verdict = judge(&stages::tier());
        all_pass(&verdict);
        assert_eq!(verdict.claims.len(), 10);
        assert_eq!(
            claim(&verdict, "baseline traces kept").claim,
            "baseline traces kept: 1% within a binomial tolerance [0, 9]"
        );
        assert_eq!(claim(&verdict, "baseline traces kept").measured, "2 of 200 (1.00%), 198 dropped");
        assert_eq!(
            verdict.notes[0],
            "tier 2 ×2: decision_wait 10s, num_traces 4400 each, policies: errors (status_code), slow (latency), \
             baseline (probabilistic); the check's slow threshold 4000 ms"
        );
        assert!(verdict.notes.contains(&"tier 1 → tier2-a: 30 exports ok, 0 failed".to_owned()));
        assert!(verdict.notes.contains(&"tier2-b: 101 traces received, 2 kept (12 spans), RSS 80 MiB".to_owned()));
    }

    #[test]
    fn an_injected_trace_not_whole_in_jaeger_fails() {
        let mut data = stages::tier();
        data.error.spans_in_jaeger = 1;
        let measured =
            only_failure(&judge(&data), "the injected error trace is in Jaeger, whole (6 spans, one trace id)");
        assert_eq!(measured, "1 spans");
        // Six spans, one of them another trace's: not the request whole.
        let mut data = stages::tier();
        data.slow.spans_with_its_trace_id = 5;
        only_failure(&judge(&data), "the injected slow trace is in Jaeger, whole");
    }

    #[test]
    fn a_policy_that_did_not_keep_its_trace_fails() {
        let mut data = stages::tier();
        data.error.kept_by_policy = 0;
        assert_eq!(
            only_failure(&judge(&data), "the `errors` policy kept exactly the injected error trace"),
            "0 traces"
        );
        // The slow policy also owes the baseline traces over the threshold.
        let mut data = stages::tier();
        data.slow_baseline = 2;
        let verdict = judge(&data);
        let measured =
            only_failure(&verdict, "the `slow` policy kept the injected slow trace and the 2 baseline traces");
        assert_eq!(measured, "1 trace");
        assert!(verdict.notes[1].starts_with("2 baseline traces took longer than 4000 ms"), "{:?}", verdict.notes);
    }

    #[test]
    fn a_policy_the_tier_does_not_run_is_named() {
        let mut data = stages::tier();
        data.policies = vec!["baseline (probabilistic)".to_owned()];
        data.error.kept_by_policy = 0;
        let measured = only_failure(&judge(&data), "the `errors` policy kept exactly the injected error trace");
        assert_eq!(measured, "0 traces: the tier runs no policy named `errors` (baseline (probabilistic))");
    }

    #[test]
    fn a_slow_threshold_that_is_not_the_checks_fails() {
        let mut data = stages::tier();
        data.slow_policy_threshold_ms = Some(2000);
        let measured = only_failure(&judge(&data), "the `slow` policy's threshold is the check's");
        assert!(
            measured.starts_with("2000 ms: the threshold does not come from `${env:STITCH_SLOW_MS}`"),
            "{measured}"
        );
        // The check's own number, typed: right today, wrong wherever the variable differs.
        data.slow_policy_threshold_ms = Some(4000);
        data.slow_policy_threshold_from_variable = false;
        let measured = only_failure(&judge(&data), "the `slow` policy's threshold is the check's");
        assert!(
            measured.starts_with("4000 ms: the threshold does not come from `${env:STITCH_SLOW_MS}`"),
            "{measured}"
        );
        data.slow_policy_threshold_ms = None;
        assert_eq!(
            only_failure(&judge(&data), "the `slow` policy's threshold is the check's"),
            "no latency policy named `slow`"
        );
    }

    #[test]
    fn a_baseline_share_outside_the_tolerance_fails() {
        let mut data = stages::tier();
        data.baseline_total = 2000;
        data.baseline_kept = 200;
        let measured = only_failure(&judge(&data), "baseline traces kept: 1% within a binomial tolerance [5, 39]");
        assert_eq!(measured, "200 of 2000 (10.00%), 1800 dropped");
    }

    #[test]
    fn a_trace_in_jaeger_in_part_fails() {
        let mut data = stages::tier();
        data.kept_whole = 3;
        assert_eq!(only_failure(&judge(&data), "every trace in Jaeger is whole"), "3 of 4");
    }

    #[test]
    fn a_trace_split_across_collectors_or_in_no_file_fails() {
        let mut data = stages::tier();
        data.kept_by_several_collectors = 1;
        let measured = only_failure(&judge(&data), "every kept trace was kept by exactly one tier-2 collector");
        assert_eq!(measured, "1 split across collectors, 0 in no collector's file");
        let mut data = stages::tier();
        data.kept_in_no_collector_file = 2;
        let measured = only_failure(&judge(&data), "every kept trace was kept by exactly one tier-2 collector");
        assert_eq!(measured, "0 split across collectors, 2 in no collector's file");
    }

    #[test]
    fn an_eviction_fails() {
        let mut data = stages::tier();
        data.dropped_too_early = 3;
        assert_eq!(only_failure(&judge(&data), "no trace evicted undecided"), "3 evicted");
    }

    #[test]
    fn one_collector_without_traces_fails_the_spread() {
        let mut data = stages::tier();
        data.routing[1].traces_received = 0.0;
        let measured = only_failure(&judge(&data), "the load-balancing exporter spread the traces");
        assert_eq!(measured, "101 / 0");
        let mut data = stages::tier();
        data.routing.pop();
        only_failure(&judge(&data), "the load-balancing exporter spread the traces");
    }

    #[test]
    fn the_broken_flow_through_the_tier_keeps_fragments_only() {
        let verdict = judge_cannot_repair(&stages::cannot_repair());
        all_pass(&verdict);
        assert_eq!(verdict.claims.len(), 4);
        assert_eq!(
            verdict.notes,
            [
                "the broken flow through the same tier: 200 requests, 10 fragments kept from 9 requests",
                "kept fragments with consumer spans: 3",
                "kept fragments with gateway spans: 7",
            ]
        );
    }

    #[test]
    fn each_claim_on_the_broken_flow_fails_with_what_it_measured() {
        let mut data = stages::cannot_repair();
        data.requests_whole_in_backend = 2;
        assert_eq!(only_failure(&judge_cannot_repair(&data), "no request reaches the backend whole"), "2 of 200 whole");

        let mut data = stages::cannot_repair();
        data.fragments_kept = 0;
        data.fragments_in_jaeger = 0;
        data.requests_with_a_kept_fragment = 0;
        let measured = only_failure(&judge_cannot_repair(&data), "what the tier kept are fragments");
        assert_eq!(measured, "0 fragments of 0 requests");

        let mut data = stages::cannot_repair();
        data.fragments_in_jaeger = 7;
        assert_eq!(only_failure(&judge_cannot_repair(&data), "Jaeger holds every fragment"), "7 of 10");

        let mut data = stages::cannot_repair();
        data.error_span_kept = false;
        let measured = only_failure(&judge_cannot_repair(&data), "the injected error keeps its own fragment");
        assert_eq!(measured, "failed span kept: false; 1 fragment(s) of that order kept; whole: false");
        let mut data = stages::cannot_repair();
        data.error_request_whole = true;
        only_failure(&judge_cannot_repair(&data), "the injected error keeps its own fragment");
    }
}
