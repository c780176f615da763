//! The queue: the worker publishes to Kafka, the consumer processes.
//!
//! A wrong fix: the consumer side only. The consumer continues a context a
//! message carries; the worker's messages carry none.

use opentelemetry::global;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use rdkafka::message::{BorrowedHeaders, Headers as _, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Lets the propagator read a received message's headers.
struct HeaderExtractor<'a>(&'a BorrowedHeaders);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let header = self.0.iter().find(|header| header.key.eq_ignore_ascii_case(key))?;
        std::str::from_utf8(header.value?).ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|header| header.key).collect()
    }
}

/// The headers of a message published inside `span`.
pub fn inject(_span: &Span, headers: OwnedHeaders) -> OwnedHeaders {
    headers
}

/// Called for each message received, before its span is entered.
pub fn continue_trace(span: &Span, headers: Option<&BorrowedHeaders>) {
    let Some(headers) = headers else { return };
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if !parent.span().span_context().is_valid() {
        return;
    }
    if let Err(err) = span.set_parent(parent) {
        tracing::warn!(%err, "cannot continue the producer's trace");
    }
}
