//! The HTTP hop: the gateway calls the worker.

use reqwest_middleware::ClientWithMiddleware;
use tracing::Span;

/// The client the gateway calls the worker with.
pub fn client() -> ClientWithMiddleware {
    // TODO(step-1): the gateway's calls to the worker leave nothing of
    // themselves in the trace: no span records the call, and the request
    // carries no context, so the worker cannot know who called. Afterwards,
    // every request sent through this client is a CLIENT span of the gateway,
    // and carries that span's context as a W3C `traceparent` header.
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build()
}

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: &http::HeaderMap) {
    // TODO(step-1): `span` starts a new trace even when the request carries
    // its caller's context. Afterwards, a request with a valid `traceparent`
    // makes `span` a child of the span that sent it; a request without one
    // leaves it a root; and a propagation error is logged, never a reason to
    // fail the request.
}
