//! `cargo xtask ci`: proves every unsolved step fails with exactly the orphan
//! class it teaches, every solution passes, and each step differs from its
//! solution only in its lesson files.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use lineage::{Boundary, Cause};
use stitch_components::kafka::BrokerKind;
use stitch_components::process;
use stitch_judge::gate;
use stitch_judge::verdict::{self, Verdict, percent};
use stitch_model::{CheckRun, GateCheck};
use stitch_paths::project_root;
use stitch_runner::check::{self, CheckOptions};
use stitch_runner::gate_judge::{self, GateCheckOptions};
use stitch_runner::lesson::LessonCrate;
use stitch_runner::step::{self, Step, StepDirs as _};

/// The lint gate, before anything slow: formatting, then clippy with every
/// warning an error. Either failing stops `ci` at once.
fn lint() -> anyhow::Result<()> {
    type Gate<'a> = (&'a str, &'a [&'a dyn AsRef<std::ffi::OsStr>], &'a str);
    let gates: [Gate; 2] = [
        ("cargo fmt --all -- --check", &[&"fmt", &"--all", &"--", &"--check"], "run `cargo fmt --all` and commit"),
        (
            "cargo clippy --workspace --all-targets -- -D warnings",
            &[&"clippy", &"--workspace", &"--all-targets", &"--", &"-D", &"warnings"],
            "fix the warnings above",
        ),
    ];
    for (name, args, fix) in gates {
        eprintln!("── {name}");
        let status = process::cargo(args).unchecked().run().with_context(|| format!("running {name}"))?.status;
        if !status.success() {
            anyhow::bail!("lint gate: `{name}` failed; {fix}");
        }
    }
    Ok(())
}

/// One proof and what was wrong with it.
struct Proof {
    name: String,
    problems: Vec<String>,
}

pub fn run(kafka: &str, requests: usize, no_tests: bool) -> anyhow::Result<ExitCode> {
    let brokers: Vec<BrokerKind> = match kafka {
        "both" => vec![BrokerKind::Tansu, BrokerKind::Apache],
        one => vec![one.parse().map_err(|err| anyhow::anyhow!("--kafka {one}: {err}"))?],
    };
    let mut clock = Clock::start();
    let steps = step::all()?;
    step::validate(&steps)?;
    lint()?;
    clock.lap("fmt and clippy");
    let mut proofs = Vec::new();
    let mut runs = Vec::new();

    // The slow installs build while the tests and the first step proofs
    // mostly wait on sockets: the collector and Jaeger (Go module proxy) from
    // the start, mdbook (crates.io) once the tests are built. What needs them
    // comes after.
    let tools = install_in_background(&[
        ("the collector", stitch_components::otelcol::install_collector),
        ("Jaeger", stitch_components::otelcol::install_jaeger),
    ]);

    for step in steps.iter().filter(|step| step.has_solution()) {
        proofs.push(Proof {
            name: format!("{}: solution changes only the lesson", step.short_name()),
            problems: lesson_only(step),
        });
    }
    if !no_tests {
        // The two-opentelemetry-versions trap is a workspace of its own, so
        // that its second opentelemetry never enters ours.
        let two_versions = project_root().join("traps").join("two-otel-versions").join("Cargo.toml");
        let target_dir = process::target_dir();
        let workspace = crate::fast_tests::workspace_test_args(&steps);
        let workspace: Vec<&dyn AsRef<std::ffi::OsStr>> = workspace.iter().map(|arg| arg as _).collect();
        let suites: [(&str, &[&dyn AsRef<std::ffi::OsStr>]); 2] = [
            ("cargo test --workspace (but the unsolved fast tests)", &workspace),
            (
                "traps/two-otel-versions tests",
                &[&"test", &"--manifest-path", &two_versions, &"--target-dir", &target_dir],
            ),
        ];
        for (name, args) in suites {
            let status = process::cargo(args).unchecked().run().with_context(|| format!("running {name}"))?.status;
            let problems = if status.success() { vec![] } else { vec![format!("{name} failed (see above)")] };
            proofs.push(Proof { name: name.to_owned(), problems });
            clock.lap(name);
        }
        for step in crate::fast_tests::steps_with_tests(&steps) {
            let name = format!("{}: fast tests fail unsolved, pass solved", step.short_name());
            proofs.push(Proof { problems: crate::fast_tests::prove(step), name });
        }
        clock.lap("the steps' fast tests");
    }
    let mdbook = install_in_background(&[("mdbook", crate::book::mdbook)]);

    // A judged step (step 5's gate) records flows of its own, on the first
    // broker: what it judges is the gate, not what Kafka does.
    let mut gate_checks = Vec::new();
    for step in steps.iter().filter(|step| step.meta.judge.is_some()) {
        for solution in [false, true] {
            let name = format!(
                "{} {} on {}",
                step.short_name(),
                if solution { "solution judges every flow right" } else { "unsolved lets a broken flow through" },
                brokers[0]
            );
            eprintln!("\n── {name}");
            let options = GateCheckOptions {
                step: step.clone(),
                lesson: LessonCrate::of(step, solution),
                requests: step.default_requests(),
                kafka: brokers[0],
                // CI proves the flows as they are now, not as an earlier run recorded them.
                record_anew: !solution,
            };
            let problems = match gate_judge::run(&options) {
                Ok(check) => {
                    let problems = if solution { prove_gate_solution(&check) } else { prove_gate_unsolved(&check) };
                    gate_checks.push((step.clone(), check));
                    problems
                }
                Err(err) => vec![format!("the check failed: {err:#}")],
            };
            clock.lap(&name);
            proofs.push(Proof { name, problems });
        }
    }

    // Steps 0–3 on every broker, then the later steps. A stage (collector
    // tier, proxy, browser, long job) does not change what Kafka does: its
    // steps run on the first broker only, which keeps CI short.
    let mut plan: Vec<(BrokerKind, &Step)> = Vec::new();
    for &kafka in &brokers {
        plan.extend(steps.iter().filter(|step| step.is_flow()).map(|step| (kafka, step)));
    }
    let first = brokers[0];
    plan.extend(steps.iter().filter(|step| step.meta.stage.is_some()).map(|step| (first, step)));
    let mut tools = Some(tools);
    let mut mdbook = Some(mdbook);
    for (kafka, step) in plan {
        if step.meta.stage.is_some()
            && let Some(tools) = tools.take()
        {
            let problems = tools.join().unwrap_or_else(|_| vec!["the install thread panicked".to_owned()]);
            proofs.push(Proof { name: "the collector and Jaeger install".to_owned(), problems });
            clock.lap("waiting for the collector and Jaeger builds");
            // The staged steps measure memory and timing: a compiler
            // running beside them (mdbook's first install) pushes a tight
            // tier over its limit. They run on a quiet machine.
            if let Some(mdbook) = mdbook.take() {
                let problems = mdbook.join().unwrap_or_else(|_| vec!["the install thread panicked".to_owned()]);
                proofs.push(Proof { name: "mdbook install".to_owned(), problems });
                clock.lap("waiting for the mdbook install");
            }
        }
        for solution in [false, true] {
            if solution && !step.has_solution() {
                continue;
            }
            let name = format!(
                "{} {} on {kafka}",
                step.short_name(),
                if solution { "solution passes" } else { "unsolved fails" }
            );
            eprintln!("\n── {name}");
            // A stage's step drives what its step.toml asks for (the tier
            // needs enough traffic for 1% to be a count).
            let requests = if step.meta.stage.is_some() { step.default_requests() } else { requests };
            let options = CheckOptions {
                step: step.clone(),
                lesson: LessonCrate::of(step, solution),
                requests,
                kafka,
                concurrency: 8,
            };
            let problems = match check::run(&options) {
                Ok(run) => {
                    let verdict = verdict::judge(step, &run);
                    let problems = if solution {
                        prove_solution(step, &run, &verdict)
                    } else {
                        prove_unsolved(step, &run, &verdict)
                    };
                    summarise(&run, &verdict);
                    runs.push((step.clone(), run, verdict));
                    problems
                }
                Err(err) => vec![format!("the run failed: {err:#}")],
            };
            clock.lap(&name);
            proofs.push(Proof { name, problems });
        }
    }

    if let Some(tools) = tools.take() {
        let problems = tools.join().unwrap_or_else(|_| vec!["the install thread panicked".to_owned()]);
        proofs.push(Proof { name: "the collector and Jaeger install".to_owned(), problems });
    }
    {
        let kafka = first;
        let name = format!("step 0 through the tail-sampling tier on {kafka}: sampling cannot repair lineage");
        eprintln!("\n── {name}");
        let problems = match stitch_campaigns::runs::sampling_cannot_repair(crate::report::TIER_REQUESTS, kafka) {
            Ok(run) => match &run.evidence {
                Some(evidence) => evidence
                    .assertions
                    .iter()
                    .filter(|assertion| !assertion.passed)
                    .map(|assertion| format!("{}: measured {}", assertion.claim, assertion.measured))
                    .collect(),
                None => vec!["the tier measured nothing".to_owned()],
            },
            Err(err) => vec![format!("the run failed: {err:#}")],
        };
        clock.lap(&name);
        proofs.push(Proof { name, problems });
    }
    // The check judges the crate it runs: the learner's crate with the
    // solution's lesson passes (on every broker the step runs on), each
    // named wrong fix fails with its message, and step 5 judges the same
    // after steps 1–3 are solved in place.
    let baseline_step = steps.first().context("no steps")?;
    for step in steps.iter().filter(|step| step.is_flow() && step.has_solution()) {
        let problems = crate::lessons::shipped_is_baseline(step, baseline_step);
        proofs.push(Proof {
            name: format!("{}: the shipped lesson is the baseline's code", step.short_name()),
            problems,
        });
    }
    for step in steps.iter().filter(|step| step.has_solution()) {
        let on: &[BrokerKind] = if step.is_flow() { &brokers } else { &brokers[..1] };
        let requests = if step.is_flow() { requests } else { step.default_requests() };
        for &kafka in on {
            let (name, problems) = crate::lessons::solved_copy_passes(step, kafka, requests);
            proofs.push(Proof { name, problems });
        }
        for (name, problems) in crate::lessons::mistakes_fail(step, first, requests) {
            proofs.push(Proof { name, problems });
        }
    }
    let (name, problems) = crate::lessons::in_order(&steps, first);
    proofs.push(Proof { name, problems });
    clock.lap("the learner's crate: solved copies, wrong fixes, step 5 in order");
    {
        let name = "soak --short on tansu: 0 crashes, 0 W3C violations, 0 unexplained losses, 0 orphans under load";
        let options =
            stitch_campaigns::soak::SoakOptions::short(BrokerKind::Tansu, stitch_campaigns::soak::fresh_seed());
        eprintln!("\n── {name} (fuzz seed {})", options.seed);
        let problems = match stitch_campaigns::soak::run(&options) {
            Ok(report) => {
                crate::soak::print(&report);
                report.ci_problems()
            }
            Err(err) => vec![format!("the soak failed: {err:#}")],
        };
        clock.lap(name);
        proofs.push(Proof { name: name.to_owned(), problems });
    }
    {
        // Reported, not judged: what tracing costs on a shared CI machine is
        // a figure to read, not a claim. Only a run that cannot measure fails.
        let name = "overhead --short on tansu: runs and reports (figures not judged)";
        eprintln!("\n── {name}");
        let problems = match crate::overhead::measure(&crate::overhead::Args::short()) {
            Ok(report) => {
                crate::overhead::print(&report);
                vec![]
            }
            Err(err) => vec![format!("the overhead run failed: {err:#}")],
        };
        clock.lap(name);
        proofs.push(Proof { name: name.to_owned(), problems });
    }
    if brokers.contains(&crate::report::KAFKA) && requests == crate::report::REQUESTS {
        let mut problems = crate::report::stale(&runs);
        problems.extend(crate::report::stale_gate_checks(&gate_checks));
        proofs.push(Proof { name: "book: measured results are current".to_owned(), problems });
    }
    if let Some(mdbook) = mdbook.take() {
        let problems = mdbook.join().unwrap_or_else(|_| vec!["the install thread panicked".to_owned()]);
        proofs.push(Proof { name: "mdbook install".to_owned(), problems });
        clock.lap("waiting for the mdbook install");
    }
    let book = crate::book::check(&project_root()).err().map(|err| format!("{err:#}"));
    proofs.push(Proof {
        name: "book: every include resolves and mdbook builds it".to_owned(),
        problems: book.into_iter().collect(),
    });
    clock.lap("book check and build");

    println!("\nPhases (wall clock; the installs run on their own threads meanwhile):");
    clock.print();

    println!("\nStep proofs:");
    let failed = proofs.iter().filter(|proof| !proof.problems.is_empty()).count();
    for proof in &proofs {
        if proof.problems.is_empty() {
            println!("  ok    {}", proof.name);
        } else {
            println!("  FAIL  {}", proof.name);
            for problem in &proof.problems {
                println!("          {problem}");
            }
        }
    }
    println!("\nxtask ci: {} passed, {failed} failed", proofs.len() - failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Wall-clock time per phase of a run, printed at its end: where a CI run's
/// minutes went.
struct Clock {
    started: std::time::Instant,
    last: std::time::Instant,
    laps: Vec<(String, std::time::Duration)>,
}

impl Clock {
    fn start() -> Clock {
        let now = std::time::Instant::now();
        Clock { started: now, last: now, laps: Vec::new() }
    }

    /// Ends the phase called `name` now.
    fn lap(&mut self, name: &str) {
        let now = std::time::Instant::now();
        self.laps.push((name.to_owned(), now - self.last));
        self.last = now;
    }

    fn print(&self) {
        for (name, took) in &self.laps {
            println!("  {:>7.1} s  {name}", took.as_secs_f64());
        }
        println!("  {:>7.1} s  in all", self.started.elapsed().as_secs_f64());
    }
}

type Install = fn() -> anyhow::Result<std::path::PathBuf>;

/// Runs `installs` in order on a thread of their own; joins to what failed.
fn install_in_background(installs: &[(&'static str, Install)]) -> std::thread::JoinHandle<Vec<String>> {
    let installs = installs.to_vec();
    std::thread::spawn(move || {
        installs.iter().filter_map(|(what, install)| install().err().map(|err| format!("{what}: {err:#}"))).collect()
    })
}

fn summarise(run: &CheckRun, verdict: &Verdict) {
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

fn prove_unsolved(step: &Step, run: &CheckRun, verdict: &Verdict) -> Vec<String> {
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
fn prove_gate_unsolved(check: &GateCheck) -> Vec<String> {
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

fn prove_gate_solution(check: &GateCheck) -> Vec<String> {
    check.failures()
}

fn prove_solution(step: &Step, run: &CheckRun, verdict: &Verdict) -> Vec<String> {
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

/// Every file of the step but its lesson is the same in the solution (up to
/// the package name); the lesson differs and only the step has its TODO.
pub(crate) fn lesson_only(step: &Step) -> Vec<String> {
    let mut problems = Vec::new();
    let (unsolved, solved) = (step.dir(false), step.dir(true));
    let files = match (list_files(&unsolved), list_files(&solved)) {
        (Ok(a), Ok(b)) => a.union(&b).cloned().collect::<BTreeSet<_>>(),
        (Err(err), _) | (_, Err(err)) => return vec![format!("{err:#}")],
    };
    let package = step.package(false);
    let normalise = |text: String| {
        text.replace(&format!("{package}-solution"), &package)
            .replace(&format!("{}_solution", package.replace('-', "_")), &package.replace('-', "_"))
            .replace(" (solved).", ".")
    };
    let todo = format!("TODO({})", step.short_name());
    for file in files {
        if file == "step.toml" {
            continue;
        }
        // The named wrong fixes live beside the solution only.
        if file == "mistakes.toml" || file.starts_with("mistakes/") {
            if unsolved.join(&file).exists() {
                problems.push(format!("{file}: the wrong fixes belong to the solution, not the step"));
            }
            continue;
        }
        let read = |dir: &Path| std::fs::read_to_string(dir.join(&file)).ok().map(normalise);
        let (a, b) = (read(&unsolved), read(&solved));
        let is_lesson = step.meta.lesson.contains(&file);
        match (a, b) {
            (Some(a), Some(b)) if is_lesson => {
                if a == b {
                    problems.push(format!("{file}: the solution does not change the lesson"));
                }
                if !a.contains(&todo) {
                    problems.push(format!("{file}: the step has no {todo} marker"));
                }
                // The book shows a lesson whole; anchors belong to the solutions.
                if a.contains("ANCHOR") {
                    problems.push(format!("{file}: the lesson carries ANCHOR markers (keep them in the solution)"));
                }
                // A placeholder that only silences a warning hints at the answer.
                if a.lines().any(|line| line.trim_start().starts_with("let _ = ")) {
                    problems.push(format!("{file}: the lesson has a placeholder line (`let _ = …;`)"));
                }
                if b.contains("TODO(") {
                    problems.push(format!("{file}: the solution still has a TODO marker"));
                }
            }
            (Some(a), Some(b)) if a != b => problems.push(format!("{file} differs, but it is not a lesson file")),
            (Some(_), Some(_)) => {}
            (None, _) => problems.push(format!("{file} exists only in the solution")),
            (_, None) => problems.push(format!("{file} exists only in the step")),
        }
    }
    problems
}

fn list_files(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut files = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                files.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    Ok(files)
}

/// `cargo xtask diff step-N`: the lesson files, step against solution.
pub fn show_diff(query: &str) -> anyhow::Result<ExitCode> {
    let step = step::find(query)?;
    if !step.has_solution() {
        anyhow::bail!("{} has no solution to compare with", step.short_name());
    }
    for file in &step.meta.lesson {
        let root = project_root();
        let relative = |solution: bool| {
            step.dir(solution).join(file).strip_prefix(&root).map(Path::to_path_buf).unwrap_or_default()
        };
        duct::cmd!("git", "diff", "--no-index", "--color=auto", relative(false), relative(true))
            .dir(&root)
            .unchecked()
            .run()
            .context("running git diff")?;
    }
    Ok(ExitCode::SUCCESS)
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

    /// The file half of `cargo xtask ci`'s proof, which needs no run: each
    /// solution differs from its step only in the lesson files.
    #[test]
    fn every_solution_changes_only_its_lesson() {
        for step in stitch_runner::step::all().unwrap().iter().filter(|step| step.has_solution()) {
            assert_eq!(super::lesson_only(step), Vec::<String>::new(), "{}", step.name);
        }
    }
}
