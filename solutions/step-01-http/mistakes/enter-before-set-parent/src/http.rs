//! The HTTP hop: the gateway calls the worker.
//!
//! A wrong fix: both sides, but the worker enters its span before setting
//! its parent. Entering starts the OpenTelemetry span; `set_parent` then
//! answers `AlreadyStarted`, which is logged, and the span stays a root.

use opentelemetry::global;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use reqwest_middleware::ClientWithMiddleware;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The client the gateway calls the worker with.
pub fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .build()
}

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    let _entered = span.enter();
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if !parent.span().span_context().is_valid() {
        return;
    }
    if let Err(err) = span.set_parent(parent) {
        tracing::warn!(%err, "cannot continue the caller's trace");
    }
}
