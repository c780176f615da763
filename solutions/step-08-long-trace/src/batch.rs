//! The long job: the items of a batch, processed one after another on the
//! worker for as long as the batch lasts.

use tracing::Span;

/// Called for each item of a batch with the item's span (a new root, not
/// entered yet) and the context of the span that planned the batch.
// ANCHOR: start_item
pub fn start_item(item: &Span, batch: &opentelemetry::Context) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    // No parent: the item stays a root, its trace lasts as long as the item,
    // and the tier judges it whole. The link is the way back to the batch;
    // lineage counts a root with a link as LINKED, not as an orphan. Links,
    // like the parent, must be set before the span starts.
    item.add_link(batch.span().span_context().clone());
}
// ANCHOR_END: start_item
