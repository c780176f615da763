//! The long job: the items of a batch, processed one after another on the
//! worker for as long as the batch lasts.

use tracing::Span;

/// Called for each item of a batch with the item's span (a new root, not
/// entered yet) and the context of the span that planned the batch.
pub fn start_item(item: &Span, batch: &opentelemetry::Context) {
    // TODO(step-8): every item joins the batch's trace, so the trace lasts as
    // long as the batch, and tier 2 decides on it `decision_wait` after its
    // first span, while most of its items are still to come. Afterwards,
    // each item's trace lasts as long as the item, so the tier judges it
    // whole, and the batch is still one click away from every item.
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if let Err(err) = item.set_parent(batch.clone()) {
        tracing::warn!(%err, "cannot put the item in the batch's trace");
    }
}
