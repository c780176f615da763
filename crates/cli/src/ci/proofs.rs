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
        let Some(row) = verdict.boundaries.iter().find(|row| &row.boundary == boundary) else {
            problems.push(format!("{boundary} should break, but lineage's report has no row for it"));
            continue;
        };
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
        let Some(row) = verdict.services.iter().find(|row| &row.service == service) else {
            problems.push(format!(
                "{service} should have an orphan rate of at least {}, but no span of it reached lineage",
                percent(*min)
            ));
            continue;
        };
        let rate = row.orphan_rate;
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
    use lineage::Boundary;
    use stitch_judge::verdict;
    use stitch_model::fixtures::{EXPECTED_CHAIN as CHAIN, STEP_1, run, service, step};
    use stitch_model::{GateCheck, JudgedFlow};

    /// Step 1 unsolved as it should be: every request breaks at the HTTP hop.
    fn unsolved_run() -> stitch_model::CheckRun {
        let services = vec![
            service("consumer", 200, 0, Boundary::Messaging),
            service("gateway", 200, 0, Boundary::Http),
            service("worker", 600, 200, Boundary::Http),
        ];
        run(200, services, [200, 0, 0], &CHAIN[1..])
    }

    #[test]
    fn an_unsolved_run_that_breaks_where_the_step_teaches_is_proven() {
        let step = step(1, STEP_1);
        let run = unsolved_run();
        let verdict = verdict::judge(&step, &run);
        assert_eq!(super::prove_unsolved(&step, &run, &verdict), Vec::<String>::new());
    }

    #[test]
    fn an_expected_break_without_a_row_is_a_problem_not_a_pass() {
        let step = step(1, STEP_1);
        let mut run = unsolved_run();
        run.report.boundaries.retain(|row| row.boundary != Boundary::Http);
        let verdict = verdict::judge(&step, &run);
        let problems = super::prove_unsolved(&step, &run, &verdict);
        assert!(
            problems.contains(&"http should break, but lineage's report has no row for it".to_owned()),
            "{problems:?}"
        );
    }

    #[test]
    fn an_expected_orphan_rate_of_a_service_lineage_never_saw_is_a_problem() {
        let text = STEP_1.replace(
            "min_break_rate = { http = 0.95 }\n",
            "min_break_rate = { http = 0.95 }\nmin_orphan_rate = { worker = 0.3 }\n",
        );
        let step = step(1, &text);
        let mut run = unsolved_run();
        let verdict = verdict::judge(&step, &run);
        assert_eq!(super::prove_unsolved(&step, &run, &verdict), Vec::<String>::new());
        run.report.services.retain(|row| row.service != "worker");
        let verdict = verdict::judge(&step, &run);
        let problems = super::prove_unsolved(&step, &run, &verdict);
        assert!(
            problems.contains(
                &"worker should have an orphan rate of at least 30%, but no span of it reached lineage".to_owned()
            ),
            "{problems:?}"
        );
    }

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
