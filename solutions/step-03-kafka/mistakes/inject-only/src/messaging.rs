//! The queue: the worker publishes to Kafka, the consumer processes.
//!
//! A wrong fix: the producer side only. The messages carry the publish span's
//! context; the consumer reads nothing.

use opentelemetry::global;
use opentelemetry::propagation::Injector;
use rdkafka::message::{BorrowedHeaders, Header, OwnedHeaders};
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

/// The headers of a message published inside `span`.
pub fn inject(span: &Span, mut headers: OwnedHeaders) -> OwnedHeaders {
    let context = span.context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
    headers
}

/// Called for each message received, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: Option<&BorrowedHeaders>) {}
