//! The queue: the worker publishes to Kafka, the consumer processes.

use rdkafka::message::{BorrowedHeaders, OwnedHeaders};
use tracing::Span;

/// The headers of a message published inside `span`.
pub fn inject(_span: &Span, headers: OwnedHeaders) -> OwnedHeaders {
    // Nothing is written: the message carries no context.
    headers
}

/// Called for each message received, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: Option<&BorrowedHeaders>) {
    // Nothing is read: the consumer's span starts a new trace.
}
