//! The HTTP hop: the gateway calls the worker.

use reqwest_middleware::ClientWithMiddleware;
use tracing::Span;

/// The client the gateway calls the worker with.
pub fn client() -> ClientWithMiddleware {
    // A plain client: no client span, and no `traceparent` on the request.
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build()
}

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: &http::HeaderMap) {
    // Nothing is read from the request: the worker's span starts a new trace.
}
