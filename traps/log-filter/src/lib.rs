//! Silent failure 3: a log filter that hides the HTTP client span.
//!
//! Nothing to build: the trap is the final solution itself, started with a
//! filter meant to quiet the HTTP client's logs,
//!
//! ```sh
//! cargo run -p step-03-kafka-solution -- gateway --log info,reqwest=off
//! ```
//!
//! `EnvFilter` directives match targets by prefix, so `reqwest=off` also
//! disables `reqwest_tracing`, whose middleware creates the CLIENT span. The
//! filter sits in front of every layer: the span never reaches the
//! OpenTelemetry layer, and the middleware injects the current context
//! instead, the gateway's server span. Every request is one trace of five
//! spans instead of six, no span is an orphan, and the parent chain skips the
//! hop. The tests below show both filters on one call.

/// The filter of the trap.
pub const FILTER: &str = "info,reqwest=off";

/// What was meant: quiet `reqwest`, keep `reqwest_tracing` (the more specific
/// directive wins).
pub const MEANT: &str = "info,reqwest=warn,reqwest_tracing=info";

#[cfg(test)]
mod tests {
    use axum::Json;
    use axum::routing::post;
    use opentelemetry::global;
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// One call through the step 1 solution's client, inside a server span,
    /// under `filter` set up as `stitch_telemetry` sets it up. Returns the
    /// server span's id and the parent id the `traceparent` carried.
    fn call_with(filter: &str) -> (String, String) {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(filter))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("addr");
                let echo = axum::Router::new().route(
                    "/work",
                    post(|headers: http::HeaderMap| async move {
                        Json(headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned))
                    }),
                );
                tokio::spawn(async move { axum::serve(listener, echo).await });
                let server = tracing::info_span!("request", otel.kind = "server");
                let server_id = server.context().span().span_context().span_id().to_string();
                let traceparent: Option<String> = async {
                    step_01_http_solution::http::client()
                        .post(format!("http://{addr}/work"))
                        .send()
                        .await
                        .expect("the echo server answers")
                        .json()
                        .await
                        .expect("a JSON answer")
                }
                .instrument(server)
                .await;
                let traceparent = traceparent.expect("a traceparent was injected");
                let parent_id = traceparent.split('-').nth(2).expect("version-trace-parent-flags").to_owned();
                (server_id, parent_id)
            })
        })
    }

    #[test]
    fn reqwest_off_hides_the_client_span_and_the_hop_skips_it() {
        let (server, parent) = call_with(FILTER);
        assert_eq!(parent, server, "the worker's parent is the gateway's server span");

        let (server, parent) = call_with(MEANT);
        assert_ne!(parent, server, "the worker's parent is the client span");
    }
}
