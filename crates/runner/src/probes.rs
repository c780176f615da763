//! Which side of a two-sided boundary is in place. After a run is measured,
//! each receiving side is handed a context of the check's own: a `POST
//! /work` sent straight to the worker, a message produced straight to the
//! orders topic, each with a `traceparent` naming a span lineage never sees.
//! A side that continues it makes its span that span's child.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use stitch_model::{Hop, ProbeOutcome, Probes, Role, SpanKind};

use crate::kafka::FLOW_TOPIC;

/// How long a probe's span gets to reach lineage.
const WAIT: Duration = Duration::from_secs(10);

/// A `traceparent` of the check's own: its span id, and the header.
struct Context {
    span_id: String,
    traceparent: String,
}

impl Context {
    fn new() -> Context {
        let trace_id = format!("{:016x}{:016x}", fastrand::u64(1..), fastrand::u64(..));
        let span_id = format!("{:016x}", fastrand::u64(1..));
        Context { traceparent: format!("00-{trace_id}-{span_id}-01"), span_id }
    }
}

/// Probes the worker (at `worker`) and the consumer (through the broker at
/// `bootstrap`), and reads what `lineage` made of each.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    lineage: &lineage::Lineage,
    worker: SocketAddr,
    bootstrap: &str,
) -> anyhow::Result<Probes> {
    let run_id = format!("{:08x}", fastrand::u32(..));
    let (worker_order, worker_context) = (format!("probe-worker-{run_id}"), Context::new());
    let (consumer_order, consumer_context) = (format!("probe-consumer-{run_id}"), Context::new());
    runtime.block_on(async {
        let body = serde_json::json!({ "order_id": worker_order });
        let response = reqwest::Client::new()
            .post(format!("http://{worker}/work"))
            .header("traceparent", &worker_context.traceparent)
            .json(&body)
            .send()
            .await
            .context("probing the worker")?;
        if !response.status().is_success() {
            bail!("the worker answered the probe {}", response.status());
        }
        produce(bootstrap, &consumer_order, &consumer_context).await
    })?;
    Ok(Probes {
        worker: outcome(lineage, &worker_order, &Hop::of(Role::Worker, SpanKind::Server), &worker_context),
        consumer: outcome(lineage, &consumer_order, &Hop::of(Role::Consumer, SpanKind::Consumer), &consumer_context),
    })
}

/// One order message, as the worker publishes it, with `context` in its headers.
async fn produce(bootstrap: &str, order_id: &str, context: &Context) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .context("creating the probe's producer")?;
    let payload = serde_json::json!({ "order_id": order_id }).to_string();
    let headers = OwnedHeaders::new().insert(Header { key: "traceparent", value: Some(&context.traceparent) });
    producer
        .send(FutureRecord::to(FLOW_TOPIC).key(order_id).payload(&payload).headers(headers), Duration::from_secs(10))
        .await
        .map_err(|(err, _)| anyhow::anyhow!("producing the consumer's probe: {err}"))?;
    Ok(())
}

/// Whether the span at `hop` carrying `order_id` is the child of `context`.
fn outcome(lineage: &lineage::Lineage, order_id: &str, hop: &Hop, context: &Context) -> ProbeOutcome {
    let Ok(seen) = crate::process::poll(WAIT, Duration::from_millis(100), || {
        // A probe's trace is never whole (its parent is the check's own):
        // settle what arrived, so that lineage files it under its key.
        lineage.settle_now();
        let found = lineage.request_traces(order_id).into_iter().flat_map(|trace| trace.spans).find(|span| {
            span.service == hop.service && span.kind.parse::<SpanKind>().is_ok_and(|kind| kind == hop.kind)
        });
        Ok::<_, std::convert::Infallible>(found.map(|span| {
            if span.parent_span_id.as_deref() == Some(context.span_id.as_str()) {
                ProbeOutcome::Continued
            } else {
                ProbeOutcome::Ignored
            }
        }))
    });
    seen.unwrap_or(ProbeOutcome::NotSeen)
}
