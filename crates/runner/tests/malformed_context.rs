//! Malformed context at a boundary is bad input, not a crash: the request or
//! message is still handled, its span starts a new trace, and a valid context
//! next to it still propagates.

use opentelemetry::trace::{TraceContextExt as _, TraceId, TracerProvider as _};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use step_03_kafka_solution::{http as http_hop, messaging};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Runs `test` with an OpenTelemetry layer and the services' W3C propagator installed.
fn with_tracing(test: impl FnOnce()) {
    opentelemetry::global::set_text_map_propagator(stitch_telemetry::w3c::W3cPropagator::new());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("malformed-context")));
    tracing::subscriber::with_default(subscriber, test);
}

fn trace_id(span: &tracing::Span) -> TraceId {
    span.context().span().span_context().trace_id()
}

fn continues(header: Option<&[u8]>) -> bool {
    let mut headers = http::HeaderMap::new();
    if let Some(value) = header {
        headers.insert("traceparent", http::HeaderValue::from_bytes(value).expect("a header value"));
    }
    let span = tracing::info_span!("server");
    http_hop::continue_trace(&span, &headers);
    trace_id(&span) == TraceId::from_hex(TRACE).unwrap()
}

#[test]
fn http_ignores_malformed_traceparents() {
    with_tracing(|| {
        assert!(continues(Some(VALID.as_bytes())), "a valid traceparent is continued");
        for malformed in [
            b"".as_slice(),
            b"garbage",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            &[0xff, 0xfe, 0x80],
        ] {
            assert!(!continues(Some(malformed)), "{malformed:?} must start a new trace");
        }
        assert!(!continues(None));
    });
}

fn message_continues(headers: Option<OwnedHeaders>) -> bool {
    let span = tracing::info_span!("process");
    let borrowed = headers.as_ref().map(|headers| headers.as_borrowed());
    messaging::continue_trace(&span, borrowed);
    trace_id(&span) == TraceId::from_hex(TRACE).unwrap()
}

fn headers(value: &(impl ToBytes + ?Sized)) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header { key: "other", value: Some("x") })
        .insert(Header { key: "traceparent", value: Some(value) })
}

#[test]
fn kafka_ignores_broken_headers() {
    with_tracing(|| {
        assert!(message_continues(Some(headers(VALID))), "a valid traceparent is continued");
        assert!(!message_continues(None), "no headers at all");
        assert!(!message_continues(Some(OwnedHeaders::new())), "no traceparent");
        assert!(!message_continues(Some(headers("00-4bf92f35"))), "truncated");
        assert!(!message_continues(Some(headers(&[0xffu8, 0x00, 0x80][..]))), "not UTF-8");
        let null_value = OwnedHeaders::new().insert(Header::<&str> { key: "traceparent", value: None });
        assert!(!message_continues(Some(null_value)), "a null header value");
        // Step 3's extractor returns the first of two; its keys list both.
        let twice = headers(VALID).insert(Header { key: "traceparent", value: Some(VALID) });
        assert!(!message_continues(Some(twice)), "traceparent twice");
    });
}

#[test]
fn kafka_inject_writes_what_extract_reads() {
    with_tracing(|| {
        let producer = tracing::info_span!("publish");
        let written = messaging::inject(&producer, OwnedHeaders::new());
        let consumer = tracing::info_span!("process");
        messaging::continue_trace(&consumer, Some(written.as_borrowed()));
        assert_eq!(trace_id(&consumer), trace_id(&producer));
    });
}
