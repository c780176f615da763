//! The edge: the gateway meets requests from outside, some from the page
//! that started their trace, some from callers it knows nothing about.

use stitch_flow::EdgePolicy;
use tracing::Span;

/// Called for each request the gateway receives, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: &http::HeaderMap, _policy: &EdgePolicy) {
    // TODO(step-7): the page started this request's trace and sent its context
    // as `traceparent`. Read it with the global propagator. From a trusted
    // page (`policy.trusts(headers)`), make it the parent of `span`. From
    // anyone else, keep the new root: add the presented context to `span` as a
    // link (`OpenTelemetrySpanExt::add_link`) and count it
    // (`policy.record_untrusted()`). A malformed header starts a new trace.
}
