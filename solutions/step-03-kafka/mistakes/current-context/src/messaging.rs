//! The queue: the worker publishes to Kafka, the consumer processes.
//!
//! A wrong fix: the message carries the context that is current where it is
//! published (the deferred work's), not that of the publish span it is given.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, global};
use rdkafka::message::{BorrowedHeaders, Header, Headers as _, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Lets the propagator write into a message's headers.
struct HeaderInjector<'a>(&'a mut OwnedHeaders);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let headers = std::mem::take(self.0);
        *self.0 = headers.insert(Header { key, value: Some(&value) });
    }
}

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
pub fn inject(_span: &Span, mut headers: OwnedHeaders) -> OwnedHeaders {
    let context = Context::current();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
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
