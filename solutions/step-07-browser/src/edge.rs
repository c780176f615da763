//! The edge: the gateway meets requests from outside, some from the page
//! that started their trace, some from callers it knows nothing about.

use opentelemetry::global;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use stitch_flow::EdgePolicy;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Called for each request the gateway receives, before its span is entered.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap, policy: &EdgePolicy) {
    // ANCHOR: extract
    let presented = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    let context = presented.span().span_context().clone();
    if !context.is_valid() {
        if let Some(value) = headers.get("traceparent") {
            // Not an error for the request: it starts a new trace, and the
            // log says why.
            tracing::warn!(?value, "ignoring a malformed traceparent; this request starts a new trace");
        }
        return;
    }
    // ANCHOR_END: extract
    // ANCHOR: trust
    if policy.trusts(headers) {
        // Our own page: its span is the request's root, the gateway a child.
        if let Err(err) = span.set_parent(presented) {
            tracing::warn!(%err, "cannot continue the page's trace");
        }
        return;
    }
    // ANCHOR_END: trust
    // ANCHOR: link
    // Anyone else keeps its trace and we keep ours: a new root, its sampling
    // decided here, linked to what the caller presented so both can be found.
    span.add_link(context.clone());
    span.set_attribute("stitch.edge.linked", true);
    let linked = policy.record_untrusted();
    tracing::info!(
        trace_id = %context.trace_id(),
        origin = ?headers.get(http::header::ORIGIN),
        linked,
        "untrusted caller's context linked, not continued"
    );
    // ANCHOR_END: link
}
