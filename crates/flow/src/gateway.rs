//! The entry service. Every request starts a trace here, unless a trusted
//! page started it already (step 7): the gateway can also serve that page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use opentelemetry::trace::TraceContextExt as _;
use serde::{Deserialize, Serialize};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::worker::WorkOrder;
use crate::{Boundaries, EdgePolicy};

/// The page the gateway can serve (step 7) and who may continue a trace here.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct EdgeArgs {
    /// Origin whose pages may continue a trace at the gateway (`Origin`
    /// header); repeat for several. Any other caller's context is only linked.
    #[arg(long = "trusted-origin", value_parser = parse_origin)]
    pub trusted_origins: Vec<String>,
    /// Serves this directory's files (the order page and its bundle) at `/`.
    #[arg(long, value_name = "DIR")]
    pub frontend: Option<std::path::PathBuf>,
    /// Where the page exports its spans (an OTLP/HTTP traces URL that allows
    /// the page's origin).
    #[arg(long, default_value = "http://127.0.0.1:4318/v1/traces", requires = "frontend")]
    pub frontend_otlp: String,
    /// Cross-origin API the page sends `traceparent` to: its allowlist, one
    /// origin per flag. Same-origin calls always carry it.
    #[arg(long = "propagate-to", value_parser = parse_origin, requires = "frontend")]
    pub propagate_to: Vec<String>,
    /// Another endpoint the page calls with each order, as NAME=URL (a partner
    /// API, an analytics beacon); repeat for several.
    #[arg(long = "frontend-call", value_parser = parse_call, requires = "frontend")]
    pub calls: Vec<(String, String)>,
}

/// What the page reads from `GET /config.json`: everything it may talk to is
/// decided here, by the server, never by the page's URL.
#[derive(Debug, Serialize)]
struct PageConfig<'a> {
    otlp_traces_url: &'a str,
    propagate_to: &'a [String],
    calls: Vec<PageCall<'a>>,
}

#[derive(Debug, Serialize)]
struct PageCall<'a> {
    name: &'a str,
    url: &'a str,
}

/// An origin as browsers send it in `Origin`: scheme, host, port; no path.
fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.trim().trim_end_matches('/');
    let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['/', '?', '#', '*'])
    });
    if valid {
        Ok(origin.to_owned())
    } else {
        Err(format!("not an origin: {text:?} (scheme://host[:port], e.g. http://127.0.0.1:8080)"))
    }
}

fn parse_call(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, url)) if !name.is_empty() && (url.starts_with("http://") || url.starts_with("https://")) => {
            Ok((name.to_owned(), url.to_owned()))
        }
        _ => Err(format!("expected NAME=URL with an http(s) URL, got {text:?}")),
    }
}

pub(crate) struct Gateway {
    client: reqwest_middleware::ClientWithMiddleware,
    worker_url: String,
    /// Distinguishes order (and batch) ids of different gateway runs.
    run: u32,
    next_order: AtomicU64,
    pub(crate) next_batch: AtomicU64,
}

impl Gateway {
    /// `{prefix}-{run}-{n}`, with `n` taken from `counter`.
    pub(crate) fn next_id(&self, prefix: &str, counter: &AtomicU64) -> String {
        format!("{prefix}-{:08x}-{:06}", self.run, counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Posts `body` to the worker's `path`; anything but success is a 502.
    pub(crate) async fn forward(&self, path: &str, body: &impl Serialize) -> Result<(), (StatusCode, String)> {
        let response = self
            .client
            .post(format!("{}{path}", self.worker_url))
            .json(body)
            .send()
            .await
            .map_err(|err| (StatusCode::BAD_GATEWAY, format!("worker unreachable: {err}")))?;
        if !response.status().is_success() {
            return Err((StatusCode::BAD_GATEWAY, format!("worker answered {}", response.status())));
        }
        Ok(())
    }
}

/// Knobs a request can turn, for the chapters that need an error or a slow trace.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrderOptions {
    /// Make the order fail in the consumer (its span gets status ERROR).
    #[serde(default)]
    fail: bool,
    /// Make the deferred work this much slower.
    #[serde(default)]
    delay_ms: u64,
}

/// What `POST /orders` answers.
#[derive(Debug, Serialize)]
struct OrderAccepted {
    order_id: String,
    /// The trace id the gateway started, to look the request up in lineage.
    trace_id: String,
}

pub(crate) async fn serve(
    listen: SocketAddr,
    worker_url: String,
    edge: EdgeArgs,
    boundaries: Boundaries,
) -> anyhow::Result<()> {
    let gateway = Arc::new(Gateway {
        client: (boundaries.http_client)(),
        worker_url: worker_url.trim_end_matches('/').to_owned(),
        run: std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.subsec_nanos())),
        next_order: AtomicU64::new(1),
        next_batch: AtomicU64::new(1),
    });
    let policy = Arc::new(EdgePolicy::new(edge.trusted_origins.clone()));
    let continue_at_edge = boundaries.continue_at_edge;
    let record_failure = boundaries.record_failure;
    let edge_policy = policy.clone();
    let mut app = Router::new()
        .route("/orders", post(create_order))
        .with_state(gateway.clone())
        .merge(crate::batch::gateway_routes(gateway.clone()))
        .layer(
            // The gateway is the edge: whether a trace a caller presents is
            // continued here is the step's `continue_at_edge` (steps 0–6:
            // never, every request starts a new trace).
            TraceLayer::new_for_http()
                .make_span_with(move |request: &http::Request<axum::body::Body>| {
                    let span = crate::server::server_span(request);
                    // What opentelemetry-http's HeaderExtractor would hide, shown.
                    let headers = stitch_telemetry::w3c::http_fields::readable(request.headers());
                    continue_at_edge(&span, &headers, &edge_policy);
                    span
                })
                .on_response(move |response: &http::Response<_>, _latency, span: &Span| {
                    crate::server::on_response(response.status(), span, record_failure)
                }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::server::metrics_route());
    if let Some(dir) = &edge.frontend {
        if !dir.join("index.html").is_file() {
            anyhow::bail!(
                "--frontend {}: no index.html there (the page is frontend/; build its bundle with `npm ci && npm run build` in it)",
                dir.display()
            );
        }
        let config = serde_json::to_string(&PageConfig {
            otlp_traces_url: &edge.frontend_otlp,
            propagate_to: &edge.propagate_to,
            calls: edge.calls.iter().map(|(name, url)| PageCall { name, url }).collect(),
        })?;
        let config = move || async move { ([(http::header::CONTENT_TYPE, "application/json")], config) };
        app = app.route("/config.json", get(config)).fallback_service(tower_http::services::ServeDir::new(dir));
    }
    let listener = crate::server::bind(listen).await?;
    tracing::info!(%listen, worker = %worker_url, trusted = ?edge.trusted_origins, frontend = ?edge.frontend, "gateway listening");
    axum::serve(listener, app).with_graceful_shutdown(crate::server::shutdown_signal()).await?;
    if policy.untrusted() > 0 {
        tracing::info!(linked = policy.untrusted(), "contexts from untrusted callers were linked, not continued");
    }
    Ok(())
}

async fn create_order(
    State(gateway): State<Arc<Gateway>>,
    Query(options): Query<OrderOptions>,
) -> Result<(StatusCode, Json<OrderAccepted>), (StatusCode, String)> {
    let order_id = gateway.next_id("ord", &gateway.next_order);
    let span = Span::current();
    span.record(crate::BUSINESS_KEY, order_id.as_str());
    let trace_id = span.context().span().span_context().trace_id().to_string();

    let order = WorkOrder { order_id: order_id.clone(), fail: options.fail, delay_ms: options.delay_ms };
    gateway.forward("/work", &order).await?;
    Ok((StatusCode::ACCEPTED, Json(OrderAccepted { order_id, trace_id })))
}
