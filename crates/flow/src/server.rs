//! What the flow's HTTP services share: binding a port, stopping on a
//! signal, the server span of each request, and `/metrics`.

use std::net::SocketAddr;

/// Binds a listener with an error that says what to do about a busy port.
pub(crate) async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "{listen} is already in use: stop what listens there (`cargo xtask down`?) or pass --listen"
            )
        } else {
            anyhow::anyhow!("cannot listen on {listen}: {err}")
        }
    })
}

/// Resolves on SIGINT or SIGTERM, whichever comes first.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The span of one inbound HTTP request, named after its route.
pub(crate) fn server_span(request: &http::Request<axum::body::Body>) -> tracing::Span {
    let route =
        request.extensions().get::<axum::extract::MatchedPath>().map_or(request.uri().path(), |path| path.as_str());
    let name = format!("{} {route}", request.method());
    tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        order.id = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    )
}

/// Records the response status on the request span; a 5xx is a failure,
/// shown as the step's `record_failure` boundary shows one.
pub(crate) fn on_response(status: http::StatusCode, span: &tracing::Span, record_failure: fn(&tracing::Span, &str)) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        record_failure(span, &format!("answered {status}"));
    }
}

/// `GET /metrics`: what became of the spans this process ended (exported,
/// failed, dropped before export), for the checks and the soak to read.
pub(crate) fn metrics_route<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                stitch_telemetry::ExportCounts::now().exposition(),
            )
        }),
    )
}
