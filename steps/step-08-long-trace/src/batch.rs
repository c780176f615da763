//! The long job: the items of a batch, processed one after another on the
//! worker for as long as the batch lasts.

use tracing::Span;

/// Called for each item of a batch with the item's span (a new root, not
/// entered yet) and the context of the span that planned the batch.
// ANCHOR: start_item
pub fn start_item(item: &Span, batch: &opentelemetry::Context) {
    // TODO(step-8): every item joins the batch's trace, so the trace lasts as
    // long as the batch, and tier 2 decides on it after `decision_wait`,
    // while most of its items are still to come. Give each item a trace of
    // its own instead: no `set_parent`, so `item` stays the root the flow
    // created, and the batch's span context added to it as a span link
    // (`OpenTelemetrySpanExt::add_link`), so the batch stays one click away.
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if let Err(err) = item.set_parent(batch.clone()) {
        tracing::warn!(%err, "cannot put the item in the batch's trace");
    }
}
// ANCHOR_END: start_item
