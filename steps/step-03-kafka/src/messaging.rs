//! The queue: the worker publishes to Kafka, the consumer processes.

use rdkafka::message::{BorrowedHeaders, OwnedHeaders};
use tracing::Span;

/// The headers of a message published inside `span`.
pub fn inject(_span: &Span, headers: OwnedHeaders) -> OwnedHeaders {
    // TODO(step-3): the message carries the order and nothing of the trace.
    // Afterwards, its headers carry `span`'s context (the publish span's,
    // not whatever happens to be current) in the format the global
    // propagator writes, W3C Trace Context.
    headers
}

/// Called for each message received, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: Option<&BorrowedHeaders>) {
    // TODO(step-3): the processing span starts a new trace, whatever the
    // headers say. Afterwards, a message whose headers carry a valid context
    // makes `span` a child of the producer's span; a message without one is
    // still processed, as a new trace, and the log says why.
}
