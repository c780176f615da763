//! The boundary to the sampler: how a failed order shows on its span.

use tracing::Span;

/// Called when the consumer fails an order, inside the order's span.
// ANCHOR: record_failure
pub fn record_failure(span: &Span, reason: &str) {
    // tracing-opentelemetry turns these two fields into the span's status;
    // both must be declared (as `Empty`) when the span is created.
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", reason);
    tracing::warn!(parent: span, reason, "order failed");
}
// ANCHOR_END: record_failure
