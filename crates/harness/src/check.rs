//! One run of a step: start everything it needs, drive requests, read lineage.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::kafka::{Broker, BrokerKind, BrokerOptions};
use crate::process::{Child, binary, build_broker, cargo_build, free_port, spinner, wait_until};
use crate::step::Step;

/// The promise of the workshop: a request is connected in lineage within 30 s
/// of its completion. A run waits no longer than that for its spans.
pub const COMPLETENESS_WINDOW: Duration = Duration::from_secs(30);

/// How to run a step.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub step: Step,
    pub solution: bool,
    pub requests: usize,
    pub kafka: BrokerKind,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// What a trap of `book/src/silent-failures.md` changes in a run: another
/// binary with the step's flow, or extra arguments for its services. Steps
/// run with the default, which changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Variant {
    /// Runs this package's binary instead of the step's (or its solution's).
    pub package: Option<String>,
    /// Appended to the command line of each service, e.g. `--log info,reqwest=off`.
    pub service_args: Vec<String>,
    /// Names the run's log directory (see [`log_dir`]); the package's name by default.
    pub name: Option<String>,
}

/// Where a run keeps its services' logs (`gateway.log`, `worker.log`, …).
pub fn log_dir(name: &str) -> std::path::PathBuf {
    crate::run_dir().join("runs").join(name)
}

/// One request the gateway accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub trace_id: String,
}

/// How one request looks in lineage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestShape {
    pub order_id: String,
    /// Trace fragments carrying the request's business key: 1 when stitched.
    pub traces: usize,
    pub spans: usize,
    /// `service:kind` from the root down, when the request is one trace whose
    /// spans form a single parent chain.
    pub chain: Option<Vec<String>>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRun {
    pub step: String,
    pub solution: bool,
    pub kafka: String,
    pub requests_sent: usize,
    pub requests_failed: usize,
    pub orders: Vec<Order>,
    pub shapes: Vec<RequestShape>,
    pub report: lineage::Report,
    /// One request's span dump, as lineage prints it.
    pub sample_dump: String,
    /// The same request as lineage's HTML page (a waterfall per fragment).
    pub sample_page: String,
    /// Seconds from the first request to the final report.
    pub elapsed_seconds: f64,
}

/// The services of the flow, started as three processes of the step's binary.
struct Services {
    children: Vec<Child>,
    gateway: SocketAddr,
}

impl Services {
    fn start(
        binary: &std::path::Path,
        otlp: &str,
        bootstrap: &str,
        logs: &std::path::Path,
        extra_args: &[String],
    ) -> anyhow::Result<Services> {
        let [gateway, worker, consumer] = [free_port()?, free_port()?, free_port()?];
        let gateway_addr: SocketAddr = ([127, 0, 0, 1], gateway).into();
        let worker_addr: SocketAddr = ([127, 0, 0, 1], worker).into();
        let consumer_addr: SocketAddr = ([127, 0, 0, 1], consumer).into();
        let group = format!("stitch-{}", std::process::id());
        let roles: [(&str, Vec<String>, SocketAddr); 3] = [
            (
                "consumer",
                vec![
                    "--listen".into(),
                    consumer_addr.to_string(),
                    "--kafka".into(),
                    bootstrap.into(),
                    "--group".into(),
                    group,
                ],
                consumer_addr,
            ),
            (
                "worker",
                vec!["--listen".into(), worker_addr.to_string(), "--kafka".into(), bootstrap.into()],
                worker_addr,
            ),
            (
                "gateway",
                vec![
                    "--listen".into(),
                    gateway_addr.to_string(),
                    "--worker-url".into(),
                    format!("http://{worker_addr}"),
                ],
                gateway_addr,
            ),
        ];
        let mut children = Vec::new();
        for (role, args, addr) in roles {
            let mut argv = vec![role.to_owned()];
            argv.extend(args);
            argv.extend(["--otlp-endpoint".to_owned(), otlp.to_owned()]);
            argv.extend(extra_args.iter().cloned());
            let expression = duct::cmd(binary, argv).env_remove("RUST_LOG").env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
            let child = Child::start(role, expression, &logs.join(format!("{role}.log")))?;
            // The consumer answers 200 only once its partitions are assigned.
            wait_until(&child, Duration::from_secs(60), || healthy(addr))?;
            children.push(child);
        }
        Ok(Services { children, gateway: gateway_addr })
    }

    fn check_alive(&self) -> anyhow::Result<()> {
        self.children.iter().try_for_each(Child::check_alive)
    }

    fn stop(mut self) {
        // Reverse start order: the consumer drains last.
        while let Some(mut child) = self.children.pop() {
            child.stop(Duration::from_secs(5));
        }
    }
}

fn healthy(addr: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Runs a step end to end and returns what lineage measured.
pub fn run(options: &CheckOptions) -> anyhow::Result<CheckRun> {
    run_variant(options, &Variant::default())
}

/// [`run`], changed as `variant` says.
pub fn run_variant(options: &CheckOptions, variant: &Variant) -> anyhow::Result<CheckRun> {
    let package = variant.package.clone().unwrap_or_else(|| options.step.package(options.solution));
    cargo_build(&[&package])?;
    build_broker()?;
    let logs = log_dir(variant.name.as_deref().unwrap_or(&package));
    std::fs::create_dir_all(&logs)?;

    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let lineage = runtime.block_on(lineage::Lineage::start(lineage::Config {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        quiet_period: Duration::from_secs(2),
        ..lineage::Config::default()
    }))?;

    let mut broker = Broker::start(&BrokerOptions {
        kind: options.kafka,
        port: 0,
        work_dir: logs.join("kafka"),
        tansu_binary: binary("stitch-broker"),
        cache_dir: crate::kafka::default_cache_dir(),
    })?;

    let starting = spinner(format!("starting {package} (gateway, worker, consumer)"));
    let services = Services::start(
        &binary(&package),
        &lineage.otlp_grpc_endpoint(),
        broker.bootstrap(),
        &logs,
        &variant.service_args,
    );
    starting.finish_and_clear();
    let services = services?;

    let outcome = drive_and_measure(&runtime, &lineage, &services, &mut broker, options);
    services.stop();
    broker.stop();
    let outcome = outcome.map(|(orders, failed, started)| {
        lineage.settle_now();
        let shapes = orders.iter().map(|order| request_shape(&lineage, &order.order_id)).collect();
        let sample_dump = orders.first().and_then(|order| lineage.request_dump(&order.order_id)).unwrap_or_default();
        let sample_page = orders.first().and_then(|order| lineage.request_page(&order.order_id)).unwrap_or_default();
        CheckRun {
            step: options.step.short_name(),
            solution: options.solution,
            kafka: options.kafka.to_string(),
            requests_sent: options.requests,
            requests_failed: failed,
            orders,
            shapes,
            report: lineage.report(),
            sample_dump,
            sample_page,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        }
    });
    runtime.block_on(lineage.shutdown());
    outcome
}

type Driven = (Vec<Order>, usize, Instant);

fn drive_and_measure(
    runtime: &tokio::runtime::Runtime,
    lineage: &lineage::Lineage,
    services: &Services,
    broker: &mut Broker,
    options: &CheckOptions,
) -> anyhow::Result<Driven> {
    let started = Instant::now();
    let bar = ProgressBar::new(options.requests as u64).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} requests ({per_sec})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("driving");
    let url = format!("http://{}/orders", services.gateway);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let results: Vec<anyhow::Result<Order>> = runtime.block_on(
        futures::stream::iter(0..options.requests)
            .map(|_| {
                let request = client.post(&url).send();
                let bar = bar.clone();
                async move {
                    let response = request.await.context("gateway unreachable")?;
                    let status = response.status();
                    bar.inc(1);
                    if !status.is_success() {
                        bail!("gateway answered {status}: {}", response.text().await.unwrap_or_default());
                    }
                    response.json::<Order>().await.context("gateway answered something that is not an order")
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
    if orders.is_empty() {
        bail!("no request succeeded; first error: {}", failures.first().map_or("none", String::as_str));
    }

    // Wait for the spans: until the expected count arrived and stopped moving,
    // the flow went quiet, or the completeness window ran out.
    let expected = orders.len() as u64 * options.step.expectation(options.solution).spans_per_request;
    let waiting = spinner("waiting for spans to reach lineage");
    let deadline = Instant::now() + COMPLETENESS_WINDOW;
    let mut last = (0, Instant::now());
    loop {
        let received = lineage.report().spans_received;
        if received != last.0 {
            last = (received, Instant::now());
        }
        let still = last.1.elapsed();
        waiting.set_message(format!("waiting for spans: {received}/{expected}"));
        if (received >= expected && still >= Duration::from_millis(300)) || still >= Duration::from_secs(3) {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        services.check_alive()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    waiting.finish_and_clear();
    broker.check_alive()?;
    Ok((orders, failures.len(), started))
}

/// Reads one request's fragments from lineage.
pub fn request_shape(lineage: &lineage::Lineage, order_id: &str) -> RequestShape {
    let traces = lineage.request_traces(order_id);
    let spans = traces.iter().map(|trace| trace.spans.len()).sum();
    let chain = match traces.as_slice() {
        [trace] => linear_chain(trace),
        _ => None,
    };
    RequestShape { order_id: order_id.to_owned(), traces: traces.len(), spans, chain }
}

fn linear_chain(trace: &lineage::TraceView) -> Option<Vec<String>> {
    let roots: Vec<_> = trace.spans.iter().filter(|span| span.parent_span_id.is_none()).collect();
    let [root] = roots.as_slice() else { return None };
    let mut chain = vec![format!("{}:{}", root.service, root.kind.to_lowercase())];
    let mut current = root.span_id.clone();
    loop {
        let children: Vec<_> =
            trace.spans.iter().filter(|span| span.parent_span_id.as_deref() == Some(current.as_str())).collect();
        match children.as_slice() {
            [] => break,
            [child] => {
                chain.push(format!("{}:{}", child.service, child.kind.to_lowercase()));
                current = child.span_id.clone();
            }
            _ => return None,
        }
    }
    (chain.len() == trace.spans.len()).then_some(chain)
}
