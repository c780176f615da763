//! The fuzz: generated context headers sent to the running services (HTTP
//! through the gateway and straight to the worker, messages to the orders
//! topic from librdkafka and from Apache Kafka's Java client), each case
//! judged by the trace lineage says its work ended up in.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use super::cases::{Case, Edge, Expect, foreign, generate};
use super::drive::progress;
use crate::check::{Flow, wait_for_spans};
use crate::kafka::FLOW_TOPIC;

/// Cases in flight at once.
const CONCURRENCY: usize = 32;

/// Violations quoted in the result, one per kind.
const EXAMPLES: usize = 10;

/// What the fuzz measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FuzzResult {
    /// Replays the same cases: `--seed`.
    pub seed: u64,
    pub cases: usize,
    /// Services that exited or stopped answering `/healthz` during the cases.
    pub crashes: usize,
    /// Cases whose work started a new trace, or that the service refused (4xx).
    pub rejected: usize,
    /// Cases that continued the trace they carried.
    pub continued: usize,
    /// Cases with a valid context whose caller does not sample: the service
    /// recorded nothing, as the sampled flag asks (lineage cannot see more).
    pub continued_unsampled: usize,
    /// Cases whose outcome the W3C rules allow.
    pub handled: usize,
    /// Cases answered with an error status (5xx) or not at all: counted in
    /// the violations too.
    pub errors: usize,
    /// Cases whose outcome they do not: an error, an invalid context
    /// continued, or no entry span in lineage.
    pub violations: usize,
    /// Valid contexts the service did not continue: allowed, and stricter
    /// than the rules (the gateway's are not counted: it trusts no caller).
    pub valid_not_continued: usize,
    pub edges: Vec<EdgeCount>,
    /// Spans the accepted cases leave by the flow's shape, and what lineage received.
    pub spans_expected: u64,
    pub spans_received: u64,
    /// Spans lineage refused, by reason (an oversized export, …).
    pub spans_refused_by_lineage: std::collections::BTreeMap<String, u64>,
    /// The statuses refused cases were answered with, and how often.
    pub refused_statuses: std::collections::BTreeMap<u16, usize>,
    /// Violations by the case's kind (`traceparent: short ids`, …).
    pub violations_by_kind: std::collections::BTreeMap<String, usize>,
    /// The first violation of each kind, with its case number.
    pub examples: Vec<String>,
}

/// The cases of one edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeCount {
    pub edge: Edge,
    pub cases: usize,
    pub continued: usize,
    pub continued_unsampled: usize,
    pub new_root: usize,
    pub refused: usize,
    pub violations: usize,
}

/// How a service took a case.
enum Delivery {
    /// Accepted; its work carries this business key.
    Accepted(String),
    /// Refused with a 4xx status.
    Refused(u16),
    /// An error status, or no answer.
    Failed(String),
}

/// Where a case's entry span ended up.
enum Landed {
    Continued(String),
    NewRoot,
    Missing,
}

/// Sends `count` cases generated from `seed` to the running flow and judges each.
pub fn run(flow: &mut Flow<'_>, seed: u64, count: usize, spans_per_request: u64) -> anyhow::Result<FuzzResult> {
    flow.lineage.reset();
    let mut cases = generate(seed, count);
    let first_foreign = cases.len();
    cases.extend(foreign(seed, first_foreign));
    let gateway = flow.services.gateway();
    let worker = flow.services.listen(stitch_flow::Role::Worker);
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", flow.broker.bootstrap())
        .set("message.timeout.ms", "10000")
        // The oversized headers must fit in one message.
        .set("message.max.bytes", "1000000")
        .create()
        .context("creating the fuzz's Kafka producer")?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let bar = progress("fuzz", first_foreign);
    let mut deliveries: Vec<Delivery> = flow.runtime.block_on(
        futures::stream::iter(&cases[..first_foreign])
            .map(|case| {
                let bar = bar.clone();
                let (client, producer) = (&client, &producer);
                async move {
                    let delivery = deliver(case, seed, client, producer, gateway, worker).await;
                    bar.inc(1);
                    delivery
                }
            })
            .buffered(CONCURRENCY)
            .collect(),
    );
    bar.finish_and_clear();
    let foreign_cases = &cases[first_foreign..];
    let keys: Vec<String> = foreign_cases.iter().map(|case| case_key(seed, case)).collect();
    let started = std::time::Instant::now();
    let sent = super::foreign::send(
        flow.broker.bootstrap(),
        FLOW_TOPIC,
        foreign_cases,
        &keys,
        &flow.logs.join("foreign-producer.log"),
    )?;
    eprintln!("· fuzz: {} messages from the Java producer in {:.1?}", keys.len(), started.elapsed());
    deliveries.extend(keys.into_iter().zip(sent).map(|(key, sent)| match sent {
        Ok(()) => Delivery::Accepted(key),
        Err(err) => Delivery::Failed(format!("the Java producer: {err}")),
    }));
    let crashes = flow.services.down().len();

    let expected = cases
        .iter()
        .zip(&deliveries)
        .filter(|(_, delivery)| matches!(delivery, Delivery::Accepted(_)))
        .map(|(case, _)| case.edge.spans_per_case(spans_per_request))
        .sum();
    // A crash is reported in the result, not an end to the wait.
    wait_for_spans(flow.lineage, expected, || Ok(()))?;
    flow.lineage.settle_now();
    let report = flow.lineage.report();

    let mut result = FuzzResult {
        seed,
        cases: cases.len(),
        crashes,
        rejected: 0,
        continued: 0,
        continued_unsampled: 0,
        handled: 0,
        errors: 0,
        violations: 0,
        valid_not_continued: 0,
        edges: Vec::new(),
        spans_expected: expected,
        spans_received: report.spans_received,
        spans_refused_by_lineage: report.rejected_spans.clone(),
        refused_statuses: std::collections::BTreeMap::new(),
        violations_by_kind: std::collections::BTreeMap::new(),
        examples: Vec::new(),
    };
    for (case, delivery) in cases.iter().zip(&deliveries) {
        let edge = match result.edges.iter().position(|count| count.edge == case.edge) {
            Some(position) => position,
            None => {
                result.edges.push(EdgeCount {
                    edge: case.edge,
                    cases: 0,
                    continued: 0,
                    continued_unsampled: 0,
                    new_root: 0,
                    refused: 0,
                    violations: 0,
                });
                result.edges.len() - 1
            }
        };
        result.edges[edge].cases += 1;
        let violation = match delivery {
            Delivery::Failed(error) => {
                result.errors += 1;
                Some(format!("answered with an error: {error}"))
            }
            Delivery::Refused(status) => {
                *result.refused_statuses.entry(*status).or_insert(0) += 1;
                result.rejected += 1;
                result.edges[edge].refused += 1;
                None
            }
            Delivery::Accepted(key) => match (landed(flow.lineage, key, case.edge), case.expect()) {
                (Landed::Missing, expect) if expect.may_record_nothing() => {
                    result.continued_unsampled += 1;
                    result.edges[edge].continued_unsampled += 1;
                    None
                }
                (Landed::Missing, _) => Some(format!(
                    "no {} entry span under key {key}: dropped, or an invalid context continued unsampled",
                    case.edge.entry_span().0
                )),
                (Landed::NewRoot, expect) => {
                    result.rejected += 1;
                    result.edges[edge].new_root += 1;
                    result.valid_not_continued += usize::from(matches!(expect, Expect::MayContinue(_)));
                    None
                }
                (Landed::Continued(trace), expect) => {
                    if expect.may_continue(&trace) {
                        result.continued += 1;
                        result.edges[edge].continued += 1;
                        None
                    } else {
                        Some(format!("continued trace {trace}, which no valid context of the case carries"))
                    }
                }
            },
        };
        match violation {
            None => result.handled += 1,
            Some(what) => {
                result.violations += 1;
                result.edges[edge].violations += 1;
                let seen = result.violations_by_kind.entry(case.kind.to_owned()).or_insert(0);
                *seen += 1;
                if *seen == 1 && result.examples.len() < EXAMPLES {
                    result.examples.push(format!("case {} ({:?}, {}): {what}", case.index, case.edge, case.kind));
                }
            }
        }
    }
    result.edges.sort_by_key(|count| count.edge);
    Ok(result)
}

/// The business key a case's work is recorded under, when the harness names it.
fn case_key(seed: u64, case: &Case) -> String {
    format!("fuzz-{seed:016x}-{:05}", case.index)
}

async fn deliver(
    case: &Case,
    seed: u64,
    client: &reqwest::Client,
    producer: &FutureProducer,
    gateway: SocketAddr,
    worker: SocketAddr,
) -> Delivery {
    let key = case_key(seed, case);
    let body = serde_json::json!({ "order_id": key }).to_string();
    let request = match case.edge {
        Edge::Gateway => client.post(format!("http://{gateway}/orders")),
        Edge::Worker => {
            client.post(format!("http://{worker}/work")).header("content-type", "application/json").body(body.clone())
        }
        Edge::Foreign => return Delivery::Failed("foreign cases are sent by the Java producer".to_owned()),
        Edge::Consumer => {
            let mut headers = OwnedHeaders::new();
            for (name, value) in &case.headers {
                headers = headers.insert(Header { key: name, value: value.as_deref() });
            }
            let record = FutureRecord::to(FLOW_TOPIC).key(&key).payload(&body).headers(headers);
            return match producer.send(record, Duration::from_secs(10)).await {
                Ok(_) => Delivery::Accepted(key),
                Err((err, _)) => Delivery::Failed(format!("producing the message: {err}")),
            };
        }
    };
    let mut request = request;
    for (name, value) in &case.headers {
        let Some(value) = value else { return Delivery::Failed(format!("the case's {name} has no value")) };
        match reqwest::header::HeaderValue::from_bytes(value) {
            Ok(value) => request = request.header(name.as_str(), value),
            Err(err) => return Delivery::Failed(format!("the case's {name} cannot be sent: {err}")),
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return Delivery::Failed(format!("no answer: {err:#}")),
    };
    let status = response.status();
    if status.is_client_error() {
        return Delivery::Refused(status.as_u16());
    }
    if !status.is_success() {
        return Delivery::Failed(format!("answered {status}"));
    }
    match case.edge {
        Edge::Gateway => match response.json::<stitch_model::Order>().await {
            Ok(order) => Delivery::Accepted(order.order_id),
            Err(err) => Delivery::Failed(format!("the gateway's answer is not an order: {err}")),
        },
        _ => Delivery::Accepted(key),
    }
}

/// The trace the case's entry span is in, and whether it has a parent (a
/// continued context) or is a root.
fn landed(lineage: &lineage::Lineage, key: &str, edge: Edge) -> Landed {
    let (service, kind) = edge.entry_span();
    for trace in lineage.request_traces(key) {
        if let Some(span) = trace.spans.iter().find(|span| span.service == service && span.kind == kind) {
            return match span.parent_span_id {
                Some(_) => Landed::Continued(trace.trace_id.clone()),
                None => Landed::NewRoot,
            };
        }
    }
    Landed::Missing
}
