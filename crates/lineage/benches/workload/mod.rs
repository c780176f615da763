//! Realistic OTLP batches: 512 spans, traces of 8 spans across 4 services,
//! with the attributes HTTP and messaging instrumentations record.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub const SPANS_PER_BATCH: usize = 512;
pub const SPANS_PER_TRACE: usize = 8;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", service),
            s("service.version", "1.4.2"),
            s("service.instance.id", "6f1c2a0e-3b7d-4c55-9f1e-2d8a7b6c5e4f"),
            s("host.name", "stitch-node-1"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.language", "rust"),
            s("telemetry.sdk.version", "0.32.0"),
        ],
        ..Resource::default()
    }
}

/// (service, kind, name, parent offset within the trace)
const SHAPE: [(&str, SpanKind, &str, Option<usize>); SPANS_PER_TRACE] = [
    ("gateway", SpanKind::Server, "POST /orders", None),
    ("gateway", SpanKind::Client, "POST /work", Some(0)),
    ("worker", SpanKind::Server, "POST /work", Some(1)),
    ("worker", SpanKind::Internal, "price order", Some(2)),
    ("worker", SpanKind::Client, "SELECT orders", Some(2)),
    ("worker", SpanKind::Producer, "orders publish", Some(2)),
    ("consumer", SpanKind::Consumer, "orders process", Some(5)),
    ("ledger", SpanKind::Server, "POST /ledger", None),
];

fn attributes(kind: SpanKind, name: &str, order: u64) -> Vec<KeyValue> {
    let mut attributes = vec![s("order.id", &order.to_string()), s("code.function", "handle")];
    match kind {
        SpanKind::Server | SpanKind::Client => attributes.extend([
            s("http.request.method", "POST"),
            s("http.route", name.trim_start_matches("POST ")),
            s("url.path", name.trim_start_matches("POST ")),
            s("server.address", "127.0.0.1"),
            i("server.port", 8080),
            i("http.response.status_code", 200),
            s("network.protocol.version", "1.1"),
            s("user_agent.original", "stitch-load/0.1 reqwest/0.13"),
        ]),
        SpanKind::Producer | SpanKind::Consumer => attributes.extend([
            s("messaging.system", "kafka"),
            s("messaging.destination.name", "orders"),
            s("messaging.operation.type", if kind == SpanKind::Producer { "publish" } else { "process" }),
            i("messaging.kafka.message.offset", order as i64),
            s("messaging.kafka.message.key", &order.to_string()),
        ]),
        _ => attributes.push(i("thread.id", 7)),
    }
    attributes
}

/// One batch of `SPANS_PER_BATCH` spans; `batch` makes trace and span ids unique.
pub fn batch(batch: u64) -> ExportTraceServiceRequest {
    let traces = (SPANS_PER_BATCH / SPANS_PER_TRACE) as u64;
    let services = ["gateway", "worker", "consumer", "ledger"];
    let mut resource_spans: Vec<ResourceSpans> = services
        .iter()
        .map(|service| ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tracing-opentelemetry".to_owned(),
                    version: "0.33.0".to_owned(),
                    ..InstrumentationScope::default()
                }),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        })
        .collect();
    let start = 1_700_000_000_000_000_000u64 + batch * 1_000_000_000;
    for t in 0..traces {
        let trace_number = batch * traces + t + 1;
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(trace_number.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).to_be_bytes());
        trace_id[8..].copy_from_slice(&trace_number.to_be_bytes());
        let span_id = |k: usize| ((trace_number << 4) | k as u64 | 0x1000_0000_0000_0000).to_be_bytes().to_vec();
        for (k, (service, kind, name, parent)) in SHAPE.iter().enumerate() {
            let span = Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(k),
                parent_span_id: parent.map(span_id).unwrap_or_default(),
                name: (*name).to_owned(),
                kind: *kind as i32,
                start_time_unix_nano: start + k as u64 * 1_000_000,
                end_time_unix_nano: start + (k as u64 + 2) * 1_000_000,
                attributes: attributes(*kind, name, trace_number),
                status: Some(Status { code: 1, message: String::new() }),
                flags: 0x301,
                ..Span::default()
            };
            let r = services.iter().position(|s| s == service).unwrap_or(0);
            resource_spans[r].scope_spans[0].spans.push(span);
        }
    }
    ExportTraceServiceRequest { resource_spans }
}
