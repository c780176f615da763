//! The entry service. Every request starts a trace here.

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

use crate::Boundaries;
use crate::worker::WorkOrder;

struct Gateway {
    client: reqwest_middleware::ClientWithMiddleware,
    worker_url: String,
    /// Distinguishes order ids of different gateway runs.
    run: u32,
    next_order: AtomicU64,
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

pub(crate) async fn serve(listen: SocketAddr, worker_url: String, boundaries: Boundaries) -> anyhow::Result<()> {
    let gateway = Arc::new(Gateway {
        client: (boundaries.http_client)(),
        worker_url: worker_url.trim_end_matches('/').to_owned(),
        run: std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.subsec_nanos())),
        next_order: AtomicU64::new(1),
    });
    let app = Router::new()
        .route("/orders", post(create_order))
        .with_state(gateway)
        .layer(
            // The gateway is the entry: it starts a new trace for every request
            // and, on purpose, continues none that a caller presents.
            TraceLayer::new_for_http().make_span_with(crate::cli::server_span).on_response(
                |response: &http::Response<_>, _latency, span: &Span| crate::cli::on_response(response.status(), span),
            ),
        )
        .route("/healthz", get(|| async { "ok" }));
    let listener = crate::cli::bind(listen).await?;
    tracing::info!(%listen, worker = %worker_url, "gateway listening");
    axum::serve(listener, app).with_graceful_shutdown(crate::cli::shutdown_signal()).await?;
    Ok(())
}

async fn create_order(
    State(gateway): State<Arc<Gateway>>,
    Query(options): Query<OrderOptions>,
) -> Result<(StatusCode, Json<OrderAccepted>), (StatusCode, String)> {
    let order_id = format!("ord-{:08x}-{:06}", gateway.run, gateway.next_order.fetch_add(1, Ordering::Relaxed));
    let span = Span::current();
    span.record(crate::BUSINESS_KEY, order_id.as_str());
    let trace_id = span.context().span().span_context().trace_id().to_string();

    let order = WorkOrder { order_id: order_id.clone(), fail: options.fail, delay_ms: options.delay_ms };
    let response = gateway
        .client
        .post(format!("{}/work", gateway.worker_url))
        .json(&order)
        .send()
        .await
        .map_err(|err| (StatusCode::BAD_GATEWAY, format!("worker unreachable: {err}")))?;
    if !response.status().is_success() {
        return Err((StatusCode::BAD_GATEWAY, format!("worker answered {}", response.status())));
    }
    Ok((StatusCode::ACCEPTED, Json(OrderAccepted { order_id, trace_id })))
}
