//! The Markdown `cargo xtask report` writes into a chapter's include: a
//! run's section (its stable block, its timings, one request's dump) and a
//! gate check's.

use anyhow::Context as _;
use stitch_judge::verdict::Verdict;
use stitch_model::{CheckRun, GateCheck};
use stitch_runner::step::Step;

use crate::table;

pub(super) fn label(run: &CheckRun) -> &'static str {
    if run.solution { "solution" } else { "unsolved" }
}

/// A run's section between anchors named after the crate it ran
/// (`unsolved`, `solution`): a chapter shows the unsolved run where it poses
/// the exercise, and the solution's only folded, with the answer.
pub(super) fn anchored(label: &str, section: String) -> String {
    format!("<!-- ANCHOR: {label} -->\n{section}<!-- ANCHOR_END: {label} -->\n")
}

/// The part of a run that must not change between runs: services, span
/// counts, orphan classes, verdicts. Timings stay outside it.
pub fn stable_block(step: &Step, run: &CheckRun, verdict: &Verdict) -> String {
    format!(
        "<!-- stable: {} {} -->\n{}\n\n{}\n\n**Verdict:** {}\n<!-- /stable -->",
        step.short_name(),
        label(run),
        table::services_table(verdict).markdown(),
        table::boundaries_table(verdict).markdown(),
        match (verdict.passed, &run.evidence) {
            (true, _) => "pass".to_owned(),
            // What a stage measures varies from run to run; how many of its
            // claims fail is not part of the stable block.
            (false, Some(_)) => "FAIL".to_owned(),
            (false, None) => match verdict.failures.len() {
                1 => "FAIL (1 target missed)".to_owned(),
                missed => format!("FAIL ({missed} targets missed)"),
            },
        }
    )
}

pub(super) fn section(step: &Step, run: &CheckRun, verdict: &Verdict) -> anyhow::Result<String> {
    let title = if run.solution {
        "The solution"
    } else if step.has_solution() {
        "Before the fix"
    } else {
        "The baseline"
    };
    let completeness = &run.report.completeness;
    // A stage's measurements vary from run to run (what a sampler keeps, how
    // long a proxy takes): they stay outside the stable block.
    let evidence = verdict.stage.as_ref().map_or_else(String::new, |stage| {
        // A note of several lines is a span dump: a block, not a bullet.
        let notes: String = stage
            .notes
            .iter()
            .map(|note| if note.contains('\n') { format!("\n```text\n{note}\n```\n\n") } else { format!("- {note}\n") })
            .collect();
        format!("\n\nWhat the stage measured:\n\n{notes}\n{}", table::evidence_table(stage).markdown())
    });
    let dump = run.sample_dump.as_deref().with_context(|| {
        let first = run.orders.first().map_or("no order", |order| order.order_id.as_str());
        format!(
            "{} {}: lineage holds no span of the request the chapter shows ({first})",
            step.short_name(),
            label(run)
        )
    })?;
    Ok(format!(
        "#### {title}: `cargo xtask check {}{}`\n\n{} requests on {}.\n\n{}\n\nCompleteness latency (entry span end → last connected span): p50 {:.0} ms, p99 {:.0} ms. Timings vary from run to run and machine to machine.\n\nOne request, as lineage prints it:\n\n```text\n{}\n```\n",
        step.short_name(),
        if run.solution { " --solution" } else { "" },
        run.requests_sent,
        run.kafka,
        stable_block(step, run, verdict) + &evidence,
        completeness.p50_ms,
        completeness.p99_ms,
        shortened(dump.trim_end(), SAMPLE_LINES)
    ))
}

/// Lines of a request's dump a chapter shows: a batch of a thousand items is
/// two thousand lines, and the shape shows in the first few dozen.
const SAMPLE_LINES: usize = 40;

/// The first `lines` lines of `dump`, and how many were left out.
fn shortened(dump: &str, lines: usize) -> String {
    let all: Vec<&str> = dump.lines().collect();
    if all.len() <= lines {
        return dump.to_owned();
    }
    format!("{}\n  … {} more lines", all[..lines].join("\n"), all.len() - lines)
}

/// The part of a gate check that must not change between runs: which flow
/// the gate let through. What it said (an order id) and timings stay outside.
pub fn stable_gate_block(check: &GateCheck) -> String {
    let wrong = check.flows.iter().filter(|flow| !flow.right()).count();
    format!(
        "<!-- stable: {} {} -->\n{}\n\n**Verdict:** {}\n<!-- /stable -->",
        check.step,
        if check.solution { "solution" } else { "unsolved" },
        crate::gate_check::flows_table(check, false).markdown(),
        match wrong {
            0 => "pass".to_owned(),
            1 => "FAIL (1 flow judged wrong)".to_owned(),
            wrong => format!("FAIL ({wrong} flows judged wrong)"),
        }
    )
}

pub(super) fn gate_section(step: &Step, check: &GateCheck) -> String {
    let said: String = check
        .flows
        .iter()
        .map(|flow| match flow.violations.as_slice() {
            [] => format!("- `{}`: PASS\n", flow.flow),
            violations => format!(
                "- `{}`: REJECT\n{}",
                flow.flow,
                violations.iter().map(|violation| format!("  - {violation}\n")).collect::<String>()
            ),
        })
        .collect();
    let reused = check.flows.iter().all(|flow| !flow.recorded_now);
    let recording = if reused {
        "The flows were those the check above recorded".to_owned()
    } else {
        format!("Recording the flows took {:.0} s", check.recording_seconds)
    };
    format!(
        "#### {}: `cargo xtask check {}{}`\n\n{} requests per recorded flow on {}.\n\n{}\n\n\
         What the gate said about each flow:\n\n{said}\n\
         {recording}; building and running the judge took {:.1} s. Timings vary from run to run and machine to \
         machine.\n",
        if check.solution { "The solution" } else { "Before the fix" },
        step.short_name(),
        if check.solution { " --solution" } else { "" },
        check.requests_per_flow,
        check.kafka,
        stable_gate_block(check),
        check.judging_seconds
    )
}

#[cfg(test)]
mod tests {
    use stitch_model::fixtures::{STEP_1, step};

    use super::*;
    use crate::report::KAFKA;

    #[test]
    fn a_long_dump_is_shortened_and_says_by_how_much() {
        let dump = (1..=50).map(|n| format!("line {n}")).collect::<Vec<_>>().join("\n");
        let shown = shortened(&dump, 40);
        assert!(shown.starts_with("line 1\n") && shown.contains("line 40\n"));
        assert!(!shown.contains("line 41"));
        assert!(shown.ends_with("… 10 more lines"));
        assert_eq!(shortened("one\ntwo", 40), "one\ntwo");
    }

    fn gate_check(let_through: bool) -> GateCheck {
        let flow = |name: &str, should_pass: bool, violations: &[&str]| stitch_model::JudgedFlow {
            flow: name.to_owned(),
            wrong: "what is wrong".to_owned(),
            should_pass,
            violations: violations.iter().map(|line| (*line).to_owned()).collect(),
            recorded_now: true,
        };
        let trap = if let_through { vec![] } else { vec!["50 requests do not have 6 spans (e.g. ord-1 has 5)"] };
        GateCheck {
            step: "step-5".to_owned(),
            solution: !let_through,
            kafka: KAFKA.to_string(),
            requests_per_flow: 50,
            flows: vec![flow("fixed", true, &[]), flow("log-filter", false, &trap)],
            recording_seconds: 12.0,
            judging_seconds: 1.0,
        }
    }

    #[test]
    fn the_gate_tables_stable_block_names_no_order_id_and_counts_the_wrong_flows() {
        let judged = stable_gate_block(&gate_check(false));
        assert!(judged.contains("| log-filter | what is wrong | REJECT | REJECT | right |"), "{judged}");
        assert!(!judged.contains("ord-1") && judged.contains("**Verdict:** pass"), "{judged}");
        let slipped = stable_gate_block(&gate_check(true));
        assert!(slipped.contains("| log-filter | what is wrong | REJECT | PASS | WRONG |"), "{slipped}");
        assert!(slipped.contains("**Verdict:** FAIL (1 flow judged wrong)"), "{slipped}");
        assert!(gate_section(&step(5, STEP_1), &gate_check(false)).contains("ord-1 has 5"));
    }
}
