//! A long job: `POST /batches` on the gateway asks the worker to process a
//! batch of items, one after another, long after the request has answered.
//! Each item gets a span; whether it joins the batch's trace or starts its
//! own is the step's `start_batch_item` boundary.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use opentelemetry::trace::TraceContextExt as _;
use serde::{Deserialize, Serialize};
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::Boundaries;
use crate::gateway::Gateway;

/// Items a batch processes unless the request says otherwise.
const DEFAULT_ITEMS: u32 = 60;
/// The pause before each item (the job waits for its input, a rate limit…).
const DEFAULT_INTERVAL_MS: u64 = 1_000;
/// Batches larger than this are refused: a typo should not run for hours.
const MAX_ITEMS: u32 = 10_000;
/// The name of an item's span, where step 8's check finds the items.
pub const ITEM_SPAN: &str = "process item";

/// Steps 0–7: an item is a child of the batch, so the batch and all of its
/// items are one trace, as long as the batch runs.
pub fn start_item(item: &Span, batch: &opentelemetry::Context) {
    if let Err(err) = item.set_parent(batch.clone()) {
        tracing::warn!(%err, "cannot put the item in the batch's trace");
    }
}

/// What `POST /batches` accepts in its query string.
#[derive(Debug, Deserialize)]
struct BatchOptions {
    #[serde(default = "default_items")]
    items: u32,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    /// This item (numbered from 1) and every later one fail, as when a
    /// store the items need goes down mid-batch: their spans get status
    /// ERROR. None fail when absent.
    #[serde(default)]
    fail_from: Option<u32>,
}

fn default_items() -> u32 {
    DEFAULT_ITEMS
}

fn default_interval_ms() -> u64 {
    DEFAULT_INTERVAL_MS
}

/// The body of the gateway's call to the worker's `POST /batches`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Batch {
    batch_id: String,
    items: u32,
    interval_ms: u64,
    #[serde(default)]
    fail_from: Option<u32>,
}

/// What the gateway's `POST /batches` answers: the batch's business key
/// (in `order.id`, like an order's) and the trace id the gateway started.
#[derive(Debug, Serialize)]
struct BatchAccepted {
    order_id: String,
    trace_id: String,
    items: u32,
}

/// The gateway's `POST /batches`, forwarded to the worker.
pub(crate) fn gateway_routes(gateway: Arc<Gateway>) -> Router {
    Router::new().route("/batches", post(create_batch)).with_state(gateway)
}

async fn create_batch(
    State(gateway): State<Arc<Gateway>>,
    Query(options): Query<BatchOptions>,
) -> Result<(StatusCode, Json<BatchAccepted>), (StatusCode, String)> {
    if options.items == 0 || options.items > MAX_ITEMS {
        return Err((StatusCode::BAD_REQUEST, format!("items must be 1..={MAX_ITEMS}, got {}", options.items)));
    }
    let batch_id = gateway.next_id("bat", &gateway.next_batch);
    let span = Span::current();
    span.record(crate::BUSINESS_KEY, batch_id.as_str());
    let trace_id = span.context().span().span_context().trace_id().to_string();
    let batch = Batch {
        batch_id: batch_id.clone(),
        items: options.items,
        interval_ms: options.interval_ms,
        fail_from: options.fail_from,
    };
    gateway.forward("/batches", &batch).await?;
    Ok((StatusCode::ACCEPTED, Json(BatchAccepted { order_id: batch_id, trace_id, items: options.items })))
}

/// The worker's `POST /batches`: plans the batch and runs it in a task.
pub(crate) fn worker_routes(boundaries: Boundaries) -> Router {
    Router::new().route("/batches", post(accept_batch)).with_state(boundaries)
}

async fn accept_batch(State(boundaries): State<Boundaries>, Json(batch): Json<Batch>) -> StatusCode {
    Span::current().record(crate::BUSINESS_KEY, batch.batch_id.as_str());
    // ANCHOR: plan
    let plan = tracing::info_span!(
        "batch",
        otel.name = "plan batch",
        otel.kind = "internal",
        order.id = %batch.batch_id,
        batch.items = batch.items,
    );
    // The items run long after this span ended: they get its context, never
    // the span itself (a tracing child would keep its parent open).
    let context = plan.context();
    drop(plan);
    (boundaries.spawn)(Box::pin(run(boundaries, batch, context)));
    // ANCHOR_END: plan
    StatusCode::ACCEPTED
}

// ANCHOR: run
async fn run(boundaries: Boundaries, batch: Batch, context: opentelemetry::Context) {
    // Ticks, not sleeps: the time an item takes does not push the next one
    // back, so a batch lasts `items × interval`, however loaded the worker.
    let interval = Duration::from_millis(batch.interval_ms.max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for number in 1..=batch.items {
        ticks.tick().await;
        // A root for tracing: where the item belongs is the boundary's call.
        let span = tracing::info_span!(
            parent: None,
            "item",
            otel.name = ITEM_SPAN,
            otel.kind = "internal",
            order.id = %batch.batch_id,
            batch.item = number,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        );
        (boundaries.start_batch_item)(&span, &context);
        let failed = batch.fail_from.is_some_and(|from| number >= from);
        process(&batch.batch_id, number, failed, &span, boundaries.record_failure).instrument(span.clone()).await;
    }
    tracing::info!(batch = %batch.batch_id, items = batch.items, "batch done");
}
// ANCHOR_END: run

async fn process(batch_id: &str, number: u32, failed: bool, item: &Span, record_failure: fn(&Span, &str)) {
    let store = tracing::info_span!("store", otel.name = "store item", otel.kind = "internal", order.id = %batch_id);
    tokio::time::sleep(Duration::from_millis(5)).await;
    async { tokio::time::sleep(Duration::from_millis(10)).await }.instrument(store).await;
    if failed {
        record_failure(item, &format!("item {number} of {batch_id} failed"));
    }
}
