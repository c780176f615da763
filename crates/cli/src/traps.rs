//! `cargo xtask traps`: reproduces the six silent failures of
//! `book/src/silent-failures.md` (the crates in `traps/`) and renders what
//! lineage measured as `book/src/generated/silent-failures.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use stitch_components::kafka::BrokerKind;
use stitch_components::process::{self, binary, cargo_build};
use stitch_judge::gate::{self, Baseline};
use stitch_judge::verdict::{self, Verdict, percent};
use stitch_model::{CheckRun, Order};
use stitch_runner::check::{self, CheckOptions, Variant};
use stitch_runner::lesson::LessonCrate;
use stitch_runner::step::{self, Step};

use crate::table::{self, Table};

/// Requests (or spans, for the job) per trap.
pub const REQUESTS: usize = 50;
/// Requests in flight at once, in the traps that run the flow.
const CONCURRENCY: usize = 8;
const KAFKA: BrokerKind = BrokerKind::Tansu;
use crate::report::HEADER;

/// The filter of trap 3, as `traps/log-filter` names it.
const LOG_FILTER: &str = stitch_runner::gate_flows::LOG_FILTER_TRAP;
/// What the worker logs when `set_parent` fails (`traps/late-set-parent`).
const SET_PARENT_WARNING: &str = "cannot continue the caller's trace";

fn output_path() -> PathBuf {
    stitch_paths::project_root().join("book").join("src").join("generated").join("silent-failures.md")
}

/// `cargo xtask traps`: runs every trap and writes the chapter's include;
/// with `only`, runs that trap and prints its section instead.
pub fn write(only: Option<&str>) -> anyhow::Result<ExitCode> {
    if let Some(name) = only {
        let last = step::final_flow()?;
        let baseline = Baseline::read(&stitch_runner::gate_flows::baseline_path())?;
        let trap = TRAPS.iter().find(|(trap, _)| *trap == name).with_context(|| {
            let names: Vec<&str> = TRAPS.iter().map(|(trap, _)| *trap).collect();
            format!("no trap {name:?}; the traps are {}", names.join(", "))
        })?;
        println!("{}", (trap.1)(&last, &baseline)?);
        return Ok(ExitCode::SUCCESS);
    }
    let markdown = generate()?;
    let path = output_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub type Trap = fn(&Step, &Baseline) -> anyhow::Result<String>;

/// Every trap, by the name `--only` takes, in the chapter's order.
pub const TRAPS: [(&str, Trap); 6] = [
    ("two-otel-versions", |last, _| two_versions(last)),
    ("no-propagator", no_propagator),
    ("log-filter", log_filter),
    ("late-set-parent", late_set_parent),
    ("no-shutdown", |_, _| no_shutdown()),
    ("small-queue", small_queue),
];

/// Runs every trap for real and returns the Markdown of
/// `book/src/generated/silent-failures.md`.
pub fn generate() -> anyhow::Result<String> {
    let last = step::final_flow()?;
    let baseline = Baseline::read(&stitch_runner::gate_flows::baseline_path())?;
    let mut sections = vec![
        HEADER.to_owned(),
        format!(
            "{REQUESTS} requests per trap on {KAFKA}, measured by lineage. Orphan-rate targets are those of the final \
             step ({}), and the CI gate is the one the final solution passes.\n",
            last.short_name()
        ),
    ];
    for (_, trap) in TRAPS {
        sections.push(trap(&last, &baseline)?);
    }
    Ok(sections.join("\n"))
}

/// One line of trap-two-otel-versions' output: a request its gateway sent.
#[derive(serde::Deserialize)]
struct SentRequest {
    order_id: String,
    trace_id: String,
    /// What reached the worker.
    traceparent: Option<String>,
}

fn two_versions(last: &Step) -> anyhow::Result<String> {
    let root = stitch_paths::project_root();
    let manifest = root.join("traps").join("two-otel-versions").join("Cargo.toml");
    let target_dir = process::target_dir();
    eprintln!("building traps/two-otel-versions…");
    process::cargo(&[&"build", &"--quiet", &"--manifest-path", &manifest, &"--target-dir", &target_dir])
        .stdout_to_stderr()
        .run()
        .context("building traps/two-otel-versions")?;
    let tree_duplicates = [&"tree" as &dyn AsRef<std::ffi::OsStr>, &"-d", &"-e", &"normal", &"--depth", &"1"];
    let trap_tree = process::cargo(&[&tree_duplicates[..], &[&"--manifest-path", &manifest]].concat())
        .read()
        .context("cargo tree -d in traps/two-otel-versions")?;
    // The services' graph: the workspace as a whole also holds the embedded
    // broker, whose tansu brings an opentelemetry of its own into its own process.
    let main_tree = process::cargo(&[&tree_duplicates[..], &[&"-p", &"stitch-flow"]].concat())
        .read()
        .context("cargo tree -d -p stitch-flow in the main workspace")?;
    // Paths relative to the project, as a reader's checkout has its own root.
    let trap_tree = trap_tree.replace(&format!("{}/", root.display()), "");
    let trap_versions = tree_blocks(&trap_tree, "opentelemetry v");
    let main_versions = tree_blocks(&main_tree, "opentelemetry v");

    eprintln!("running trap-two-otel-versions…");
    let runtime = tokio::runtime::Runtime::new()?;
    let lineage = runtime.block_on(lineage::Lineage::start(lineage::Config::ephemeral()))?;
    let log = check::log_dir("trap-two-otel-versions").join("run.log");
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
    let started = Instant::now();
    let output = duct::cmd!(
        binary("trap-two-otel-versions"),
        "--otlp-endpoint",
        lineage.otlp_grpc_endpoint(),
        "--requests",
        REQUESTS.to_string()
    )
    .env_remove("RUST_LOG")
    .stderr_path(&log)
    .read();
    let output = match output {
        Ok(output) => output,
        Err(err) => {
            runtime.block_on(lineage.shutdown());
            return Err(err).with_context(|| format!("running trap-two-otel-versions (log: {})", log.display()));
        }
    };
    let mut orders = Vec::new();
    let mut carried = 0;
    for line in output.lines() {
        let sent: SentRequest = serde_json::from_str(line).context("a request line of trap-two-otel-versions")?;
        carried += usize::from(sent.traceparent.is_some());
        orders.push(Order { order_id: sent.order_id, trace_id: sent.trace_id });
    }
    let run = measured("two-otel-versions", &lineage, orders, started)?;
    runtime.block_on(lineage.shutdown());
    let verdict = verdict::judge(last, &run);

    Ok(format!(
        "### Two opentelemetry versions\n\n\
         `traps/two-otel-versions`, a workspace of its own: a gateway and a worker set up with opentelemetry 0.33 and \
         tracing-opentelemetry 0.34, calling each other through reqwest-tracing 0.7.1 built with its \
         `opentelemetry_0_32` feature. Its `cargo tree -d -e normal --depth 1` lists two opentelemetry crates:\n\n\
         ```text\n{}\n```\n\n\
         In the main workspace, `cargo tree -d -e normal -p stitch-flow` (the graph of every service) lists {}.\n\n\
         `trap-two-otel-versions --requests {REQUESTS}`: {carried} of {} requests reached the worker with a \
         `traceparent`. {}\n\n{}\n\n{}\n",
        trap_versions.join("\n\n"),
        if main_versions.is_empty() {
            "no opentelemetry: there is one".to_owned()
        } else {
            format!("{} opentelemetry versions", main_versions.len())
        },
        run.orders.len(),
        shape_summary(&run),
        table::services_table(&verdict).markdown(),
        table::boundaries_table(&verdict).markdown(),
    ))
}

/// The blocks of a `cargo tree -d` output whose first line starts with `prefix`.
fn tree_blocks(tree: &str, prefix: &str) -> Vec<String> {
    tree.split("\n\n").map(str::trim).filter(|block| block.starts_with(prefix)).map(str::to_owned).collect()
}

/// A run of a trap that is not a flow, in the shape the verdict reads.
fn measured(name: &str, lineage: &lineage::Lineage, orders: Vec<Order>, started: Instant) -> anyhow::Result<CheckRun> {
    lineage.settle_now();
    let shapes =
        orders.iter().map(|order| check::request_shape(lineage, &order.order_id)).collect::<anyhow::Result<_>>()?;
    let sample_dump = orders.first().and_then(|order| lineage.request_dump(&order.order_id));
    Ok(CheckRun {
        step: name.to_owned(),
        solution: false,
        package: name.to_owned(),
        kafka: "none".to_owned(),
        requests_sent: REQUESTS,
        requests_failed: REQUESTS.saturating_sub(orders.len()),
        orders,
        shapes,
        report: lineage.report(),
        sample_dump,
        // A trap that is not a flow shows no page.
        sample_page: None,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        evidence: None,
        sdk_export: Vec::new(),
        service_logs: Vec::new(),
        messages: None,
        probes: None,
    })
}

/// Runs the final step's flow in `lesson`'s binary, as `variant` changes it.
fn flow(last: &Step, lesson: LessonCrate, variant: &Variant) -> anyhow::Result<(CheckRun, Verdict)> {
    let options =
        CheckOptions { step: last.clone(), lesson, requests: REQUESTS, kafka: KAFKA, concurrency: CONCURRENCY };
    let run = check::run_variant(&options, variant)?;
    let verdict = verdict::judge(last, &run);
    Ok((run, verdict))
}

/// What lineage and the gate say about a run of the flow.
fn flow_measurements(run: &CheckRun, verdict: &Verdict, baseline: &Baseline) -> String {
    let violations = gate::violations(run, baseline);
    let gate = if violations.is_empty() {
        "The CI gate passes.".to_owned()
    } else {
        format!(
            "The CI gate fails:\n\n{}",
            violations.iter().map(|violation| format!("- {violation}")).collect::<Vec<_>>().join("\n")
        )
    };
    format!(
        "{}\n\n{}\n\n{}\n\n{gate}\n",
        shape_summary(run),
        table::services_table(verdict).markdown(),
        table::boundaries_table(verdict).markdown()
    )
}

fn no_propagator(last: &Step, baseline: &Baseline) -> anyhow::Result<String> {
    eprintln!("running trap-no-propagator…");
    let trap = LessonCrate::other("trap-no-propagator", "trap-no-propagator");
    let (run, verdict) = flow(last, trap, &Variant::default())?;
    Ok(format!(
        "### No global propagator\n\n\
         `traps/no-propagator`: the final solution's boundaries in services started with \
         `stitch_telemetry::Options::install_propagator` false, so nothing calls `global::set_text_map_propagator`.\n\n{}",
        flow_measurements(&run, &verdict, baseline)
    ))
}

fn log_filter(last: &Step, baseline: &Baseline) -> anyhow::Result<String> {
    eprintln!("running {} with --log {LOG_FILTER}…", last.package(true));
    let variant = Variant {
        service_args: vec!["--log".to_owned(), LOG_FILTER.to_owned()],
        name: Some("trap-log-filter".to_owned()),
    };
    let (run, verdict) = flow(last, LessonCrate::solution(last), &variant)?;
    let chain = run
        .shapes
        .iter()
        .find_map(|shape| shape.chain.as_ref())
        .map_or_else(|| "no request is a single chain".to_owned(), |chain| format!("`{}`", chain.join(" → ")));
    Ok(format!(
        "### A log filter that hides the client span\n\n\
         The final solution, unchanged, its services started with `--log {LOG_FILTER}` (`traps/log-filter`).\n\n\
         One request's parent chain: {chain}; the gate expects `{}`.\n\n{}",
        gate::EXPECTED_CHAIN.join(" → "),
        flow_measurements(&run, &verdict, baseline)
    ))
}

fn late_set_parent(last: &Step, baseline: &Baseline) -> anyhow::Result<String> {
    eprintln!("running trap-late-set-parent…");
    let trap = LessonCrate::other("trap-late-set-parent", "trap-late-set-parent");
    let (run, verdict) = flow(last, trap, &Variant::default())?;
    let worker_log = check::log_dir("trap-late-set-parent").join("worker.log");
    let log = std::fs::read_to_string(&worker_log).with_context(|| format!("reading {}", worker_log.display()))?;
    let warnings: Vec<&str> = log.lines().filter(|line| line.contains(SET_PARENT_WARNING)).collect();
    // The section quotes one: a trap that logged none taught nothing.
    let example = warnings
        .first()
        .map(|line| line.find("WARN").map_or(*line, |at| &line[at..]).to_owned())
        .with_context(|| format!("the trap's worker logged no `{SET_PARENT_WARNING}` ({})", worker_log.display()))?;
    Ok(format!(
        "### `set_parent` too late\n\n\
         `traps/late-set-parent`: the final solution, except that the worker's `http::continue_trace` sets the parent from \
         inside the request's span (`span.in_scope(|| Span::current().set_parent(cx))`).\n\n\
         {} of {} requests failed at the gateway. The worker logged the error {} times, e.g.\n\n\
         ```text\n{example}\n```\n\n{}",
        run.requests_failed,
        run.requests_sent,
        warnings.len(),
        flow_measurements(&run, &verdict, baseline)
    ))
}

fn no_shutdown() -> anyhow::Result<String> {
    cargo_build(&["trap-no-shutdown"])?;
    let runtime = tokio::runtime::Runtime::new()?;
    let lineage = runtime.block_on(lineage::Lineage::start(lineage::Config {
        entry_services: vec!["orders-job".to_owned()],
        ..lineage::Config::ephemeral()
    }))?;
    let mut table =
        Table::new(&["job", "spans emitted", "spans lineage received", "job ran for"], &[false, true, true, true]);
    let mut outcome = Ok(());
    for shutdown in [false, true] {
        eprintln!("running trap-no-shutdown{}…", if shutdown { " --shutdown" } else { "" });
        lineage.reset();
        let mut args = vec![
            "--spans".to_owned(),
            REQUESTS.to_string(),
            "--otlp-endpoint".to_owned(),
            lineage.otlp_grpc_endpoint(),
        ];
        if shutdown {
            args.push("--shutdown".to_owned());
        }
        let started = Instant::now();
        let ran = duct::cmd(binary("trap-no-shutdown"), &args)
            .env_remove("RUST_LOG")
            .env_remove("OTEL_BSP_SCHEDULE_DELAY")
            .stdout_null()
            .stderr_null()
            .run();
        let elapsed = started.elapsed();
        if let Err(err) = ran {
            outcome = Err(anyhow::Error::new(err).context("running trap-no-shutdown"));
            break;
        }
        // The job has exited: what it exported was acknowledged before that.
        std::thread::sleep(Duration::from_millis(200));
        table.row(vec![
            format!("`trap-no-shutdown --spans {REQUESTS}{}`", if shutdown { " --shutdown" } else { "" }),
            REQUESTS.to_string(),
            lineage.report().spans_received.to_string(),
            format!("{} ms", elapsed.as_millis()),
        ]);
    }
    runtime.block_on(lineage.shutdown());
    outcome?;
    Ok(format!(
        "### A provider that is never shut down\n\n\
         `traps/no-shutdown`: a short-lived job with the SDK's default batch delay (5 s) emits one span per \
         imported order and exits, once without and once with `Telemetry::shutdown`. The time a job runs varies \
         from machine to machine.\n\n{}\n",
        table.markdown()
    ))
}

/// The span queue of trap 6: far below what 8 concurrent callers fill
/// between two exports, 200 ms apart.
pub const SMALL_QUEUE: usize = 16;

fn small_queue(last: &Step, baseline: &Baseline) -> anyhow::Result<String> {
    eprintln!("running {} with --span-queue {SMALL_QUEUE}…", last.package(true));
    let variant = Variant {
        service_args: vec!["--span-queue".to_owned(), SMALL_QUEUE.to_string()],
        name: Some("trap-small-queue".to_owned()),
    };
    let (run, verdict) = flow(last, LessonCrate::solution(last), &variant)?;
    if run.sdk_export.is_empty() {
        anyhow::bail!("the small-queue trap read no span counters from the services");
    }
    // The SDK logs its own total of dropped spans at shutdown: the counters
    // must agree with it, or they count something else.
    let logs = check::log_dir("trap-small-queue");
    for service in &run.sdk_export {
        let log = logs.join(format!("{}.log", service.role));
        let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
        // The SDK logs a total only when it dropped something.
        let logged = sdk_dropped_count(&text).unwrap_or(0);
        if logged != service.counts.dropped() {
            anyhow::bail!(
                "{}: the SDK logged {logged} dropped spans at shutdown, its /metrics counted {} ({})",
                service.role,
                service.counts.dropped(),
                log.display()
            );
        }
    }
    Ok(format!(
        "### A span queue too small for the traffic\n\n\
         The final solution, unchanged, its services started with `--span-queue {SMALL_QUEUE}` (the batch \
         processor's `max_queue_size`; {} by default), {} callers at a time.\n\n\
         The services' own counters, read from their `/metrics` once the spans settled: {}. Each service's \
         count of dropped spans equals the total the SDK logged at its shutdown.\n\n{}",
        stitch_telemetry::MAX_QUEUE_SIZE,
        CONCURRENCY,
        table::sdk_export_line(&run.sdk_export),
        flow_measurements(&run, &verdict, baseline)
    ))
}

/// The total the SDK's batch processor logs at shutdown when it dropped
/// spans (`dropped_span_count=N`); `None` when it logged none.
fn sdk_dropped_count(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|line| {
        let (_, after) = line.split_once("dropped_span_count=")?;
        after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })
}

/// `50 of 50 requests: 1 trace, 6 spans`: how the requests look in lineage.
fn shape_summary(run: &CheckRun) -> String {
    let mut shapes = BTreeMap::<(usize, usize), usize>::new();
    for shape in &run.shapes {
        *shapes.entry((shape.traces, shape.spans)).or_default() += 1;
    }
    let mut by_count: Vec<_> = shapes.into_iter().collect();
    by_count.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let parts: Vec<String> = by_count
        .iter()
        .map(|((traces, spans), count)| {
            format!(
                "{count} of {} requests {} {traces} trace{} of {spans} span{}",
                run.shapes.len(),
                if *count == 1 { "is" } else { "are" },
                if *traces == 1 { "" } else { "s" },
                if *spans == 1 { "" } else { "s" }
            )
        })
        .collect();
    let orphans: u64 = run.report.services.iter().map(|service| service.orphans).sum();
    let spans: u64 = run.report.services.iter().map(|service| service.spans).sum();
    format!(
        "Spans per request: {:.1}. {}; {} of all spans are orphans.",
        spans as f64 / run.shapes.len().max(1) as f64,
        parts.join(", "),
        percent(orphans as f64 / spans.max(1) as f64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdks_shutdown_total_is_read_from_its_log() {
        let log = "WARN name=\"BatchSpanProcessor.SpansDropped\" dropped_span_count=87 max_queue_size=16 Spans were dropped\n\
                   worker: 150 spans ended, 63 exported, 0 failed to export, 87 dropped before export\n";
        assert_eq!(sdk_dropped_count(log), Some(87));
        assert_eq!(sdk_dropped_count("worker: 6 spans ended, 6 exported\n"), None);
    }

    #[test]
    fn tree_blocks_pick_the_named_crate() {
        let tree = "base64 v0.22.1\n└── tonic v0.14.9\n\nopentelemetry v0.32.0\n└── reqwest-tracing v0.7.1\n\nopentelemetry v0.33.1\n└── x\n";
        assert_eq!(tree_blocks(tree, "opentelemetry v").len(), 2);
    }
}
