//! Step 5's check: the learner's gate, built as the step's own binary (the
//! judge), is run on recorded flows (`gate_flows`), and each verdict is
//! compared with what a correct gate says. The judge runs as a separate
//! process, so a lesson that does not compile or panics fails the check with
//! a message and never breaks the harness or xtask.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::gate_flows::{self, FlowOptions, GateFlow};
use crate::kafka::BrokerKind;
use crate::lesson::LessonCrate;
use crate::process::{self, binary};
pub use stitch_model::JudgeKind;
use stitch_model::{GateCheck, JudgedFlow, Judgement, Step};

/// How to run step 5's check.
#[derive(Debug, Clone)]
pub struct GateCheckOptions {
    pub step: Step,
    /// The crate whose binary is the judge: the learner's, the solution's,
    /// or a copy with other lesson files.
    pub lesson: LessonCrate,
    /// Requests per recorded flow.
    pub requests: usize,
    pub kafka: BrokerKind,
    /// Records every flow again instead of reusing kept runs.
    pub record_anew: bool,
}

/// Builds the judge, records (or reuses) the flows, and judges each.
pub fn run(options: &GateCheckOptions) -> anyhow::Result<GateCheck> {
    let package = options.lesson.binary.clone();
    let started = std::time::Instant::now();
    options.lesson.build().with_context(|| {
        format!(
            "the judge ({package}) does not build: fix the compiler errors above in {}",
            options.lesson.dir.join("src").display()
        )
    })?;
    let built = started.elapsed();
    let recording = std::time::Instant::now();
    let flows = gate_flows::record(&FlowOptions {
        requests: options.requests,
        kafka: options.kafka,
        record_anew: options.record_anew,
    })?;
    let recording_seconds =
        if flows.iter().any(|flow| flow.recorded_now) { recording.elapsed().as_secs_f64() } else { 0.0 };
    let judging = std::time::Instant::now();
    let judged = flows
        .iter()
        .map(|flow| judge(&package, &gate_flows::baseline_path(), flow))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(GateCheck {
        step: options.step.short_name(),
        solution: options.lesson.is_solution(),
        kafka: options.kafka.to_string(),
        requests_per_flow: options.requests,
        flows: judged,
        recording_seconds,
        judging_seconds: (built + judging.elapsed()).as_secs_f64(),
    })
}

/// Runs the judge, `package`'s binary, on one flow's run file.
fn judge(package: &str, baseline: &Path, flow: &GateFlow) -> anyhow::Result<JudgedFlow> {
    let judge = binary(package);
    let args: [std::ffi::OsString; 3] = ["--baseline".into(), baseline.into(), flow.run_file.clone().into()];
    // The panic's message, not a backtrace that pushes it off the screen.
    let output = duct::cmd(&judge, args)
        .env("RUST_BACKTRACE", "0")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("starting the judge {}", judge.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "the judge failed on the flow `{}` ({}), {}:\n{}\nA panic in the lesson (src/gate.rs) shows here; \
             `cargo test -p {}` runs the same code on hand-made runs.",
            flow.name,
            flow.run_file.display(),
            output.status,
            process::tail(&stderr, 20),
            package
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let judgement = parse(&stdout, &flow.run_file).with_context(|| {
        format!(
            "reading the judge's answer on the flow `{}`: the judge's src/main.rs prints it and is not part of \
             the lesson; restore it with `git checkout -- src/main.rs` in the step's directory",
            flow.name
        )
    })?;
    Ok(JudgedFlow {
        flow: flow.name.clone(),
        wrong: flow.wrong.clone(),
        should_pass: flow.should_pass,
        violations: judgement.violations,
        recorded_now: flow.recorded_now,
    })
}

/// The judge's one line about `run_file`.
fn parse(stdout: &str, run_file: &Path) -> anyhow::Result<Judgement> {
    let lines: Vec<&str> = stdout.lines().filter(|line| !line.trim().is_empty()).collect();
    let [line] = lines.as_slice() else {
        bail!("expected one JSON line on stdout, got {}:\n{}", lines.len(), process::tail(stdout, 10));
    };
    let judgement: Judgement =
        serde_json::from_str(line).with_context(|| format!("not a judgement: {}", process::tail(line, 3)))?;
    if judgement.run != run_file {
        bail!("the judgement is about {}, not {}", judgement.run.display(), run_file.display());
    }
    Ok(judgement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(should_pass: bool, violations: &[&str]) -> JudgedFlow {
        JudgedFlow {
            flow: "fixed".to_owned(),
            wrong: "nothing".to_owned(),
            should_pass,
            violations: violations.iter().map(|line| (*line).to_owned()).collect(),
            recorded_now: false,
        }
    }

    #[test]
    fn a_flow_is_judged_right_when_the_gate_says_what_it_should() {
        assert!(flow(true, &[]).right());
        assert!(flow(false, &["1 of 50 requests are not one trace"]).right());
        assert!(!flow(false, &[]).right());
        assert!(!flow(true, &["worker: no spans reached lineage"]).right());
    }

    #[test]
    fn the_check_fails_when_one_flow_slipped_through() {
        let check = |flows| GateCheck {
            step: "step-5".to_owned(),
            solution: false,
            kafka: "tansu".to_owned(),
            requests_per_flow: 50,
            flows,
            recording_seconds: 0.0,
            judging_seconds: 0.0,
        };
        assert!(check(vec![flow(true, &[]), flow(false, &["x"])]).passed());
        let slipped = check(vec![flow(true, &[]), flow(false, &[])]);
        assert!(!slipped.passed());
        assert_eq!(slipped.failures(), ["fixed: let through (nothing)"]);
    }

    #[test]
    fn the_judges_answer_must_be_one_line_about_the_run() {
        let run = Path::new("/runs/fixed.json");
        let answer = r#"{"run":"/runs/fixed.json","violations":["a"]}"#;
        assert_eq!(parse(answer, run).unwrap().violations, ["a"]);
        let error = format!("{:#}", parse("", run).unwrap_err());
        assert!(error.contains("one JSON line"), "{error}");
        let error = format!("{:#}", parse("thread 'main' panicked", run).unwrap_err());
        assert!(error.contains("not a judgement"), "{error}");
        let error = format!("{:#}", parse(answer, Path::new("/runs/other.json")).unwrap_err());
        assert!(error.contains("not /runs/other.json"), "{error}");
    }
}
