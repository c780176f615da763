//! The long job: the items of a batch, processed one after another on the
//! worker for as long as the batch lasts.

use tracing::Span;

/// Called for each item of a batch with the item's span (a new root, not
/// entered yet) and the context of the span that planned the batch.
pub fn start_item(item: &Span, batch: &opentelemetry::Context) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    // A wrong fix, half of the right one: the link is added, but the batch
    // stays the item's parent, so the batch and its items are still one
    // trace as long as the batch.
    item.add_link(batch.span().span_context().clone());
    if let Err(err) = item.set_parent(batch.clone()) {
        tracing::warn!(%err, "cannot put the item in the batch's trace");
    }
}
