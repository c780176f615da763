//! The CI gate, end to end: the final solution must stitch every request into
//! one trace with the expected parent chain on both brokers, and the unsolved
//! steps must fail it.

use std::sync::Mutex;

use stitch_components::kafka::BrokerKind;
use stitch_judge::gate::{self, Baseline};
use stitch_model::CheckRun;
use stitch_runner::check::{self, CheckOptions};
use stitch_runner::lesson::LessonCrate;
use stitch_runner::step;

/// Runs share two cores and Kafka start-up: one at a time.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

const REQUESTS: usize = 100;

fn run(step_name: &str, solution: bool, kafka: BrokerKind) -> CheckRun {
    let _serial = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let step = step::find(step_name).expect("the step exists");
    check::run(&CheckOptions {
        lesson: LessonCrate::of(&step, solution),
        step,
        requests: REQUESTS,
        kafka,
        concurrency: 8,
    })
    .unwrap_or_else(|err| panic!("{step_name} on {kafka} did not run: {err:#}"))
}

fn final_step() -> String {
    step::final_flow().expect("steps").name
}

fn assert_gate_passes(kafka: BrokerKind) {
    let run = run(&final_step(), true, kafka);
    let violations =
        gate::violations(&run, &Baseline::read(&stitch_runner::gate_flows::baseline_path()).expect("baseline"));
    assert!(violations.is_empty(), "the final solution fails the gate on {kafka}:\n{}", violations.join("\n"));
    assert_eq!(run.shapes.len(), REQUESTS, "every request was accepted and looked up");
    assert!(run.shapes.iter().all(|shape| shape.traces == 1 && shape.spans == gate::EXPECTED_CHAIN.len()));
}

#[test]
fn final_solution_passes_the_gate_on_tansu() {
    assert_gate_passes(BrokerKind::Tansu);
}

#[test]
fn final_solution_passes_the_gate_on_apache_kafka() {
    assert_gate_passes(BrokerKind::Apache);
}

#[test]
fn each_unsolved_step_fails_the_gate() {
    // Steps 0–3 teach propagation; the later steps add a stage around the
    // fixed flow or judge its runs, and have checks of their own.
    for step in step::all().expect("steps").into_iter().filter(|step| step.is_flow()) {
        let run = run(&step.name, false, BrokerKind::Tansu);
        let violations =
            gate::violations(&run, &Baseline::read(&stitch_runner::gate_flows::baseline_path()).expect("baseline"));
        assert!(
            violations.iter().any(|violation| violation.contains("not one trace")),
            "{} unsolved should shatter requests; the gate said: {violations:?}",
            step.name
        );
        assert!(
            violations.iter().any(|violation| violation.contains("orphan rate")),
            "{} unsolved should orphan spans in an internal service; the gate said: {violations:?}",
            step.name
        );
    }
}

#[test]
fn baseline_is_never_above_the_limit() {
    let baseline = Baseline::read(&stitch_runner::gate_flows::baseline_path()).expect("ci/gate-baseline.toml parses");
    assert!(!baseline.services.is_empty());
    for (service, rate) in &baseline.services {
        assert!(*rate < gate::ORPHAN_RATE_LIMIT, "{service}: a baseline of {rate} could never fail the gate");
    }
}
