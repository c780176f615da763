//! The Kafka boundary in seconds: the lesson's `inject` writes a message's
//! headers and its `continue_trace` reads them back, with the real SDK
//! exporting to memory and the real W3C propagator. No broker, no child
//! processes; `cargo xtask check step-3` stays the end-to-end judge.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _};
use opentelemetry_sdk::trace::SpanData;
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use step_03_kafka_solution::messaging::{continue_trace, inject};
use stitch_telemetry::testing::Capture;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// What a failure says: which boundary, and where to read on.
fn broken(what: &str) -> String {
    format!(
        "the Kafka boundary is broken: {what}\n  \
         read the exercise in book/src/step-03-kafka.md, or take a hint: cargo xtask hint step-3"
    )
}

fn span_context(span: &Span) -> SpanContext {
    span.context().span().span_context().clone()
}

/// The `traceparent` header W3C Trace Context writes for `context`, up to
/// its flags (which also say whether the trace-id is random, something the
/// span context does not know).
fn traceparent(context: &SpanContext) -> String {
    format!("00-{}-{}-", context.trace_id(), context.span_id())
}

fn header<'a>(headers: &'a OwnedHeaders, key: &str) -> Option<&'a [u8]> {
    headers.iter().find(|header| header.key == key).and_then(|header| header.value)
}

/// Publishes inside a request, as the worker does: the publish span is a
/// child of the request's span, which is the current one.
fn publish() -> (SpanContext, SpanContext, OwnedHeaders) {
    let request = tracing::info_span!("worker request", otel.kind = "server");
    let _current = request.enter();
    let publish = tracing::info_span!("publish", otel.kind = "producer");
    let headers = inject(&publish, OwnedHeaders::new());
    (span_context(&request), span_context(&publish), headers)
}

/// Processes a message as the consumer does: a span that is a root until
/// `continue_trace` says otherwise.
fn consume(capture: &Capture, headers: Option<&OwnedHeaders>) -> SpanData {
    let span = tracing::info_span!(parent: None, "process", otel.kind = "consumer");
    continue_trace(&span, headers.map(OwnedHeaders::as_borrowed));
    span.in_scope(|| {});
    drop(span);
    capture.only("process")
}

#[test]
fn the_message_carries_the_publish_spans_context() {
    let _capture = Capture::start();
    let (request, publish, headers) = publish();
    let Some(value) = header(&headers, "traceparent") else {
        panic!("{}", broken("the published message has no `traceparent` header"));
    };
    let value = String::from_utf8_lossy(value);
    assert!(
        !value.starts_with(&traceparent(&request)),
        "{}",
        broken("the message carries the current span's context, not the publish span's")
    );
    assert!(
        value.starts_with(&traceparent(&publish)),
        "{}",
        broken("the message's `traceparent` is not the publish span's")
    );
}

#[test]
fn the_consumers_span_is_a_child_of_the_publish_span() {
    let capture = Capture::start();
    let (_, publish, headers) = publish();
    let processed = consume(&capture, Some(&headers));
    assert_eq!(
        processed.span_context.trace_id(),
        publish.trace_id(),
        "{}",
        broken("the consumer's span is in another trace than the message's producer")
    );
    assert_eq!(
        processed.parent_span_id,
        publish.span_id(),
        "{}",
        broken("the consumer's span is not a child of the publish span")
    );
}

#[test]
fn a_message_without_a_valid_context_starts_a_new_trace() {
    let garbage: [(&str, &[u8]); 3] = [
        ("traceparent", b"garbage"),
        ("traceparent", b"00-00000000000000000000000000000000-0000000000000000-01"),
        // Kafka headers are bytes; these are not even UTF-8.
        ("traceparent", &[0xff, 0xfe, 0x00]),
    ];
    let mut cases: Vec<(String, Option<OwnedHeaders>)> =
        vec![("no headers".to_owned(), None), ("empty headers".to_owned(), Some(OwnedHeaders::new()))];
    for (key, value) in garbage {
        let headers = OwnedHeaders::new().insert(Header { key, value: Some(value) });
        cases.push((format!("{key}: {}", String::from_utf8_lossy(value)), Some(headers)));
    }
    for (case, headers) in cases {
        let capture = Capture::start();
        let processed = consume(&capture, headers.as_ref());
        assert_eq!(
            processed.parent_span_id,
            SpanId::INVALID,
            "{}",
            broken(&format!("a message with {case} must be processed as a new trace"))
        );
    }
}
