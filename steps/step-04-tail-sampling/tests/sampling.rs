//! The tier's settings in seconds: this crate's `sampling.yaml`, read as the
//! check reads it, its policies evaluated as tier 2 applies them, on three
//! whole orders of the flow (a failed one, a slow one, an ordinary one). No
//! collector runs: `cargo xtask check step-4` judges the tier itself, and
//! `num_traces`, which only the traffic of a run can size.

use std::path::Path;
use std::time::Duration;

use stitch_model::sampling::{
    CHECK_SLOW_DELAY, CHECK_SLOW_THRESHOLD, SLOW_MS_VARIABLE, SamplingSettings, SpanStatus, Trace, TraceSpan,
};

/// How long an ordinary order takes end to end, here and in the check.
const ORDINARY_MS: u64 = 150;
/// The check's slow order: an ordinary one, held `CHECK_SLOW_DELAY` longer.
const SLOW_MS: u64 = ORDINARY_MS + CHECK_SLOW_DELAY.as_millis() as u64;
/// Tier 2 decides on its next tick after `decision_wait`.
const DECISION_TICK: Duration = Duration::from_secs(1);

/// What a failure says: what tier 2 does, and where to read on.
fn broken(what: &str) -> String {
    format!(
        "sampling.yaml does not keep what matters: {what}\n  \
         read the exercise in book/src/step-04-tail-sampling.md, or take a hint: cargo xtask hint step-4"
    )
}

/// The crate's `sampling.yaml`, as text.
fn text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sampling.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// The crate's settings, with the check's slow threshold.
fn settings() -> SamplingSettings {
    let variables = [(SLOW_MS_VARIABLE, CHECK_SLOW_THRESHOLD.as_millis().to_string())];
    SamplingSettings::parse(&text(), &variables)
        .unwrap_or_else(|err| panic!("{}", broken(&format!("sampling.yaml cannot be read: {err:#}"))))
}

/// One order of the fixed flow, lasting `lasting_ms`; the consumer's span has `status`.
fn order(lasting_ms: u64, status: SpanStatus) -> Trace {
    let span = |service: &str, name: &str, start_ms, end_ms, status| TraceSpan {
        service: service.to_owned(),
        name: name.to_owned(),
        status,
        start_ms,
        end_ms,
    };
    let unset = SpanStatus::Unset;
    Trace {
        spans: vec![
            span("gateway", "POST /orders", 0, 40, unset),
            span("gateway", "POST", 5, 35, unset),
            span("worker", "POST /work", 10, 30, unset),
            span("worker", "prepare order", 20, lasting_ms - 20, unset),
            span("worker", "orders publish", 25, lasting_ms - 20, unset),
            span("consumer", "orders process", lasting_ms - 10, lasting_ms, status),
        ],
    }
}

fn chance(settings: &SamplingSettings, trace: &Trace) -> f64 {
    settings.keeps(trace).unwrap_or_else(|err| panic!("{}", broken(&format!("{err:#}"))))
}

#[test]
fn the_failed_orders_trace_is_kept_every_time() {
    let kept = chance(&settings(), &order(ORDINARY_MS, SpanStatus::Error));
    assert!(
        kept == 1.0,
        "{}",
        broken(&format!(
            "tier 2 keeps a failed order's trace {:.0}% of the time, by luck; a policy on the spans' status keeps \
             it every time",
            kept * 100.0
        ))
    );
}

#[test]
fn the_slow_orders_trace_is_kept_every_time() {
    let kept = chance(&settings(), &order(SLOW_MS, SpanStatus::Unset));
    assert!(
        kept == 1.0,
        "{}",
        broken(&format!(
            "tier 2 keeps a trace of {SLOW_MS} ms {:.0}% of the time, by luck; a policy on the trace's duration, \
             over the check's threshold (${{env:{SLOW_MS_VARIABLE}}}, {} ms), keeps it every time",
            kept * 100.0,
            CHECK_SLOW_THRESHOLD.as_millis()
        ))
    );
}

#[test]
fn the_slow_threshold_is_the_checks() {
    let threshold = settings().slow_threshold_ms();
    let check = CHECK_SLOW_THRESHOLD.as_millis() as u64;
    // Read with another value of the variable too: the check's own number,
    // typed, is right here and wrong wherever the variable differs.
    let follows = SamplingSettings::slow_threshold_follows_variable(&text()).expect("read above");
    if let Some(ms) = threshold {
        assert!(
            ms == check && follows,
            "{}",
            broken(&format!(
                "the `slow` policy's threshold is {ms} ms, whatever the check sets: take it from \
                 ${{env:{SLOW_MS_VARIABLE}}} ({check} ms in the check)"
            ))
        );
    }
}

#[test]
fn an_ordinary_trace_is_kept_one_time_in_a_hundred() {
    let kept = chance(&settings(), &order(ORDINARY_MS, SpanStatus::Unset));
    assert!(
        (kept - 0.01).abs() < 1e-9,
        "{}",
        broken(&format!(
            "tier 2 keeps an ordinary order's trace ({ORDINARY_MS} ms, no error) {:.2}% of the time; the check \
             expects 1%, the baseline, with the failed and the slow ones kept on top",
            kept * 100.0
        ))
    );
}

#[test]
fn the_slow_orders_trace_is_whole_when_tier_2_decides() {
    let settings = settings();
    let decided = settings.decision_wait + DECISION_TICK;
    assert!(
        settings.decision_wait > Duration::from_millis(SLOW_MS),
        "{}",
        broken(&format!(
            "decision_wait {:?}: tier 2 decides on a trace about {decided:?} after its first span, before the last \
             span of the slow order ({SLOW_MS} ms) arrives; it would judge that trace without its end",
            settings.decision_wait
        ))
    );
}

#[test]
fn each_policy_the_check_reads_is_named_as_it_reads_it() {
    let settings = settings();
    for name in ["errors", "slow", "baseline"] {
        assert!(
            settings.policies.iter().any(|policy| policy.name == name),
            "{}",
            broken(&format!(
                "no policy named `{name}`: the check reads each policy's decisions by its name (errors, slow, \
                 baseline); these are {}",
                settings.policies.iter().map(|policy| policy.describe()).collect::<Vec<_>>().join(", ")
            ))
        );
    }
}
