//! The server side of the hop: the request span continues the caller's trace,
//! exactly as the flow's worker does (`solutions/step-01-http/src/http.rs`).

use opentelemetry::global;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The server span of one request to the service.
pub fn request_span(request: &http::Request<axum::body::Body>) -> Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        otel.kind = "server",
        http.request.method = %request.method(),
    );
    continue_trace(&span, request.headers());
    span
}

/// Makes the caller's context, as the global propagator reads it, the parent
/// of `span`; a span without a valid parent starts a new trace.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if !parent.span().span_context().is_valid() {
        if let Some(value) = headers.get("traceparent") {
            tracing::warn!(?value, "ignoring a traceparent the propagator rejects; this request starts a new trace");
        }
        return;
    }
    if let Err(err) = span.set_parent(parent) {
        tracing::warn!(%err, "cannot continue the caller's trace");
    }
}
