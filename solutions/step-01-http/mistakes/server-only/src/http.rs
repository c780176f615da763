//! The HTTP hop: the gateway calls the worker.
//!
//! A wrong fix: the server side only. The worker continues a caller's
//! context; the gateway's plain client sends none and records no span.

use opentelemetry::global;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use reqwest_middleware::ClientWithMiddleware;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The client the gateway calls the worker with.
pub fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build()
}

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if !parent.span().span_context().is_valid() {
        return;
    }
    if let Err(err) = span.set_parent(parent) {
        tracing::warn!(%err, "cannot continue the caller's trace");
    }
}
