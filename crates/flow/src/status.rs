//! How a failure shows on a span, for the steps that do not teach it.

use tracing::Span;

/// Marks `span` as failed: status ERROR with the reason as its description,
/// and a warning in the log.
pub fn record_failure(span: &Span, reason: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", reason);
    tracing::warn!(parent: span, reason, "order failed");
}
