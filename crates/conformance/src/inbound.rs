//! The server side of the hop: the request span continues the caller's trace
//! with the flow's own code (`solutions/step-01-http/src/http.rs`), so what
//! the suite measures is what the flow ships.

use tracing::Span;

/// The server span of one request to the service.
pub fn request_span(request: &http::Request<axum::body::Body>) -> Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        otel.kind = "server",
        http.request.method = %request.method(),
    );
    // As the flow's servers do: what opentelemetry-http's HeaderExtractor
    // would hide, shown to the propagator.
    step_01_http_solution::http::continue_trace(
        &span,
        &stitch_telemetry::w3c::http_fields::readable(request.headers()),
    );
    span
}
