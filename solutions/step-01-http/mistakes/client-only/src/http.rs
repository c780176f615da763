//! The HTTP hop: the gateway calls the worker.
//!
//! A wrong fix: the client side only. The gateway's calls are CLIENT spans and
//! carry `traceparent`; the worker reads nothing.

use reqwest_middleware::ClientWithMiddleware;
use tracing::Span;

/// The client the gateway calls the worker with.
pub fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .build()
}

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(_span: &Span, _headers: &http::HeaderMap) {}
