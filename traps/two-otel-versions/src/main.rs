//! Silent failure 1: two opentelemetry versions in one dependency graph.
//!
//! The gateway and the worker set up telemetry with opentelemetry 0.33 and
//! tracing-opentelemetry 0.34, and install the 0.33 W3C propagator. The
//! gateway calls the worker through `reqwest-tracing` 0.7.1, whose newest
//! feature is `opentelemetry_0_32`: its middleware reads the span's context
//! through tracing-opentelemetry 0.33 and injects it with opentelemetry 0.32's
//! global propagator. Neither finds anything (no 0.33 layer in the subscriber,
//! no 0.32 propagator set), nothing says so, and no `traceparent` reaches the
//! worker: its server span starts a new trace for every request.
//!
//! `trap-two-otel-versions --otlp-endpoint URL --requests N` starts the worker
//! as a child process (its own `service.name`, like every Stitch service),
//! sends N requests, prints one JSON line per request on stdout and exits once
//! both processes have flushed their spans.

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::post;
use axum::{Json, Router};
use clap::{Parser, Subcommand};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Parser)]
#[command(version, about = "Two opentelemetry versions in one graph: every request loses its trace at the HTTP hop")]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    /// OTLP/gRPC endpoint both services export to (lineage).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", default_value = "http://127.0.0.1:4317")]
    otlp_endpoint: String,
    /// Requests the gateway sends to the worker.
    #[arg(long, default_value_t = 50)]
    requests: usize,
}

#[derive(Subcommand)]
enum Role {
    /// The worker alone: serves `POST /work` on an ephemeral port, prints
    /// `listening on ADDR`, and stops when its standard input closes. The
    /// gateway starts it.
    Worker,
}

/// The body of `POST /work`.
#[derive(Serialize, Deserialize)]
struct WorkOrder {
    order_id: String,
}

/// What the worker answers: the `traceparent` it received, if any.
#[derive(Serialize, Deserialize)]
struct Received {
    traceparent: Option<String>,
}

/// One line of the gateway's output per request.
#[derive(Serialize, Deserialize)]
struct Sent {
    order_id: String,
    /// The trace the gateway started for the request.
    trace_id: String,
    /// What reached the worker.
    traceparent: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.role {
        Some(Role::Worker) => runtime().and_then(|runtime| runtime.block_on(worker(&cli.otlp_endpoint))),
        None => gateway(&cli),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("trap-two-otel-versions: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the tokio runtime")
}

/// The same pipeline as `stitch_telemetry`, written against opentelemetry 0.33.
struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    fn init(service: &str, otlp_endpoint: &str) -> anyhow::Result<Telemetry> {
        // The propagator is set, as it should be: the 0.33 one, the only
        // opentelemetry this set-up knows. reqwest-tracing asks 0.32's.
        global::set_text_map_propagator(TraceContextPropagator::new());
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otlp_endpoint)
            .with_timeout(Duration::from_secs(3))
            .build()
            .with_context(|| format!("building the OTLP exporter for {otlp_endpoint}"))?;
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(BatchConfigBuilder::default().with_scheduled_delay(Duration::from_millis(200)).build())
            .build();
        let resource = Resource::builder()
            .with_service_name(service.to_owned())
            .with_attribute(KeyValue::new("stitch.step", env!("CARGO_PKG_NAME")))
            .build();
        let provider = SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer(service.to_owned())))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false))
            .try_init()
            .context("a global tracing subscriber is already installed")?;
        Ok(Telemetry { provider })
    }

    /// Flushes; the SDK blocks on the export, so not on a runtime worker.
    async fn shutdown(self) {
        let provider = self.provider;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("telemetry shutdown: {err}"),
            Err(err) => eprintln!("telemetry shutdown task: {err}"),
        }
    }
}

/// The client exactly as the workshop's step 1 solution builds it.
fn client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .build()
}

fn gateway(cli: &Cli) -> anyhow::Result<()> {
    let mut worker = Command::new(std::env::current_exe().context("locating this binary")?)
        .args(["worker", "--otlp-endpoint", &cli.otlp_endpoint])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the worker")?;
    let announced = worker.stdout.take().map(std::io::BufReader::new).and_then(|mut out| {
        let mut line = String::new();
        out.read_line(&mut line).ok()?;
        Some(line)
    });
    let addr = announced
        .as_deref()
        .and_then(|line| line.trim().strip_prefix("listening on "))
        .map(str::to_owned)
        .context("the worker did not say where it listens")?;

    let sent = runtime()?.block_on(async {
        let telemetry = Telemetry::init("gateway", &cli.otlp_endpoint)?;
        let sent = send_orders(&format!("http://{addr}/work"), cli.requests).await;
        telemetry.shutdown().await;
        sent
    });
    // Closing its standard input stops the worker, which flushes its spans.
    drop(worker.stdin.take());
    let status = worker.wait().context("waiting for the worker")?;
    let sent = sent?;
    anyhow::ensure!(status.success(), "the worker exited with {status}");

    let carried = sent.iter().filter(|request| request.traceparent.is_some()).count();
    let mut stdout = std::io::stdout().lock();
    for request in &sent {
        writeln!(stdout, "{}", serde_json::to_string(request)?)?;
    }
    eprintln!("{} requests, {carried} reached the worker with a traceparent", sent.len());
    Ok(())
}

async fn send_orders(url: &str, requests: usize) -> anyhow::Result<Vec<Sent>> {
    let client = client();
    let run = std::process::id();
    let mut sent = Vec::with_capacity(requests);
    for n in 1..=requests {
        let order_id = format!("ord-{run:08x}-{n:06}");
        let span = tracing::info_span!("request", otel.name = "POST /orders", otel.kind = "server", order.id = %order_id);
        let trace_id = span.context().span().span_context().trace_id().to_string();
        let received: Received = async {
            let response = client.post(url).json(&WorkOrder { order_id: order_id.clone() }).send().await?;
            anyhow::Ok(response.error_for_status()?.json().await?)
        }
        .instrument(span)
        .await
        .with_context(|| format!("calling the worker for {order_id}"))?;
        sent.push(Sent { order_id, trace_id, traceparent: received.traceparent });
    }
    Ok(sent)
}

async fn worker(otlp_endpoint: &str) -> anyhow::Result<()> {
    let telemetry = Telemetry::init("worker", otlp_endpoint)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding an ephemeral port")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", listener.local_addr()?)?;
        stdout.flush()?;
    }
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    };
    let app = Router::new().route("/work", post(work));
    let served = axum::serve(listener, app).with_graceful_shutdown(stdin_closed).await;
    telemetry.shutdown().await;
    Ok(served?)
}

async fn work(headers: http::HeaderMap, Json(order): Json<WorkOrder>) -> Json<Received> {
    let span = tracing::info_span!("request", otel.name = "POST /work", otel.kind = "server", order.id = %order.order_id);
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(&headers)));
    if parent.span().span_context().is_valid()
        && let Err(err) = span.set_parent(parent)
    {
        tracing::warn!(%err, "cannot continue the caller's trace");
    }
    let traceparent = headers.get("traceparent").and_then(|value| value.to_str().ok()).map(str::to_owned);
    span.in_scope(|| Json(Received { traceparent }))
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one request through the middleware inside a span of the 0.34
    /// layer and returns the `traceparent` the server received, with the
    /// one the 0.33 propagator writes for the same span.
    fn one_call() -> (Option<String>, Option<String>) {
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        global::set_text_map_propagator(TraceContextPropagator::new());
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("addr");
                let app = Router::new().route(
                    "/work",
                    post(|headers: http::HeaderMap| async move {
                        Json(Received {
                            traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
                        })
                    }),
                );
                tokio::spawn(async move { axum::serve(listener, app).await });
                let span = tracing::info_span!("request", otel.kind = "server");
                let mut written = std::collections::HashMap::new();
                global::get_text_map_propagator(|propagator| propagator.inject_context(&span.context(), &mut written));
                let received: Received = async {
                    client()
                        .post(format!("http://{addr}/work"))
                        .send()
                        .await
                        .expect("the worker answers")
                        .json()
                        .await
                        .expect("a JSON answer")
                }
                .instrument(span)
                .await;
                (received.traceparent, written.remove("traceparent"))
            })
        })
    }

    #[test]
    fn the_middleware_sends_no_traceparent_although_the_span_has_one() {
        let (received, written) = one_call();
        assert!(written.is_some(), "the 0.33 propagator writes the span's context");
        assert_eq!(received, None, "reqwest-tracing's 0.32 path injects nothing");
    }
}
