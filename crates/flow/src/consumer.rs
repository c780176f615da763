//! Processes the orders, one message at a time, in a consumer group.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use rdkafka::Message as _;
use rdkafka::consumer::Consumer as _;
use tracing::Instrument as _;

use crate::Boundaries;
use crate::kafka::KafkaArgs;
use crate::worker::WorkOrder;

/// How long an empty assignment holds before the consumer asks the group
/// again: longer than a rebalance takes with a live group.
pub const ASK_AGAIN_AFTER: Duration = Duration::from_secs(5);

pub(crate) async fn serve(
    listen: SocketAddr,
    kafka: KafkaArgs,
    group: String,
    boundaries: Boundaries,
) -> anyhow::Result<()> {
    crate::kafka::ensure_topic(&kafka.bootstrap, &kafka.topic).await?;
    let assigned = Arc::new(crate::kafka::Assignment::default());
    let consumer = crate::kafka::consumer(&kafka.bootstrap, &group, assigned.clone())?;
    consumer.subscribe(&[kafka.topic.as_str()])?;

    // Ready means partitions are assigned: a message sent before that would
    // wait for the group to form and blur the completeness latency.
    let health = Router::new()
        .route(
            "/healthz",
            get({
                let assigned = assigned.clone();
                move || {
                    let assigned = assigned.ready();
                    async move {
                        if assigned {
                            (StatusCode::OK, "ok")
                        } else {
                            (StatusCode::SERVICE_UNAVAILABLE, "waiting for partitions")
                        }
                    }
                }
            }),
        )
        .merge(crate::server::metrics_route());
    let listener = crate::server::bind(listen).await?;
    tokio::spawn(async move { axum::serve(listener, health).await });
    tracing::info!(%listen, bootstrap = %kafka.bootstrap, topic = %kafka.topic, %group, "consumer started");

    let shutdown = crate::server::shutdown_signal();
    tokio::pin!(shutdown);
    let mut look = tokio::time::interval(Duration::from_secs(1));
    let mut asked_again = false;
    loop {
        let message = tokio::select! {
            _ = &mut shutdown => break,
            received = consumer.recv() => received,
            _ = look.tick() => {
                // Tansu 0.6's coordinator (in memory and on SQLite alike) can
                // hand a restarted consumer, the group's only one, no
                // partition once the killed member's session expires, and
                // never rebalance again. Ask once more by subscribing again;
                // an empty assignment after that is the group's answer (more
                // consumers than partitions).
                match assigned.empty_for() {
                    Some(empty) if empty >= ASK_AGAIN_AFTER && !asked_again => {
                        tracing::warn!(?empty, "still no partition: subscribing again, to ask the group once more");
                        consumer.unsubscribe();
                        consumer.subscribe(&[kafka.topic.as_str()])?;
                        asked_again = true;
                    }
                    Some(_) => {}
                    // Partitions again: a later empty assignment may ask once more.
                    None if assigned.ready() => asked_again = false,
                    None => {}
                }
                continue;
            }
        };
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(%err, "receiving from Kafka failed; retrying");
                continue;
            }
        };
        let span = tracing::info_span!(
            "process",
            otel.name = format!("{} process", message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = %message.topic(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
            order.id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        );
        if let Some(key) = message.key().and_then(|key| std::str::from_utf8(key).ok()) {
            span.record(crate::BUSINESS_KEY, key);
        }
        (boundaries.continue_message)(&span, message.headers());
        process(message.payload(), boundaries.record_failure).instrument(span).await;
        // Processed, so its offset may be committed (the client commits the
        // stored offsets every `COMMIT_EVERY`). A message that failed to
        // process counts too: the failure is on its span, and redelivering it
        // would only fail again.
        if let Err(err) = consumer.store_offset_from_message(&message) {
            tracing::warn!(%err, "storing the offset to commit failed");
        }
    }
    Ok(())
}

async fn process(payload: Option<&[u8]>, record_failure: fn(&tracing::Span, &str)) {
    let span = tracing::Span::current();
    let order: WorkOrder = match payload.map(serde_json::from_slice) {
        Some(Ok(order)) => order,
        Some(Err(err)) => return (record_failure)(&span, &format!("undecodable order: {err}")),
        None => return (record_failure)(&span, "message without a payload"),
    };
    span.record(crate::BUSINESS_KEY, order.order_id.as_str());
    if order.fail {
        (record_failure)(&span, "payment declined");
    }
}
