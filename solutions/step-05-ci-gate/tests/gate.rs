//! The lesson's gate in seconds, on hand-made runs: the fixed flow passes it,
//! and each way a flow can break is rejected. `cargo xtask check step-5`
//! stays the end-to-end judge, on recorded runs of real flows.

use lineage::Boundary;
use step_05_ci_gate_solution::gate::violations;
use stitch_model::Baseline;
use stitch_model::CheckRun;
use stitch_model::fixtures::{EXPECTED_CHAIN, run, service};

/// What a failure says: which broken flow got through, and where to read on.
fn let_through(what: &str) -> String {
    format!(
        "the gate lets a broken flow through: {what}\n  \
         read the exercise in book/src/step-05-ci-gate.md, or take a hint: cargo xtask hint step-5"
    )
}

/// As committed in `ci/gate-baseline.toml`: no orphans allowed.
fn baseline() -> Baseline {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(Baseline::PATH);
    Baseline::read(&path).expect("ci/gate-baseline.toml parses")
}

/// The fixed flow: 200 requests, each one trace with the expected chain,
/// plus `worker_orphans` orphaned worker spans outside any request.
fn fixed(worker_orphans: u64) -> CheckRun {
    let services = vec![
        service("consumer", 200, 0, Boundary::Messaging),
        service("gateway", 400, 0, Boundary::Http),
        service("worker", 600 + worker_orphans, worker_orphans, Boundary::Async),
    ];
    run(200, services, [0, 0, 0], &EXPECTED_CHAIN)
}

/// Asserts that the lesson's gate rejects `run`.
fn assert_rejected(run: &CheckRun, what: &str) {
    assert!(!violations(run, &baseline()).is_empty(), "{}", let_through(what));
}

#[test]
fn the_fixed_flow_passes() {
    let run = fixed(0);
    assert_eq!(
        violations(&run, &baseline()),
        Vec::<String>::new(),
        "the gate rejects the fixed flow; read book/src/step-05-ci-gate.md"
    );
}

#[test]
fn a_run_without_requests_is_rejected() {
    let mut run = fixed(0);
    run.orders.clear();
    run.shapes.clear();
    assert_rejected(&run, "no request was accepted");
}

#[test]
fn a_request_in_two_traces_is_rejected() {
    let mut run = fixed(0);
    run.shapes[7].traces = 2;
    run.shapes[7].chain = None;
    assert_rejected(&run, "one request is two trace fragments (the consumer started its own trace)");
}

#[test]
fn a_connected_trace_that_lost_a_hop_is_rejected() {
    // The `reqwest=off` log filter: no gateway client span, the worker's
    // server span under the gateway's, every span connected (0% orphans).
    let chain: Vec<&str> = EXPECTED_CHAIN.iter().copied().filter(|hop| *hop != "gateway:client").collect();
    let services = vec![
        service("consumer", 200, 0, Boundary::Messaging),
        service("gateway", 200, 0, Boundary::Http),
        service("worker", 600, 0, Boundary::Async),
    ];
    let run = run(200, services, [0, 0, 0], &chain);
    assert_rejected(&run, "every request is one connected trace of 5 spans, the gateway's client span missing");
}

#[test]
fn a_span_under_the_wrong_parent_is_rejected() {
    let mut run = fixed(0);
    run.shapes[0].chain.as_mut().expect("a chain").swap(3, 4);
    assert_rejected(&run, "one request's publish span is the parent of its deferred work");
}

#[test]
fn an_internal_service_at_the_limit_is_rejected() {
    // Worker spans outside any request that start traces of their own: every
    // request still whole, 60 of 660 worker spans orphans.
    assert_rejected(&fixed(60), "the worker orphans 9% of its spans");
}

#[test]
fn an_orphan_rate_above_the_baseline_is_rejected_under_the_limit() {
    // 3 of 603 worker spans: under the 1% limit, above the committed 0%.
    assert_rejected(&fixed(3), "the worker's orphan rate rose from the committed 0% to 0.5%");
}

#[test]
fn a_service_missing_from_lineage_is_rejected() {
    let mut run = fixed(0);
    run.report.services.retain(|row| row.service != "consumer");
    assert_rejected(&run, "no consumer span reached lineage");
}
