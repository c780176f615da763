//! One run of a step, in its phases: start everything it needs
//! ([`run_staged`]), the broker and the services ([`run_started`]), drive
//! requests and wait for their spans ([`drive_and_measure`]), measure what
//! only the running flow can tell ([`measure_running`]), then read lineage
//! ([`Snapshot`]). The services' supervisor is [`crate::services`].

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use stitch_flow::Role;

use crate::kafka::{Broker, BrokerKind, BrokerOptions};
use crate::process::{binary, build_broker, poll_until_quiet, spinner};
use stitch_model::{CheckRun, MessageSample, Order, Probes, Step};

use crate::lesson::LessonCrate;
use crate::services::Services;
use crate::snapshot::Snapshot;
use crate::stage::{Stage, StageEnv};

pub use crate::flow::{Flow, with_flow};
pub use crate::snapshot::request_shape;

/// The promise of the workshop: a request is connected in lineage within 30 s
/// of its completion. A run waits no longer than that for its spans.
pub const COMPLETENESS_WINDOW: Duration = Duration::from_secs(30);

/// How to run a step.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub step: Step,
    /// The crate whose binary runs the flow: nothing else about the run
    /// depends on which one it is.
    pub lesson: LessonCrate,
    pub requests: usize,
    pub kafka: BrokerKind,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// What a trap of `book/src/silent-failures.md` or a recorded flow changes
/// in a run besides its crate: extra arguments for its services, the name of
/// its log directory. Steps run with the default, which changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Variant {
    /// Appended to the command line of each service, e.g. `--log info,reqwest=off`.
    pub service_args: Vec<String>,
    /// Names the run's log directory (see [`log_dir`]); the package's name by default.
    pub name: Option<String>,
}

/// Where a run keeps its services' logs (`gateway.log`, `worker.log`, …).
pub fn log_dir(name: &str) -> std::path::PathBuf {
    crate::run_dir().join("runs").join(name)
}

/// How long the run's lineage waits without a new span before it settles a
/// trace. Longer than the lag between two services' exports on a loaded
/// machine (each batches its spans; a collector tier batches again): a trace
/// settled before its parent span arrived would count the child an orphan of
/// the flow. A check ends with `settle_now`, so a long period costs it no
/// time. At 2 s, step 4's consumer showed 3% `missing-parent` orphans on a
/// busy machine with every span received, and the soak 172 orphans at 200
/// requests a second with 72000 of 72000 spans received.
pub const SETTLE_AFTER: Duration = Duration::from_secs(10);

/// Runs a step end to end and returns what lineage (and the step's stage,
/// when it has one) measured.
pub fn run(options: &CheckOptions) -> anyhow::Result<CheckRun> {
    run_variant(options, &Variant::default())
}

/// [`run`], changed as `variant` says.
pub fn run_variant(options: &CheckOptions, variant: &Variant) -> anyhow::Result<CheckRun> {
    let crate_dir = &options.lesson.dir;
    let mut stage = options.step.meta.stage.map(|kind| crate::stages::for_check(kind, crate_dir)).transpose()?;
    run_staged(options, variant, stage.as_deref_mut())
}

/// [`run_variant`] with the stage given rather than the step's.
pub fn run_staged(
    options: &CheckOptions,
    variant: &Variant,
    mut stage: Option<&mut (dyn Stage + '_)>,
) -> anyhow::Result<CheckRun> {
    let package = options.lesson.binary.clone();
    options.lesson.build()?;
    build_broker()?;
    let logs = log_dir(variant.name.as_deref().unwrap_or(&package));
    std::fs::create_dir_all(&logs)?;

    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let entry_services =
        stage.as_ref().map_or_else(|| vec![Role::Gateway.name().to_owned()], |stage| stage.entry_services());
    let lineage = runtime.block_on(lineage::Lineage::start(lineage::Config {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        quiet_period: SETTLE_AFTER,
        max_age: stage.as_ref().map_or_else(|| lineage::Config::default().max_age, |stage| stage.lineage_max_age()),
        entry_services,
        cors_origins: stage.as_ref().map(|stage| stage.lineage_cors_origins()).unwrap_or_default(),
        ..lineage::Config::default()
    }))?;
    let env = StageEnv {
        logs: logs.clone(),
        lineage: &lineage,
        lineage_otlp: lineage.otlp_grpc_endpoint(),
        lineage_http: lineage.http_endpoint(),
        requests: options.requests,
        runtime: &runtime,
    };

    let outcome = run_started(&runtime, &lineage, options, &package, &env, variant, stage.as_deref_mut());
    if let Some(stage) = stage {
        stage.stop();
    }
    runtime.block_on(lineage.shutdown());
    outcome
}

fn run_started(
    runtime: &tokio::runtime::Runtime,
    lineage: &lineage::Lineage,
    options: &CheckOptions,
    package: &str,
    env: &StageEnv,
    variant: &Variant,
    mut stage: Option<&mut (dyn Stage + '_)>,
) -> anyhow::Result<CheckRun> {
    if let Some(stage) = stage.as_deref_mut() {
        stage.start(env)?;
    }
    let mut broker = Broker::start(&BrokerOptions::in_logs(options.kafka, 0, &env.logs))?;

    let otlp = stage.as_ref().and_then(|stage| stage.otlp_endpoint()).unwrap_or_else(|| env.lineage_otlp.clone());
    let starting = spinner(format!("starting {package} (gateway, worker, consumer)"));
    let services =
        Services::start(&binary(package), &otlp, broker.bootstrap(), env, &variant.service_args, stage.as_deref_mut());
    starting.finish_and_clear();
    let services = match services {
        Ok(services) => services,
        Err(err) => {
            broker.stop();
            return Err(err);
        }
    };

    let outcome = drive_and_measure(runtime, lineage, &services, &mut broker, options, env, stage.as_deref_mut());
    // What only the running flow can tell.
    let flow_only = stage.is_none();
    let measured = outcome.and_then(|driven| {
        let running = measure_running(runtime, lineage, &services, &broker, &driven.0, &env.logs, flow_only)?;
        Ok((driven, running))
    });
    let logs = services.log_files();
    services.stop();
    broker.stop();
    let ((orders, failed, started), running) = measured?;
    let service_logs =
        logs.iter().map(|(role, path)| crate::service_logs::read(*role, path)).collect::<anyhow::Result<Vec<_>>>()?;
    let (evidence, snapshot) = match (stage, running.snapshot) {
        (None, Some(snapshot)) => (None, snapshot),
        (stage, _) => {
            lineage.settle_now();
            let evidence = match stage {
                Some(stage) => Some(stage.measure(env, &orders)?),
                None => None,
            };
            (evidence, Snapshot::of(lineage, &orders, &env.logs)?)
        }
    };
    Ok(CheckRun {
        step: options.step.short_name(),
        solution: options.lesson.is_solution(),
        package: options.lesson.binary.clone(),
        kafka: options.kafka.to_string(),
        requests_sent: options.requests,
        requests_failed: failed,
        orders,
        shapes: snapshot.shapes,
        report: snapshot.report,
        sample_dump: snapshot.sample_dump,
        sample_page: snapshot.sample_page,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        evidence,
        sdk_export: running.sdk_export,
        service_logs,
        messages: Some(running.messages),
        probes: running.probes,
    })
}

/// What a run measures while its services still run.
struct Running {
    sdk_export: Vec<crate::sdk_export::ServiceExport>,
    messages: MessageSample,
    /// The flow alone (no stage): lineage's view, taken before the probes
    /// add spans of their own.
    snapshot: Option<Snapshot>,
    probes: Option<Probes>,
}

/// Messages read from the orders topic after a run.
const MESSAGES_READ: usize = 20;

fn measure_running(
    runtime: &tokio::runtime::Runtime,
    lineage: &lineage::Lineage,
    services: &Services,
    broker: &Broker,
    orders: &[Order],
    logs: &std::path::Path,
    flow_only: bool,
) -> anyhow::Result<Running> {
    let sdk_export = services.export_counts()?;
    let newest = stitch_flow::peek::newest(broker.bootstrap(), crate::kafka::FLOW_TOPIC, MESSAGES_READ)
        .context("reading the newest messages of the orders topic")?;
    let carrying: Vec<&str> = newest.iter().filter_map(|message| message.header("traceparent")).collect();
    let messages = MessageSample {
        read: newest.len(),
        with_traceparent: carrying.len(),
        example: carrying.first().map(|value| (*value).to_owned()),
    };
    let (snapshot, probes) = if flow_only {
        lineage.settle_now();
        let snapshot = Snapshot::of(lineage, orders, logs)?;
        let probes = crate::probes::run(runtime, lineage, services.listen(Role::Worker), broker.bootstrap())?;
        (Some(snapshot), Some(probes))
    } else {
        (None, None)
    };
    Ok(Running { sdk_export, messages, snapshot, probes })
}

type Driven = (Vec<Order>, usize, Instant);

fn drive_and_measure(
    runtime: &tokio::runtime::Runtime,
    lineage: &lineage::Lineage,
    services: &Services,
    broker: &mut Broker,
    options: &CheckOptions,
    env: &StageEnv,
    mut stage: Option<&mut (dyn Stage + '_)>,
) -> anyhow::Result<Driven> {
    let started = Instant::now();
    let baseline = stage.as_ref().map_or(options.requests, |stage| stage.baseline_requests(options.requests));
    let bar = ProgressBar::new(baseline as u64).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} requests ({per_sec})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("driving");
    let url = format!("http://{}/orders", services.gateway());
    let client = crate::gateway::client()?;
    let results: Vec<anyhow::Result<Order>> = runtime.block_on(
        futures::stream::iter(0..baseline)
            .map(|_| {
                let placed = crate::gateway::place(client.post(&url));
                let bar = bar.clone();
                async move {
                    let placed = placed.await;
                    bar.inc(1);
                    placed
                }
            })
            .buffered(options.concurrency.max(1))
            .collect(),
    );
    bar.finish_and_clear();
    services.check_alive()?;
    let mut orders = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(order) => orders.push(order),
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    if let Some(stage) = stage.as_deref_mut() {
        stage.check_alive()?;
        orders.extend(stage.drive(env, services.gateway())?);
    }
    if orders.is_empty() {
        bail!("no request succeeded; first error: {}", failures.first().map_or("none", String::as_str));
    }

    let per_request = options.step.full_expectation()?.spans_per_request;
    let expected =
        stage.as_deref().map_or(orders.len() as u64 * per_request, |stage| stage.expected_spans(&orders, per_request));
    let polled = wait_for_spans(lineage, expected, || {
        services.check_alive()?;
        match stage.as_deref() {
            Some(stage) => stage.check_alive(),
            None => Ok(()),
        }
    });
    // Not settling within the window is the verdict's to judge, not an error.
    polled?;
    broker.check_alive()?;
    Ok((orders, failures.len(), started))
}

/// Waits for the spans: until `expected` arrived and stopped moving, the
/// flow went quiet for 3 s, or the completeness window ran out. `alive`
/// fails when a process died, which ends the wait.
pub fn wait_for_spans(
    lineage: &lineage::Lineage,
    expected: u64,
    alive: impl Fn() -> anyhow::Result<()>,
) -> anyhow::Result<crate::process::Polled<u64>> {
    let waiting = spinner("waiting for spans to reach lineage");
    let polled = poll_until_quiet(
        COMPLETENESS_WINDOW,
        Duration::from_millis(100),
        || {
            alive()?;
            let received = lineage.report().spans_received;
            waiting.set_message(format!("waiting for spans: {received}/{expected}"));
            Ok(received)
        },
        |&received, still| {
            (received >= expected && still >= Duration::from_millis(300)) || still >= Duration::from_secs(3)
        },
    );
    waiting.finish_and_clear();
    polled
}
