//! Handles the gateway's call, then hands the rest of the work to a task: the
//! in-process async boundary. The deferred work publishes to Kafka.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use tower_http::trace::TraceLayer;
use tracing::{Instrument as _, Span};

use crate::Boundaries;
use crate::kafka::KafkaArgs;

/// The body of `POST /work` and of each Kafka message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkOrder {
    pub order_id: String,
    #[serde(default)]
    pub fail: bool,
    #[serde(default)]
    pub delay_ms: u64,
}

struct Worker {
    producer: FutureProducer,
    topic: String,
    boundaries: Boundaries,
}

pub(crate) async fn serve(listen: SocketAddr, kafka: KafkaArgs, boundaries: Boundaries) -> anyhow::Result<()> {
    crate::kafka::ensure_topic(&kafka.bootstrap, &kafka.topic).await?;
    let worker =
        Arc::new(Worker { producer: crate::kafka::producer(&kafka.bootstrap)?, topic: kafka.topic, boundaries });
    let continue_http = boundaries.continue_http;
    let record_failure = boundaries.record_failure;
    let app = Router::new()
        .route("/work", post(accept_work))
        .with_state(worker)
        .merge(crate::batch::worker_routes(boundaries))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &http::Request<axum::body::Body>| {
                    let span = crate::server::server_span(request);
                    // What opentelemetry-http's HeaderExtractor would hide, shown.
                    continue_http(&span, &stitch_telemetry::w3c::http_fields::readable(request.headers()));
                    span
                })
                .on_response(move |response: &http::Response<_>, _latency, span: &Span| {
                    crate::server::on_response(response.status(), span, record_failure)
                }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::server::metrics_route());
    let listener = crate::server::bind(listen).await?;
    tracing::info!(%listen, bootstrap = %kafka.bootstrap, "worker listening");
    axum::serve(listener, app).with_graceful_shutdown(crate::server::shutdown_signal()).await?;
    Ok(())
}

async fn accept_work(State(worker): State<Arc<Worker>>, Json(order): Json<WorkOrder>) -> StatusCode {
    Span::current().record(crate::BUSINESS_KEY, order.order_id.as_str());
    // Answer now, finish later: the deferred work outlives this request.
    (worker.boundaries.spawn)(Box::pin(deferred(worker.clone(), order)));
    StatusCode::ACCEPTED
}

/// The deferred work starts its own span inside the task, like a job runner
/// would: whatever context the task carries becomes its parent.
async fn deferred(worker: Arc<Worker>, order: WorkOrder) {
    let span = tracing::info_span!("deferred", otel.name = "prepare order", otel.kind = "internal", order.id = %order.order_id);
    async {
        if order.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(order.delay_ms)).await;
        }
        publish(&worker, &order).await;
    }
    .instrument(span)
    .await;
}

async fn publish(worker: &Worker, order: &WorkOrder) {
    // ANCHOR: producer_span
    let span = tracing::info_span!(
        "publish",
        otel.name = format!("{} publish", worker.topic),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.destination.name = %worker.topic,
        order.id = %order.order_id,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    // ANCHOR_END: producer_span
    let headers = (worker.boundaries.inject_message)(&span, OwnedHeaders::new());
    let payload = match serde_json::to_vec(order) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::error!(parent: &span, %err, "cannot encode the order");
            return;
        }
    };
    let record = FutureRecord::to(&worker.topic).key(&order.order_id).payload(&payload).headers(headers);
    let sent = worker.producer.send(record, Duration::from_secs(5)).instrument(span.clone()).await;
    if let Err((err, _message)) = sent {
        (worker.boundaries.record_failure)(&span, &format!("publishing failed: {err}"));
        tracing::error!(parent: &span, %err, order_id = %order.order_id, "publishing the order failed");
    }
}
