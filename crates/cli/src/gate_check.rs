//! `cargo xtask check step-5`: the learner's gate, judged on recorded flows.
//! One table: each flow, what is wrong with it, what the gate should say and
//! what it said.

use std::process::ExitCode;

use stitch_components::kafka::BrokerKind;
use stitch_model::{GateCheck, JudgedFlow};
use stitch_runner::gate_judge::{self, GateCheckOptions};
use stitch_runner::lesson::LessonCrate;
use stitch_runner::step::Step;

use crate::table::Table;

/// Runs step 5's check and prints (or, with `json`, returns as JSON) its table.
pub fn command(
    step: &Step,
    solution: bool,
    requests: usize,
    kafka: BrokerKind,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let lesson = LessonCrate::of(step, solution);
    let package = lesson.binary.clone();
    let check = gate_judge::run(&GateCheckOptions { step: step.clone(), lesson, requests, kafka, record_anew: false })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&self::json(&package, &check)?)?);
    } else {
        print(step, &check);
    }
    crate::status::record(step, solution, check.passed(), &check.failures(), started.elapsed())?;
    if !json {
        println!("\n{}", crate::status::after_check(step, solution, check.passed())?);
    }
    Ok(if check.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The `--json` object of a gate check: the check's verdict (every flow
/// judged right), then each flow and the timings.
pub fn json(package: &str, check: &GateCheck) -> anyhow::Result<serde_json::Value> {
    let head = crate::check_json::CheckVerdict {
        step: check.step.clone(),
        package: package.to_owned(),
        solution: check.solution,
        kafka: check.kafka.clone(),
        passed: check.passed(),
        failures: check.failures(),
    };
    crate::check_json::object(&head, serde_json::to_value(check)?)
}

/// The table of a gate check: one row per flow. With `reasons`, what the gate
/// said includes its first violation (which names an order id, so it changes
/// from run to run); without, it is PASS or REJECT.
pub fn flows_table(check: &GateCheck, reasons: bool) -> Table {
    let mut table = Table::new(
        &["flow", "what is wrong with it", "the gate should", "the gate said", "verdict"],
        &[false, false, false, false, false],
    );
    for flow in &check.flows {
        table.row(vec![
            flow.flow.clone(),
            flow.wrong.clone(),
            if flow.should_pass { "PASS" } else { "REJECT" }.to_owned(),
            if reasons {
                said(flow)
            } else if flow.passed_the_gate() {
                "PASS".to_owned()
            } else {
                "REJECT".to_owned()
            },
            if flow.right() { "right" } else { "WRONG" }.to_owned(),
        ]);
    }
    table
}

/// What the gate said, in one cell: pass, or its first violation.
fn said(flow: &JudgedFlow) -> String {
    match flow.violations.as_slice() {
        [] => "PASS".to_owned(),
        [only] => format!("REJECT: {only}"),
        [first, rest @ ..] => format!("REJECT: {first} (+{} more)", rest.len()),
    }
}

fn print(step: &Step, check: &GateCheck) {
    let which = if check.solution { "solution" } else { "your crate" };
    let reused = check.flows.iter().filter(|flow| !flow.recorded_now).count();
    println!(
        "\n{} · {} · {} ({which}) · Kafka: {} · {} requests per flow · {} flows, {reused} reused from an earlier \
         check · recording {:.1} s, judging {:.1} s\n",
        check.step,
        step.meta.title,
        step.package(check.solution),
        check.kafka,
        check.requests_per_flow,
        check.flows.len(),
        check.recording_seconds,
        check.judging_seconds
    );
    println!("{}\n", flows_table(check, true).render());
    for flow in check.flows.iter().filter(|flow| flow.violations.len() > 1) {
        println!("  {} — every violation the gate found:", flow.flow);
        for violation in &flow.violations {
            println!("    - {violation}");
        }
    }
    if check.passed() {
        println!("\nPASSED: the gate lets the fixed flow through and rejects every broken one.");
    } else {
        println!("\nFAILED:");
        for failure in check.failures() {
            println!("  - {failure}");
        }
        let hint = crate::hint::after_failure(step);
        if !hint.is_empty() {
            println!("\n{hint}");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use stitch_judge::verdict;
    use stitch_model::fixtures::{EXPECTED_CHAIN as CHAIN, STEP_1, run, service, step};
    use stitch_model::{GateCheck, JudgedFlow};

    fn gate_check(let_through: bool) -> GateCheck {
        let flow = |name: &str, should_pass: bool, violations: Vec<String>| JudgedFlow {
            flow: name.to_owned(),
            wrong: "spans lost".to_owned(),
            should_pass,
            violations,
            recorded_now: true,
        };
        let caught = if let_through { vec![] } else { vec!["the worker's orphan rate rose".to_owned()] };
        GateCheck {
            step: "step-5".to_owned(),
            solution: !let_through,
            kafka: "tansu".to_owned(),
            requests_per_flow: 50,
            flows: vec![flow("fixed", true, vec![]), flow("log-filter", false, caught)],
            recording_seconds: 1.0,
            judging_seconds: 1.0,
        }
    }

    /// The fields a script reads, whatever the step's kind.
    const VERDICT: [&str; 6] = ["step", "package", "solution", "kafka", "passed", "failures"];

    #[test]
    fn a_gate_checks_json_carries_the_same_verdict_as_a_runs() {
        let passed = super::json("step-05-ci-gate-solution", &gate_check(false)).unwrap();
        assert_eq!((passed["passed"].clone(), passed["failures"].clone()), (Value::Bool(true), serde_json::json!([])));
        let failed = super::json("step-05-ci-gate", &gate_check(true)).unwrap();
        assert_eq!(failed["passed"], false);
        assert_eq!(failed["failures"], serde_json::json!(["log-filter: let through (spans lost)"]));
        assert_eq!(failed["flows"].as_array().map(Vec::len), Some(2));

        let step = step(1, STEP_1);
        let run = run(200, vec![service("gateway", 400, 0, lineage::Boundary::Http)], [0, 0, 0], &CHAIN);
        let flow = crate::table::json(&step, &run, &verdict::judge(&step, &run)).unwrap();
        for field in VERDICT {
            assert!(failed.get(field).is_some() && flow.get(field).is_some(), "{field}");
            assert_eq!(
                std::mem::discriminant(&failed[field]),
                std::mem::discriminant(&flow[field]),
                "{field} has one type in both"
            );
        }
    }
}
