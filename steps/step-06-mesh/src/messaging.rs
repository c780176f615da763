//! The queue: the worker publishes to Kafka, the consumer processes.

use rdkafka::message::{BorrowedHeaders, OwnedHeaders};
use tracing::Span;

/// The headers of a message published inside `span`.
pub fn inject(_span: &Span, headers: OwnedHeaders) -> OwnedHeaders {
    // TODO(step-6): the sidecar sees the worker's HTTP requests, never the
    // messages it publishes: no proxy can write these headers. Afterwards,
    // as after step 3, the message carries `span`'s context.
    headers
}

/// Called for each message received, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: Option<&BorrowedHeaders>) {
    // TODO(step-6): nor can it read them on the consumer's side. Afterwards,
    // as after step 3, `span` is a child of the producer's span whenever the
    // headers carry its context.
}
