//! The saturating load: one OTLP/protobuf export request encoded once, then
//! replayed over many keep-alive HTTP connections with its trace ids (and
//! its business keys) written afresh into the bytes of every request, so
//! that no trace repeats and the receiver does all its work on every span.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;

/// The flow's request as its services export it: (service, kind, name,
/// parent's index in the trace).
const SHAPE: [(&str, SpanKind, &str, Option<usize>); 6] = [
    ("gateway", SpanKind::Server, "POST /orders", None),
    ("gateway", SpanKind::Client, "POST", Some(0)),
    ("worker", SpanKind::Server, "POST /work", Some(1)),
    ("worker", SpanKind::Internal, "prepare order", Some(2)),
    ("worker", SpanKind::Producer, "orders publish", Some(3)),
    ("consumer", SpanKind::Consumer, "orders process", Some(4)),
];

pub const SPANS_PER_TRACE: usize = SHAPE.len();

/// A business key is this many bytes on the wire in every request, so that
/// it can be rewritten in place: `ord-` and 16 hex digits.
const KEY_LEN: usize = 20;

/// An encoded export request and where its per-request bytes are.
pub struct Template {
    bytes: Vec<u8>,
    /// Per trace: the offsets of its 16-byte trace id, once per span.
    trace_ids: Vec<Vec<usize>>,
    /// Per trace: the offsets of its business key's value.
    keys: Vec<Vec<usize>>,
    pub spans: u64,
}

impl Template {
    /// `traces` traces of the flow's shape, each service's spans under its
    /// own resource, as a collector forwards them.
    pub fn new(traces: usize) -> anyhow::Result<Template> {
        if traces == 0 {
            bail!("a batch needs at least one trace");
        }
        let markers: Vec<[u8; 16]> = (0..traces).map(|t| marker(t as u64)).collect();
        let services = ["gateway", "worker", "consumer"];
        let request = ExportTraceServiceRequest {
            resource_spans: services
                .iter()
                .map(|&service| ResourceSpans {
                    resource: Some(resource(service)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope { name: service.to_owned(), ..Default::default() }),
                        spans: markers
                            .iter()
                            .enumerate()
                            .flat_map(|(t, marker)| {
                                SHAPE
                                    .iter()
                                    .enumerate()
                                    .filter(move |(_, (owner, ..))| *owner == service)
                                    .map(move |(s, _)| span(marker, t, s))
                            })
                            .collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        let bytes = request.encode_to_vec();
        let mut template = Template { trace_ids: Vec::new(), keys: Vec::new(), spans: 0, bytes };
        for (t, marker) in markers.iter().enumerate() {
            let ids = find_all(&template.bytes, marker);
            if ids.len() != SPANS_PER_TRACE {
                bail!("trace {t}'s id is {} times in the encoded batch, not {SPANS_PER_TRACE}", ids.len());
            }
            let keys = find_all(&template.bytes, key_marker(t).as_bytes());
            if keys.is_empty() {
                bail!("trace {t}'s business key is not in the encoded batch");
            }
            template.trace_ids.push(ids);
            template.keys.push(keys);
        }
        template.spans = (traces * SPANS_PER_TRACE) as u64;
        Ok(template)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Request `n`'s body: fresh trace ids and keys, everything else as encoded.
    pub fn request(&self, n: u64) -> Vec<u8> {
        let mut body = self.bytes.clone();
        for (t, (ids, keys)) in self.trace_ids.iter().zip(&self.keys).enumerate() {
            let serial = n.wrapping_mul(self.trace_ids.len() as u64).wrapping_add(t as u64);
            let id = trace_id(serial);
            for &at in ids {
                body[at..at + 16].copy_from_slice(&id);
            }
            let key = format!("ord-{serial:016x}");
            for &at in keys {
                body[at..at + KEY_LEN].copy_from_slice(key.as_bytes());
            }
        }
        body
    }
}

/// A trace id that no other serial gets (splitmix64, twice), never zero.
fn trace_id(serial: u64) -> [u8; 16] {
    let high = splitmix(serial ^ 0x5354_4954_4348_0001);
    let low = splitmix(serial) | 1;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&low.to_be_bytes());
    id
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A trace id to find again in the encoded bytes: no other field holds
/// these 16 bytes.
fn marker(trace: u64) -> [u8; 16] {
    let mut id = [0xa5u8; 16];
    id[4..12].copy_from_slice(&splitmix(trace ^ 0xdead_beef).to_be_bytes());
    id[12..].copy_from_slice(&(trace as u32).to_be_bytes());
    id
}

fn key_marker(trace: usize) -> String {
    format!("ord-{:016x}", 0xffff_0000_0000_0000u64 | trace as u64)
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack.windows(needle.len()).enumerate().filter(|(_, window)| *window == needle).map(|(at, _)| at).collect()
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            string("service.name", service),
            string("stitch.step", "step-03-kafka-solution"),
            string("telemetry.sdk.name", "opentelemetry"),
            string("telemetry.sdk.language", "rust"),
            string("telemetry.sdk.version", "0.32.1"),
        ],
        ..Default::default()
    }
}

/// Span `s` of trace `t`, with the attributes the flow's instrumentation records.
fn span(trace_id: &[u8; 16], t: usize, s: usize) -> Span {
    let (_, kind, name, parent) = SHAPE[s];
    let span_id = |s: usize| ((t * SPANS_PER_TRACE + s + 1) as u64).to_be_bytes().to_vec();
    let start = 1_765_000_000_000_000_000u64 + (t as u64) * 1_000_000 + (s as u64) * 10_000;
    let mut attributes = vec![string("order.id", &key_marker(t))];
    match kind {
        SpanKind::Server => attributes.extend([
            string("http.request.method", "POST"),
            string("http.route", name.trim_start_matches("POST ")),
            int("http.response.status_code", 202),
            string("thread.name", "tokio-runtime-worker"),
        ]),
        SpanKind::Client => attributes.extend([
            string("http.request.method", "POST"),
            string("url.scheme", "http"),
            string("server.address", "127.0.0.1"),
            int("server.port", 8081),
            string("url.full", "http://127.0.0.1:8081/work"),
            string("user_agent.original", "reqwest/0.13"),
            int("http.response.status_code", 202),
        ]),
        SpanKind::Producer | SpanKind::Consumer => attributes.extend([
            string("messaging.system", "kafka"),
            string("messaging.destination.name", "orders"),
            string("messaging.operation.type", if kind == SpanKind::Producer { "send" } else { "process" }),
        ]),
        _ => attributes.push(string("thread.name", "tokio-runtime-worker")),
    }
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id(s),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 900_000 - (s as u64) * 50_000,
        attributes,
        status: Some(Status::default()),
        ..Default::default()
    }
}

/// What the load sent.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    pub requests: u64,
    pub spans: u64,
    pub seconds: f64,
}

/// Replays `template` to `url` over `connections` keep-alive connections
/// for `duration`. Any answer but 200 stops the load with an error: a
/// refused batch is spans the receiver did not take.
pub fn replay(template: Arc<Template>, url: &str, connections: usize, duration: Duration) -> anyhow::Result<Sent> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the load's runtime")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    runtime.block_on(async {
        let started = Instant::now();
        let deadline = started + duration;
        let tasks: Vec<_> = (0..connections.max(1))
            .map(|_| {
                let (client, url, template, next, failed) =
                    (client.clone(), url.to_owned(), template.clone(), next.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut sent = 0u64;
                    while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                        let body = template.request(next.fetch_add(1, Ordering::Relaxed));
                        let answer =
                            client.post(&url).header("content-type", "application/x-protobuf").body(body).send().await;
                        let answer = match answer {
                            Ok(answer) => answer,
                            Err(err) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(anyhow::anyhow!("POST {url}: {err}"));
                            }
                        };
                        let status = answer.status();
                        let text = answer.bytes().await.unwrap_or_default();
                        if !status.is_success() {
                            failed.store(true, Ordering::Relaxed);
                            bail!("POST {url} answered {status}: {}", String::from_utf8_lossy(&text));
                        }
                        sent += 1;
                    }
                    Ok(sent)
                })
            })
            .collect();
        let mut requests = 0;
        for task in tasks {
            requests += task.await.context("a load task panicked")??;
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(Sent { requests, spans: requests * template.spans, seconds })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_has_fresh_trace_ids_and_keys_and_decodes() {
        let template = Template::new(10).unwrap();
        assert_eq!(template.spans, 60);
        let decode = |n| ExportTraceServiceRequest::decode(template.request(n).as_slice()).unwrap();
        let ids = |request: &ExportTraceServiceRequest| {
            let mut ids: Vec<Vec<u8>> = request
                .resource_spans
                .iter()
                .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter().map(|s| s.trace_id.clone())))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let (first, second) = (decode(0), decode(1));
        assert_eq!(ids(&first).len(), 10, "one id per trace, shared by its spans");
        assert!(ids(&first).iter().all(|id| !ids(&second).contains(id)), "no trace id repeats across requests");
        let keys: Vec<String> = first.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .flat_map(|s| s.attributes.iter())
            .filter(|kv| kv.key == "order.id")
            .map(|kv| format!("{:?}", kv.value))
            .collect();
        assert!(keys.iter().all(|key| !key.contains("ffff")), "every key marker was rewritten: {keys:?}");
    }

    #[test]
    fn lineage_connects_every_replayed_trace() {
        let template = Template::new(4).unwrap();
        let mut store = lineage::Store::new(lineage::Config::ephemeral());
        for n in 0..3 {
            let outcome = store.ingest_protobuf(&template.request(n), 1).unwrap();
            assert_eq!(outcome.accepted, template.spans);
        }
        store.settle_all();
        let report = store.report();
        assert_eq!(report.spans_settled, 3 * template.spans);
        assert_eq!(report.requests, 12);
        assert!(report.services.iter().all(|service| service.orphans == 0), "{report:?}");
    }
}
