//! The queue: the worker publishes to Kafka, the consumer processes.

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use rdkafka::message::{BorrowedHeaders, Header, Headers as _, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

// ANCHOR: carriers
/// Lets the propagator write into a message's headers.
struct HeaderInjector<'a>(&'a mut OwnedHeaders);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // `OwnedHeaders::insert` takes the headers by value.
        let headers = std::mem::take(self.0);
        *self.0 = headers.insert(Header { key, value: Some(&value) });
    }
}

/// Lets the propagator read a received message's headers.
struct HeaderExtractor<'a>(&'a BorrowedHeaders);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let header = self.0.iter().find(|header| header.key.eq_ignore_ascii_case(key))?;
        // Kafka headers are bytes: a value that is not UTF-8 is not a context.
        std::str::from_utf8(header.value?).ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|header| header.key).collect()
    }
}
// ANCHOR_END: carriers

/// The headers of a message published inside `span`.
pub fn inject(span: &Span, mut headers: OwnedHeaders) -> OwnedHeaders {
    // ANCHOR: inject
    let context = span.context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
    headers
    // ANCHOR_END: inject
}

/// Called for each message received, before its span is entered.
pub fn continue_trace(span: &Span, headers: Option<&BorrowedHeaders>) {
    // ANCHOR: extract
    let Some(headers) = headers else {
        tracing::warn!("message without headers; its processing starts a new trace");
        return;
    };
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if !parent.span().span_context().is_valid() {
        tracing::warn!(
            headers = ?HeaderExtractor(headers).keys(),
            "message without a valid traceparent; its processing starts a new trace"
        );
        return;
    }
    if let Err(err) = span.set_parent(parent) {
        tracing::warn!(%err, "cannot continue the producer's trace");
    }
    // ANCHOR_END: extract
}
