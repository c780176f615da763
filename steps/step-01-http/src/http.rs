//! The HTTP hop: the gateway calls the worker.

use reqwest_middleware::ClientWithMiddleware;
use tracing::Span;

/// The client the gateway calls the worker with.
pub fn client() -> ClientWithMiddleware {
    // TODO(step-1): a plain client records no client span and sends no
    // `traceparent`. Add the middleware that does both.
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build()
}

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: &http::HeaderMap) {
    // TODO(step-1): read the caller's context from the headers with the global
    // propagator and make it the parent of `span`.
}
