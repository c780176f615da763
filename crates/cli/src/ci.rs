//! `cargo xtask ci`: proves every unsolved step fails with exactly the orphan
//! class it teaches, every solution passes, and each step differs from its
//! solution only in its lesson files. One phase per method of [`Ci`], run in
//! the order [`run`] lists them.

mod clock;
mod installs;
mod lesson_files;
mod lint;
mod proofs;

use std::process::ExitCode;

use anyhow::Context as _;
use stitch_components::kafka::BrokerKind;
use stitch_components::process;
use stitch_judge::verdict::{self, Verdict};
use stitch_model::{CheckRun, GateCheck};
use stitch_paths::project_root;
use stitch_runner::check::{self, CheckOptions};
use stitch_runner::gate_judge::{self, GateCheckOptions};
use stitch_runner::lesson::LessonCrate;
use stitch_runner::step::{self, Step};

use self::clock::Clock;
use self::installs::Background;

/// The brokers `cargo xtask ci --kafka` runs the step proofs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Brokers {
    Tansu,
    Apache,
    Both,
}

impl Brokers {
    /// The brokers, the one every stage runs on first.
    fn kinds(self) -> Vec<BrokerKind> {
        match self {
            Brokers::Tansu => vec![BrokerKind::Tansu],
            Brokers::Apache => vec![BrokerKind::Apache],
            Brokers::Both => vec![BrokerKind::Tansu, BrokerKind::Apache],
        }
    }
}

/// One proof and what was wrong with it.
struct Proof {
    name: String,
    problems: Vec<String>,
}

pub fn run(brokers: Brokers, requests: usize, no_tests: bool, record_time: bool) -> anyhow::Result<ExitCode> {
    let clock = Clock::start();
    let steps = step::all()?;
    step::validate(&steps)?;
    let mut ci = Ci {
        brokers: brokers.kinds(),
        steps,
        requests,
        clock,
        proofs: Vec::new(),
        runs: Vec::new(),
        gate_checks: Vec::new(),
        tools: None,
        mdbook: None,
    };
    lint::lint()?;
    ci.clock.lap("fmt and clippy");

    // The slow installs build while the tests and the first step proofs
    // mostly wait on sockets: the collector and Jaeger (Go module proxy) from
    // the start, mdbook (crates.io) once the tests are built. What needs them
    // comes after.
    ci.tools = Some(Background::start(&[
        ("the collector", stitch_components::otelcol::install_collector),
        ("Jaeger", stitch_components::otelcol::install_jaeger),
    ]));
    ci.lesson_files();
    if !no_tests {
        ci.tests()?;
    }
    ci.mdbook = Some(Background::start(&[("mdbook", crate::book::mdbook)]));
    ci.gate_steps();
    ci.step_runs();
    ci.sampling_cannot_repair();
    ci.learner_crate()?;
    ci.soak();
    ci.overhead();
    ci.book();
    let failed = ci.print();
    if record_time {
        let name = format!("{brokers:?}").to_lowercase();
        crate::ci_time::write(ci.clock.laps(), ci.clock.total(), &name, failed)?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A CI run under way: what it proved so far and what it keeps for the
/// later proofs (the runs, for the book's staleness check).
struct Ci {
    brokers: Vec<BrokerKind>,
    steps: Vec<Step>,
    requests: usize,
    clock: Clock,
    proofs: Vec<Proof>,
    runs: Vec<(Step, CheckRun, Verdict)>,
    gate_checks: Vec<(Step, GateCheck)>,
    /// The collector and Jaeger, until the first stage needs them.
    tools: Option<Background>,
    /// mdbook, until the stages start (or the book is built).
    mdbook: Option<Background>,
}

impl Ci {
    fn prove(&mut self, name: impl Into<String>, problems: Vec<String>) {
        self.proofs.push(Proof { name: name.into(), problems });
    }

    /// The first broker: a stage or a judged step does not change what
    /// Kafka does, so they run on this one only.
    fn first_broker(&self) -> BrokerKind {
        self.brokers[0]
    }

    fn lesson_files(&mut self) {
        for step in self.steps.iter().filter(|step| step.has_solution()) {
            self.proofs.push(Proof {
                name: format!("{}: solution changes only the lesson", step.short_name()),
                problems: lesson_files::lesson_only(step),
            });
        }
        let answers = crate::answer_scan::scan(&project_root()).unwrap_or_else(|err| vec![format!("{err:#}")]);
        self.prove("answers out of sight: not in steps/, a crate a lesson can call, or unfolded chapter text", answers);
    }

    fn tests(&mut self) -> anyhow::Result<()> {
        // The two-opentelemetry-versions trap is a workspace of its own, so
        // that its second opentelemetry never enters ours.
        let two_versions = project_root().join("traps").join("two-otel-versions").join("Cargo.toml");
        // The embedded broker is a workspace of its own too.
        let broker = project_root().join("crates").join("broker").join("Cargo.toml");
        let target_dir = process::target_dir();
        let workspace = crate::fast_tests::workspace_test_args(&self.steps);
        let workspace: Vec<&dyn AsRef<std::ffi::OsStr>> = workspace.iter().map(|arg| arg as _).collect();
        let suites: [(&str, &[&dyn AsRef<std::ffi::OsStr>]); 3] = [
            ("cargo test --workspace (but the unsolved fast tests)", &workspace),
            (
                "traps/two-otel-versions tests",
                &[&"test", &"--manifest-path", &two_versions, &"--target-dir", &target_dir],
            ),
            ("crates/broker tests", &[&"test", &"--manifest-path", &broker, &"--target-dir", &target_dir]),
        ];
        for (name, args) in suites {
            let status = process::cargo(args).unchecked().run().with_context(|| format!("running {name}"))?.status;
            let problems = if status.success() { vec![] } else { vec![format!("{name} failed (see above)")] };
            self.prove(name, problems);
            self.clock.lap(name);
        }
        for step in crate::fast_tests::steps_with_tests(&self.steps) {
            let name = format!("{}: fast tests fail unsolved, pass solved", step.short_name());
            self.proofs.push(Proof { problems: crate::fast_tests::prove(step), name });
        }
        self.clock.lap("the steps' fast tests");
        Ok(())
    }

    /// A judged step (step 5's gate) records flows of its own, on the first
    /// broker: what it judges is the gate, not what Kafka does.
    fn gate_steps(&mut self) {
        let kafka = self.first_broker();
        let judged: Vec<Step> = self.steps.iter().filter(|step| step.meta.judge.is_some()).cloned().collect();
        for step in &judged {
            for solution in [false, true] {
                let name = format!(
                    "{} {} on {kafka}",
                    step.short_name(),
                    if solution { "solution judges every flow right" } else { "unsolved lets a broken flow through" },
                );
                eprintln!("\n── {name}");
                let options = GateCheckOptions {
                    step: step.clone(),
                    lesson: LessonCrate::of(step, solution),
                    requests: step.default_requests(),
                    kafka,
                    // CI proves the flows as they are now, not as an earlier run recorded them.
                    record_anew: !solution,
                };
                let problems = match gate_judge::run(&options) {
                    Ok(check) => {
                        let problems = if solution {
                            proofs::prove_gate_solution(&check)
                        } else {
                            proofs::prove_gate_unsolved(&check)
                        };
                        self.gate_checks.push((step.clone(), check));
                        problems
                    }
                    Err(err) => vec![format!("the check failed: {err:#}")],
                };
                self.clock.lap(&name);
                self.prove(name, problems);
            }
        }
    }

    /// Steps 0–3 on every broker, then the later steps. A stage (collector
    /// tier, proxy, browser, long job) does not change what Kafka does: its
    /// steps run on the first broker only, which keeps CI short.
    fn step_runs(&mut self) {
        let mut plan: Vec<(BrokerKind, Step)> = Vec::new();
        for &kafka in &self.brokers {
            plan.extend(self.steps.iter().filter(|step| step.is_flow()).map(|step| (kafka, step.clone())));
        }
        let first = self.first_broker();
        plan.extend(self.steps.iter().filter(|step| step.meta.stage.is_some()).map(|step| (first, step.clone())));
        for (kafka, step) in plan {
            if step.meta.stage.is_some() {
                self.join_installs_before_stages();
            }
            for solution in [false, true] {
                if solution && !step.has_solution() {
                    continue;
                }
                self.step_run(&step, kafka, solution);
            }
        }
        if let Some(tools) = self.tools.take() {
            self.prove("the collector and Jaeger install", tools.join());
        }
    }

    /// The stages need the collector and Jaeger; they measure memory and
    /// timing, so a compiler running beside them (mdbook's first install)
    /// would push a tight tier over its limit: they run on a quiet machine.
    fn join_installs_before_stages(&mut self) {
        let Some(tools) = self.tools.take() else { return };
        self.prove("the collector and Jaeger install", tools.join());
        self.clock.lap("waiting for the collector and Jaeger builds");
        if let Some(mdbook) = self.mdbook.take() {
            self.prove("mdbook install", mdbook.join());
            self.clock.lap("waiting for the mdbook install");
        }
    }

    fn step_run(&mut self, step: &Step, kafka: BrokerKind, solution: bool) {
        let name =
            format!("{} {} on {kafka}", step.short_name(), if solution { "solution passes" } else { "unsolved fails" });
        eprintln!("\n── {name}");
        // A stage's step drives what its step.toml asks for (the tier
        // needs enough traffic for 1% to be a count).
        let requests = if step.meta.stage.is_some() { step.default_requests() } else { self.requests };
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
                    proofs::prove_solution(step, &run, &verdict)
                } else {
                    proofs::prove_unsolved(step, &run, &verdict)
                };
                proofs::summarise(&run, &verdict);
                self.runs.push((step.clone(), run, verdict));
                problems
            }
            Err(err) => vec![format!("the run failed: {err:#}")],
        };
        self.clock.lap(&name);
        self.prove(name, problems);
    }

    fn sampling_cannot_repair(&mut self) {
        let kafka = self.first_broker();
        let name = format!("step 0 through the tail-sampling tier on {kafka}: sampling cannot repair lineage");
        eprintln!("\n── {name}");
        let problems = match stitch_campaigns::runs::sampling_cannot_repair(crate::report::TIER_REQUESTS, kafka) {
            Ok(run) => match &run.evidence {
                Some(evidence) => stitch_judge::stage::judge(evidence).failures(),
                None => vec!["the tier measured nothing".to_owned()],
            },
            Err(err) => vec![format!("the run failed: {err:#}")],
        };
        self.clock.lap(&name);
        self.prove(name, problems);
    }

    /// The check judges the crate it runs: the learner's crate with the
    /// solution's lesson passes (on every broker the step runs on), each
    /// named wrong fix fails with its message, and step 5 judges the same
    /// after steps 1–3 are solved in place.
    fn learner_crate(&mut self) -> anyhow::Result<()> {
        let first = self.first_broker();
        let baseline_step = self.steps.first().context("no steps")?;
        let mut proven = Vec::new();
        for step in self.steps.iter().filter(|step| step.is_flow() && step.has_solution()) {
            let problems = crate::lessons::shipped_is_baseline(step, baseline_step);
            proven.push((format!("{}: the shipped lesson is the baseline's code", step.short_name()), problems));
        }
        for step in self.steps.iter().filter(|step| step.has_solution()) {
            let on: &[BrokerKind] = if step.is_flow() { &self.brokers } else { &self.brokers[..1] };
            let requests = if step.is_flow() { self.requests } else { step.default_requests() };
            for &kafka in on {
                proven.push(crate::lessons::solved_copy_passes(step, kafka, requests));
            }
            proven.extend(crate::lessons::mistakes_fail(step, first, requests));
        }
        proven.push(crate::lessons::in_order(&self.steps, first));
        for (name, problems) in proven {
            self.prove(name, problems);
        }
        self.clock.lap("the learner's crate: solved copies, wrong fixes, step 5 in order");
        Ok(())
    }

    fn soak(&mut self) {
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
        self.clock.lap(name);
        self.prove(name, problems);
    }

    /// Reported, not judged: what tracing costs on a shared CI machine is a
    /// figure to read, not a claim. Only a run that cannot measure fails.
    fn overhead(&mut self) {
        let name = "overhead --short on tansu: runs and reports (figures not judged)";
        eprintln!("\n── {name}");
        let problems = match crate::overhead::measure(&crate::overhead::Args::short()) {
            Ok(report) => {
                crate::overhead::print(&report);
                vec![]
            }
            Err(err) => vec![format!("the overhead run failed: {err:#}")],
        };
        self.clock.lap(name);
        self.prove(name, problems);
    }

    /// The book's measured results are current (when this run measured what
    /// the book shows), every include resolves and mdbook builds it.
    fn book(&mut self) {
        if self.brokers.contains(&crate::report::KAFKA) && self.requests == crate::report::REQUESTS {
            let mut problems = crate::report::stale(&self.runs);
            problems.extend(crate::report::stale_gate_checks(&self.gate_checks));
            self.prove("book: measured results are current", problems);
        }
        if let Some(mdbook) = self.mdbook.take() {
            self.prove("mdbook install", mdbook.join());
            self.clock.lap("waiting for the mdbook install");
        }
        let book = crate::book::check(&project_root()).err().map(|err| format!("{err:#}"));
        self.prove("book: every include resolves and mdbook builds it", book.into_iter().collect());
        self.clock.lap("book check and build");
    }

    /// Prints the phases and every proof; returns how many failed.
    fn print(&self) -> usize {
        println!("\nPhases (wall clock; the installs run on their own threads meanwhile):");
        self.clock.print();

        println!("\nStep proofs:");
        let failed = self.proofs.iter().filter(|proof| !proof.problems.is_empty()).count();
        for proof in &self.proofs {
            if proof.problems.is_empty() {
                println!("  ok    {}", proof.name);
            } else {
                println!("  FAIL  {}", proof.name);
                for problem in &proof.problems {
                    println!("          {problem}");
                }
            }
        }
        println!("\nxtask ci: {} passed, {failed} failed", self.proofs.len() - failed);
        failed
    }
}
