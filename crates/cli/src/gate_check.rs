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
    let check = gate_judge::run(&GateCheckOptions {
        step: step.clone(),
        lesson: LessonCrate::of(step, solution),
        requests,
        kafka,
        record_anew: false,
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&check)?);
    } else {
        print(step, &check);
    }
    crate::status::record(step, solution, check.passed(), &check.failures(), started.elapsed())?;
    if !json {
        println!("\n{}", crate::status::after_check(step, solution, check.passed())?);
    }
    Ok(if check.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
