//! The queue: the worker publishes to Kafka, the consumer processes.

use rdkafka::message::{BorrowedHeaders, OwnedHeaders};
use tracing::Span;

/// The headers of a message published inside `span`.
pub fn inject(_span: &Span, headers: OwnedHeaders) -> OwnedHeaders {
    // TODO(step-3): write `span`'s context into the message headers with the
    // global propagator (it needs an `opentelemetry::propagation::Injector`).
    headers
}

/// Called for each message received, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: Option<&BorrowedHeaders>) {
    // TODO(step-3): read the producer's context from the headers (through an
    // `opentelemetry::propagation::Extractor`) and make it the parent of `span`.
}
