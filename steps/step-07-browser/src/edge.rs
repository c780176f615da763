//! The edge: the gateway meets requests from outside, some from the page
//! that started their trace, some from callers it knows nothing about.

use stitch_flow::EdgePolicy;
use tracing::Span;

/// Called for each request the gateway receives, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: &http::HeaderMap, _policy: &EdgePolicy) {
    // TODO(step-7): the page started this request's trace and sent its
    // context as `traceparent`, but `span` starts a new trace: in a service
    // that is no longer the entry, that root is a break. Afterwards, a
    // request from a page the policy trusts continues the page's trace. A
    // request from anyone else keeps its new root, which still records the
    // context it was presented without joining that trace, and the policy
    // counts it as untrusted. A malformed header starts a new trace, and the
    // log says why.
}
