//! One run of a step: start everything it needs, drive requests, read lineage.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use stitch_flow::Launch;

use crate::kafka::{Broker, BrokerKind, BrokerOptions};
use crate::process::{
    Child, binary, build_broker, cargo_build, free_port, http_get_status, poll_until_quiet, spinner, wait_until,
};
use stitch_model::{CheckRun, Hop, MessageSample, Order, Probes, RequestShape, RequestSpan, Step};

use crate::lesson::LessonCrate;
use crate::stage::{Stage, StageEnv};

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

/// One service of the flow: how it was started, so that it can be again.
struct Member {
    launch: Launch,
    argv: Vec<String>,
    child: Child,
    /// Where its current process logs.
    log: std::path::PathBuf,
}

/// The services of the flow, started as three processes of the step's binary.
pub struct Services {
    members: Vec<Member>,
    gateway: SocketAddr,
    binary: std::path::PathBuf,
    logs: std::path::PathBuf,
    /// Restarts so far: each restarted process logs to a file of its own.
    restarts: usize,
}

/// How long a service may take to answer `/healthz`; the consumer answers
/// once its partitions are assigned.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Services {
    fn start(
        binary: &std::path::Path,
        otlp: &str,
        bootstrap: &str,
        env: &StageEnv,
        extra_args: &[String],
        mut stage: Option<&mut (dyn Stage + '_)>,
    ) -> anyhow::Result<Services> {
        let logs = &env.logs;
        let gateway = match stage.as_ref().and_then(|stage| stage.gateway_port()) {
            Some(port) => port,
            None => free_port()?,
        };
        let [worker, consumer] = [free_port()?, free_port()?];
        let gateway_addr: SocketAddr = ([127, 0, 0, 1], gateway).into();
        let worker_addr: SocketAddr = ([127, 0, 0, 1], worker).into();
        let consumer_addr: SocketAddr = ([127, 0, 0, 1], consumer).into();
        let group = format!("stitch-{}", std::process::id());
        let kafka = bootstrap.to_owned();
        let mut members = Vec::new();
        let start = |launch: Launch, stage: &Option<&mut (dyn Stage + '_)>| {
            let role = launch.role();
            let mut argv = launch.args(otlp);
            argv.extend(extra_args.iter().cloned());
            argv.extend(stage.as_ref().map(|stage| stage.service_args(role)).unwrap_or_default());
            let log = logs.join(format!("{role}.log"));
            let child = start_member(binary, role, &argv, &log, launch.listen())?;
            anyhow::Ok(Member { launch, argv, child, log })
        };
        members.push(start(Launch::Consumer { listen: consumer_addr, kafka: kafka.clone(), group }, &stage)?);
        members.push(start(Launch::Worker { listen: worker_addr, kafka }, &stage)?);
        let worker_url = match stage.as_deref_mut() {
            Some(stage) => stage.worker_url(worker_addr, env)?,
            None => None,
        };
        let worker_url = worker_url.unwrap_or_else(|| format!("http://{worker_addr}"));
        members.push(start(Launch::Gateway { listen: gateway_addr, worker_url }, &stage)?);
        Ok(Services { members, gateway: gateway_addr, binary: binary.to_owned(), logs: logs.clone(), restarts: 0 })
    }

    /// Where the gateway answers.
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// Where `role` (`gateway`, `worker`, `consumer`) answers HTTP.
    pub fn listen(&self, role: &str) -> anyhow::Result<SocketAddr> {
        Ok(self.member(role)?.launch.listen())
    }

    fn member(&self, role: &str) -> anyhow::Result<&Member> {
        self.members.iter().find(|member| member.launch.role() == role).with_context(|| format!("no service {role:?}"))
    }

    fn member_mut(&mut self, role: &str) -> anyhow::Result<&mut Member> {
        self.members
            .iter_mut()
            .find(|member| member.launch.role() == role)
            .with_context(|| format!("no service {role:?}"))
    }

    /// The process ids of `role`'s current process.
    pub fn pids(&self, role: &str) -> anyhow::Result<Vec<u32>> {
        Ok(self.member(role)?.child.pids())
    }

    /// Each role's current log file.
    pub fn log_files(&self) -> Vec<(&'static str, std::path::PathBuf)> {
        self.members.iter().map(|member| (member.launch.role(), member.log.clone())).collect()
    }

    pub fn check_alive(&self) -> anyhow::Result<()> {
        self.members.iter().try_for_each(|member| member.child.check_alive())
    }

    /// What each service's SDK did with the spans it ended so far (since it
    /// last started), from its `/metrics`.
    pub fn export_counts(&self) -> anyhow::Result<Vec<crate::sdk_export::ServiceExport>> {
        self.members
            .iter()
            .map(|member| {
                Ok(crate::sdk_export::ServiceExport {
                    role: member.launch.role().to_owned(),
                    counts: crate::sdk_export::scrape(member.launch.listen())?,
                })
            })
            .collect()
    }

    /// Roles whose process exited, and how it ended.
    pub fn exited(&self) -> anyhow::Result<Vec<(&'static str, std::process::ExitStatus)>> {
        let mut exited = Vec::new();
        for member in &self.members {
            if let Some(status) = member.child.exit_status()? {
                exited.push((member.launch.role(), status));
            }
        }
        Ok(exited)
    }

    /// Roles whose process exited or that no longer answer `/healthz`.
    pub fn down(&self) -> Vec<&'static str> {
        self.members
            .iter()
            .filter(|member| !matches!(member.child.exit_status(), Ok(None)) || !healthy(member.launch.listen()))
            .map(|member| member.launch.role())
            .collect()
    }

    /// SIGKILL, no flush: what a crash or an OOM kill does. Returns once the
    /// process is gone (an error after 10 s).
    pub fn kill(&mut self, role: &str) -> anyhow::Result<()> {
        let member = self.member_mut(role)?;
        for pid in member.child.pids() {
            crate::process::signal(pid, crate::process::Signal::KILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while member.child.exit_status()?.is_none() {
            if Instant::now() >= deadline {
                bail!("{role} still runs 10 s after SIGKILL");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts `role` again with the arguments it had, and waits until it
    /// answers `/healthz`.
    pub fn restart(&mut self, role: &str) -> anyhow::Result<()> {
        self.restarts += 1;
        let log = self.logs.join(format!("{role}.restart-{}.log", self.restarts));
        let binary = self.binary.clone();
        let member = self.member_mut(role)?;
        member.child = start_member(&binary, role, &member.argv, &log, member.launch.listen())?;
        member.log = log;
        Ok(())
    }

    /// Stops each of `roles` and starts it again with OpenTelemetry
    /// `tracing` on or off, in start order, each ready before the next.
    pub fn restart_with_tracing(&mut self, roles: &[&str], tracing: stitch_telemetry::Tracing) -> anyhow::Result<()> {
        let value = match tracing {
            stitch_telemetry::Tracing::On => "on",
            stitch_telemetry::Tracing::Off => "off",
        };
        for index in 0..self.members.len() {
            if !roles.contains(&self.members[index].launch.role()) {
                continue;
            }
            let member = &mut self.members[index];
            member.child.stop(Duration::from_secs(5));
            if let Some(at) = member.argv.iter().position(|arg| arg == "--tracing") {
                member.argv.drain(at..(at + 2).min(member.argv.len()));
            }
            member.argv.extend(["--tracing".to_owned(), value.to_owned()]);
            let role = member.launch.role();
            self.restart(role)?;
        }
        Ok(())
    }

    fn stop(mut self) {
        // Reverse start order: the consumer drains last.
        while let Some(mut member) = self.members.pop() {
            member.child.stop(Duration::from_secs(5));
        }
    }
}

/// Starts one service and waits until it answers `/healthz`.
fn start_member(
    binary: &std::path::Path,
    role: &str,
    argv: &[String],
    log: &std::path::Path,
    listen: SocketAddr,
) -> anyhow::Result<Child> {
    let expression = duct::cmd(binary, argv)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("STITCH_TRACING");
    let child = Child::start(role, expression, log)?;
    wait_until(&child, READY_TIMEOUT, || healthy(listen))?;
    Ok(child)
}

fn healthy(addr: SocketAddr) -> bool {
    http_get_status(&format!("http://{addr}/healthz")).is_ok_and(|(status, _)| status == 200)
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
    let entry_services = stage.as_ref().map_or_else(|| vec!["gateway".to_owned()], |stage| stage.entry_services());
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

/// A flow started for a caller that drives it itself (the soak): its
/// services, the broker they talk to, and the run's lineage.
pub struct Flow<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    /// Mutable so that a fault can restart it.
    pub lineage: &'a mut lineage::Lineage,
    pub services: Services,
    pub broker: Broker,
    /// This run's log directory.
    pub logs: std::path::PathBuf,
}

impl Flow<'_> {
    /// Fails when a service or the broker died.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.services.check_alive()?;
        self.broker.check_alive()
    }
}

/// Starts `step`'s solution (lineage in process, the broker, the three
/// services), hands it to `drive`, and stops everything on every path out.
pub fn with_flow<T>(
    step: &Step,
    kafka: BrokerKind,
    name: &str,
    drive: impl FnOnce(&mut Flow<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    with_flow_built(step, kafka, name, Profile::Dev, drive)
}

/// How the services of a flow are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// What the checks run: the build a learner's edit makes.
    Dev,
    /// What a team deploys: what a measurement of their cost needs.
    Release,
}

/// [`with_flow`], with the services built in `profile`.
pub fn with_flow_built<T>(
    step: &Step,
    kafka: BrokerKind,
    name: &str,
    profile: Profile,
    drive: impl FnOnce(&mut Flow<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let package = step.package(true);
    let binary = match profile {
        Profile::Dev => {
            cargo_build(&[&package])?;
            binary(&package)
        }
        Profile::Release => {
            crate::process::cargo_build_release(&[&package])?;
            crate::process::target_dir().join("release").join(&package)
        }
    };
    build_broker()?;
    let logs = log_dir(name);
    std::fs::create_dir_all(&logs)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let mut lineage = runtime.block_on(lineage::Lineage::start(lineage::Config {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        quiet_period: SETTLE_AFTER,
        ..lineage::Config::default()
    }))?;
    let outcome = (|| {
        let broker = Broker::start(&BrokerOptions::in_logs(kafka, 0, &logs))?;
        let env = StageEnv {
            logs: logs.clone(),
            lineage: &lineage,
            lineage_otlp: lineage.otlp_grpc_endpoint(),
            lineage_http: lineage.http_endpoint(),
            requests: 0,
            runtime: &runtime,
        };
        let starting = spinner(format!("starting {package} (gateway, worker, consumer)"));
        let services = Services::start(&binary, &env.lineage_otlp, broker.bootstrap(), &env, &[], None);
        starting.finish_and_clear();
        let services = match services {
            Ok(services) => services,
            Err(err) => {
                broker.stop();
                return Err(err);
            }
        };
        let mut flow = Flow { runtime: &runtime, lineage: &mut lineage, services, broker, logs: logs.clone() };
        let outcome = drive(&mut flow);
        let Flow { services, broker, .. } = flow;
        services.stop();
        broker.stop();
        outcome
    })();
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
        logs.iter().map(|(role, path)| crate::service_logs::read(role, path)).collect::<anyhow::Result<Vec<_>>>()?;
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

/// What lineage shows of a run's requests, once settled.
struct Snapshot {
    shapes: Vec<RequestShape>,
    report: lineage::Report,
    sample_dump: String,
    sample_page: String,
}

impl Snapshot {
    /// Lineage's view of `orders`; the first one's dump, when long, is
    /// summarised and written whole into `logs`.
    fn of(lineage: &lineage::Lineage, orders: &[Order], logs: &std::path::Path) -> anyhow::Result<Snapshot> {
        let first = orders.first();
        let dump = first.and_then(|order| lineage.request_dump(&order.order_id)).unwrap_or_default();
        let sample_dump = match first.and_then(|order| lineage.request(&order.order_id)) {
            Some(request) if dump.lines().count() > DUMP_LINES => {
                let whole = logs.join("one-request.txt");
                std::fs::write(&whole, &dump).with_context(|| format!("writing {}", whole.display()))?;
                summarise_dump(&dump, &request, &whole)
            }
            _ => dump,
        };
        Ok(Snapshot {
            shapes: orders
                .iter()
                .map(|order| request_shape(lineage, &order.order_id))
                .collect::<anyhow::Result<_>>()?,
            report: lineage.report(),
            sample_dump,
            sample_page: first.and_then(|order| lineage.request_page(&order.order_id)).unwrap_or_default(),
        })
    }
}

/// A request dump longer than this is summarised on the screen.
const DUMP_LINES: usize = 40;

/// A long request dump as a screen shows it: its first and last lines, how
/// many were left out, and the request's spans counted by what lineage made
/// of them; the whole dump is in `whole`.
fn summarise_dump(dump: &str, request: &lineage::RequestView, whole: &std::path::Path) -> String {
    const HEAD: usize = 16;
    const TAIL: usize = 8;
    let lines: Vec<&str> = dump.lines().collect();
    let (connected, linked, orphans) = request
        .traces
        .iter()
        .fold((0, 0, 0), |(c, l, o), trace| (c + trace.connected, l + trace.linked, o + trace.orphans));
    let spans: usize = request.traces.iter().map(|trace| trace.spans.len()).sum();
    let mut out: Vec<String> = lines[..HEAD].iter().map(|line| (*line).to_owned()).collect();
    out.push(format!("… {} lines left out …", lines.len() - HEAD - TAIL));
    out.extend(lines[lines.len() - TAIL..].iter().map(|line| (*line).to_owned()));
    out.push(String::new());
    out.push(format!(
        "{} traces, {spans} spans: {connected} connected, {linked} linked, {orphans} orphans; the whole dump ({} \
         lines): {}",
        request.traces.len(),
        lines.len(),
        whole.display()
    ));
    out.join("\n")
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
        let probes = crate::probes::run(runtime, lineage, services.listen("worker")?, broker.bootstrap())?;
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
    let url = format!("http://{}/orders", services.gateway);
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
        orders.extend(stage.drive(env, services.gateway)?);
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

/// Reads one request's fragments from lineage.
pub fn request_shape(lineage: &lineage::Lineage, order_id: &str) -> anyhow::Result<RequestShape> {
    let traces = lineage.request_traces(order_id);
    let spans = traces.iter().map(|trace| trace.spans.len()).sum();
    let chain = match traces.as_slice() {
        [trace] => stitch_judge::chain::linear_chain(&stitch_judge::chain::TraceHops::of(trace)),
        _ => None,
    };
    let tree = traces
        .iter()
        .flat_map(|trace| trace.spans.iter().map(move |span| (trace, span)))
        .map(|(trace, span)| {
            Ok(RequestSpan {
                trace_id: trace.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                hop: Hop { service: span.service.clone(), kind: span.kind.parse().map_err(anyhow::Error::msg)? },
                name: span.name.clone(),
                start_unix_nanos: span.start_unix_nanos,
                end_unix_nanos: span.end_unix_nanos,
                links: span.links.len(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("reading the spans of {order_id}"))?;
    Ok(RequestShape { order_id: order_id.to_owned(), traces: traces.len(), spans, chain, tree })
}
