//! The HTTP hop: the gateway calls the worker.

use opentelemetry::global;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use reqwest_middleware::ClientWithMiddleware;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The client the gateway calls the worker with.
pub fn client() -> ClientWithMiddleware {
    // ANCHOR: client
    // The middleware opens a CLIENT span per request and injects its context
    // as `traceparent` with the global propagator.
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .build()
    // ANCHOR_END: client
}

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    // ANCHOR: extract
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if !parent.span().span_context().is_valid() {
        if let Some(value) = headers.get("traceparent") {
            // A malformed header is not an error for the request, but the trace
            // breaks here: say so where someone will look.
            tracing::warn!(?value, "ignoring a malformed traceparent; this request starts a new trace");
        }
        return;
    }
    // Fails if the span was already entered, or is disabled by a filter: a
    // propagation bug to report, never a reason to fail the request.
    if let Err(err) = span.set_parent(parent) {
        tracing::warn!(%err, "cannot continue the caller's trace");
    }
    // ANCHOR_END: extract
}
