//! Builds OTLP export requests for tests: spans are described one by one and
//! grouped into resource spans by service, as an SDK would.
#![allow(dead_code)]

pub mod netns;
pub mod pages;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// 2023-11-14T22:13:20Z, an arbitrary fixed origin for span timestamps.
pub const BASE: u64 = 1_700_000_000_000_000_000;
pub const MS: u64 = 1_000_000;

pub fn trace_id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = 0x7a;
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

pub fn trace_hex(n: u64) -> String {
    hex::encode(trace_id(n))
}

pub fn span_id(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

#[derive(Clone, Debug)]
pub struct SpanSpec {
    pub service: String,
    pub span: Span,
}

pub fn span(trace: u64, id: u64, service: &str, kind: SpanKind, name: &str) -> SpanSpec {
    SpanSpec {
        service: service.to_owned(),
        span: Span {
            trace_id: trace_id(trace).to_vec(),
            span_id: span_id(id).to_vec(),
            name: name.to_owned(),
            kind: kind as i32,
            start_time_unix_nano: BASE,
            end_time_unix_nano: BASE + MS,
            ..Span::default()
        },
    }
}

pub fn server(trace: u64, id: u64, service: &str, name: &str) -> SpanSpec {
    span(trace, id, service, SpanKind::Server, name)
}

pub fn internal(trace: u64, id: u64, service: &str, name: &str) -> SpanSpec {
    span(trace, id, service, SpanKind::Internal, name)
}

pub fn client(trace: u64, id: u64, service: &str, name: &str) -> SpanSpec {
    span(trace, id, service, SpanKind::Client, name)
}

pub fn producer(trace: u64, id: u64, service: &str, name: &str) -> SpanSpec {
    span(trace, id, service, SpanKind::Producer, name)
}

pub fn consumer(trace: u64, id: u64, service: &str, name: &str) -> SpanSpec {
    span(trace, id, service, SpanKind::Consumer, name)
}

impl SpanSpec {
    pub fn parent(mut self, id: u64) -> Self {
        self.span.parent_span_id = span_id(id).to_vec();
        self
    }

    /// Start and end in milliseconds after `BASE`.
    pub fn at(mut self, start_ms: u64, end_ms: u64) -> Self {
        self.span.start_time_unix_nano = BASE + start_ms * MS;
        self.span.end_time_unix_nano = BASE + end_ms * MS;
        self
    }

    pub fn attr(mut self, key: &str, value: &str) -> Self {
        self.span.attributes.push(string_kv(key, value));
        self
    }

    pub fn attr_int(mut self, key: &str, value: i64) -> Self {
        self.span.attributes.push(KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
            ..KeyValue::default()
        });
        self
    }

    pub fn order(self, key: &str) -> Self {
        self.attr("order.id", key)
    }

    pub fn link(mut self, trace: u64, span: u64) -> Self {
        self.span.links.push(Link {
            trace_id: trace_id(trace).to_vec(),
            span_id: span_id(span).to_vec(),
            ..Link::default()
        });
        self
    }

    pub fn error(mut self) -> Self {
        self.span.status = Some(Status { code: 2, message: "boom".to_owned() });
        self
    }
}

pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..KeyValue::default()
    }
}

/// One export request, one resource per service, in order of first appearance.
pub fn request(spans: impl IntoIterator<Item = SpanSpec>) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    let mut services: Vec<String> = Vec::new();
    for spec in spans {
        let i = match services.iter().position(|s| *s == spec.service) {
            Some(i) => i,
            None => {
                services.push(spec.service.clone());
                resource_spans.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![string_kv("service.name", &spec.service)],
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans::default()],
                    ..ResourceSpans::default()
                });
                services.len() - 1
            }
        };
        resource_spans[i].scope_spans[0].spans.push(spec.span);
    }
    ExportTraceServiceRequest { resource_spans }
}

/// gateway SERVER → gateway CLIENT → worker SERVER → worker INTERNAL →
/// worker PRODUCER → consumer CONSUMER, all in one trace (span ids base+1..base+6).
pub fn connected_chain(trace: u64, base: u64, key: &str) -> Vec<SpanSpec> {
    vec![
        server(trace, base + 1, "gateway", "POST /orders").at(0, 50).order(key),
        client(trace, base + 2, "gateway", "POST /work").parent(base + 1).at(5, 40),
        server(trace, base + 3, "worker", "POST /work").parent(base + 2).at(6, 39).order(key),
        internal(trace, base + 4, "worker", "price order").parent(base + 3).at(10, 20),
        producer(trace, base + 5, "worker", "orders publish")
            .parent(base + 3)
            .at(21, 22)
            .attr("messaging.system", "kafka"),
        consumer(trace, base + 6, "consumer", "orders process")
            .parent(base + 5)
            .at(30, 45)
            .attr("messaging.system", "kafka"),
    ]
}
