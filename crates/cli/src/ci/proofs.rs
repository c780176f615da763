//! What `cargo xtask ci` asks of each step's run: unsolved, it fails with the
//! orphan class the step teaches; solved, it passes (and the final flow
//! passes the CI gate); step 5's gate judges its flows as it should.

use std::collections::BTreeSet;

use anyhow::Context as _;
use lineage::{Boundary, Cause};
use stitch_judge::gate;
use stitch_judge::verdict::{Verdict, percent};
use stitch_model::{CheckRun, GateCheck};
use stitch_runner::step::{self, Step};

/// One line on stderr after a run: its rates, per service and boundary.
pub(super) fn summarise(run: &CheckRun, verdict: &Verdict) {
    let services: Vec<String> =
        verdict.services.iter().map(|row| format!("{} {}", row.service, percent(row.orphan_rate))).collect();
    let boundaries: Vec<String> =
        verdict.boundaries.iter().map(|row| format!("{} {}", row.boundary, percent(row.break_rate))).collect();
    eprintln!(
        "   orphan rate: {} · break rate: {} · p99 completeness {:.0} ms",
        services.join(", "),
        boundaries.join(", "),
        run.report.completeness.p99_ms
    );
}

fn spans_per_request(run: &CheckRun) -> f64 {
    run.report.spans_settled as f64 / run.orders.len().max(1) as f64
}

pub(super) fn prove_unsolved(step: &Step, run: &CheckRun, verdict: &Verdict) -> Vec<String> {
    let mut problems = Vec::new();
    if verdict.passed {
        problems.push("passes without the fix: the lesson teaches nothing".to_owned());
    }
    let taught: BTreeSet<Boundary> = step.meta.teaches.iter().copied().collect();
    for row in &verdict.boundaries {
        if row.passed == Some(false) && !taught.contains(&row.boundary) {
            problems.push(format!("fails at the {} boundary, which this step does not teach", row.boundary));
        }
    }
    let expectation = match step.meta.unsolved.as_ref().context("no [unsolved] in step.toml") {
        Ok(expectation) => expectation,
        Err(err) => return vec![format!("{err:#}")],
    };
    for (boundary, min) in &expectation.min_break_rate {
        let Some(row) = verdict.boundaries.iter().find(|row| &row.boundary == boundary) else { continue };
        if row.break_rate < *min {
            problems.push(format!(
                "{boundary} breaks in {} of requests, expected at least {}",
                percent(row.break_rate),
                percent(*min)
            ));
        }
        if row.cause != Some(Cause::RootInInternalService) {
            let cause = row.cause.map_or("none", Cause::as_str);
            problems.push(format!("{boundary} break has cause {cause}, expected root-in-internal-service"));
        }
    }
    for (service, min) in &expectation.min_orphan_rate {
        let rate = verdict.services.iter().find(|row| &row.service == service).map_or(0.0, |row| row.orphan_rate);
        if rate < *min {
            problems.push(format!("{service} orphan rate {} is under the expected {}", percent(rate), percent(*min)));
        }
    }
    check_span_count(run, expectation.spans_per_request, &mut problems);
    problems
}

/// Unsolved, the gate must let the fixed flow through (it fails for the
/// lesson's reason, not a crash or a gate that rejects everything) and let at
/// least one broken flow through.
pub(super) fn prove_gate_unsolved(check: &GateCheck) -> Vec<String> {
    let mut problems: Vec<String> = check
        .flows
        .iter()
        .filter(|flow| flow.should_pass && !flow.right())
        .map(|flow| format!("the unsolved gate rejects the fixed flow `{}`: {}", flow.flow, flow.violations.join("; ")))
        .collect();
    if !check.flows.iter().any(|flow| !flow.should_pass && !flow.right()) {
        problems.push("the unsolved gate rejects every broken flow: the lesson teaches nothing".to_owned());
    }
    problems
}

pub(super) fn prove_gate_solution(check: &GateCheck) -> Vec<String> {
    check.failures()
}

pub(super) fn prove_solution(step: &Step, run: &CheckRun, verdict: &Verdict) -> Vec<String> {
    let mut problems: Vec<String> = verdict.failures.clone();
    if let Some(solved) = &step.meta.solved {
        check_span_count(run, solved.spans_per_request, &mut problems);
    }
    // The last step's solution is the final flow: it must pass the CI gate too.
    if step::final_flow().is_ok_and(|last| last.name == step.name) {
        match gate::Baseline::read(&stitch_runner::gate_flows::baseline_path()) {
            Ok(baseline) => problems.extend(gate::violations(run, &baseline)),
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    problems
}

fn check_span_count(run: &CheckRun, expected: u64, problems: &mut Vec<String>) {
    let per_request = spans_per_request(run);
    if (per_request - expected as f64).abs() > f64::EPSILON {
        problems.push(format!("{per_request:.2} spans per request reached lineage, expected {expected}"));
    }
}

#[cfg(test)]
mod tests {
    use stitch_model::{GateCheck, JudgedFlow};

    fn check(fixed_passes: bool, broken_rejected: bool) -> GateCheck {
        let flow = |name: &str, should_pass: bool, rejected: bool| JudgedFlow {
            flow: name.to_owned(),
            wrong: "what is wrong".to_owned(),
            should_pass,
            violations: if rejected { vec!["a violation".to_owned()] } else { vec![] },
            recorded_now: false,
        };
        GateCheck {
            step: "step-5".to_owned(),
            solution: false,
            kafka: "tansu".to_owned(),
            requests_per_flow: 50,
            flows: vec![flow("fixed", true, !fixed_passes), flow("log-filter", false, broken_rejected)],
            recording_seconds: 0.0,
            judging_seconds: 0.0,
        }
    }

    #[test]
    fn an_unsolved_gate_must_pass_the_fixed_flow_and_let_a_broken_one_through() {
        assert_eq!(super::prove_gate_unsolved(&check(true, false)), Vec::<String>::new());
        let strict = super::prove_gate_unsolved(&check(false, false));
        assert_eq!(strict.len(), 1, "{strict:?}");
        assert!(strict[0].starts_with("the unsolved gate rejects the fixed flow `fixed`"), "{strict:?}");
        assert_eq!(
            super::prove_gate_unsolved(&check(true, true)),
            ["the unsolved gate rejects every broken flow: the lesson teaches nothing"]
        );
        assert_eq!(super::prove_gate_solution(&check(true, true)), Vec::<String>::new());
        assert_eq!(super::prove_gate_solution(&check(true, false)), ["log-filter: let through (what is wrong)"]);
    }
}
