//! The HTTP hop: the step 1 solution's client, and a server side that sets the
//! parent one step too late.

use opentelemetry::global;
use opentelemetry_http::HeaderExtractor;
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetrySpanExt as _, SetParentError};

pub use step_01_http_solution::http::client;

/// Called for each request the worker receives, before its span is entered.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    // Logged, never unwrapped: a propagation bug must not fail the order.
    if let Err(err) = set_parent_inside(span, headers) {
        tracing::warn!(%err, "cannot continue the caller's trace");
    }
}

/// The mistake: the parent is set on `Span::current()`, which is the request's
/// span only once it has been entered, and entering it started it.
pub fn set_parent_inside(span: &Span, headers: &http::HeaderMap) -> Result<(), SetParentError> {
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    span.in_scope(|| Span::current().set_parent(parent))
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn caller_headers() -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let traceparent = format!("00-{CALLER_TRACE}-00f067aa0ba902b7-01");
        headers.insert("traceparent", traceparent.parse().expect("a valid header value"));
        headers
    }

    /// Runs `test` under a subscriber like the services' (`filter` in front of
    /// the OpenTelemetry layer) with the W3C propagator installed.
    fn with_telemetry<T>(filter: tracing_subscriber::filter::LevelFilter, test: impl FnOnce() -> T) -> T {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, test)
    }

    fn trace_of(span: &Span) -> String {
        span.context().span().span_context().trace_id().to_string()
    }

    #[test]
    fn entering_the_span_first_makes_set_parent_fail_and_the_span_a_root() {
        with_telemetry(tracing_subscriber::filter::LevelFilter::INFO, || {
            let span = tracing::info_span!("request", otel.kind = "server");
            let result = set_parent_inside(&span, &caller_headers());
            assert!(matches!(result, Err(SetParentError::AlreadyStarted)), "got {result:?}");
            assert_ne!(trace_of(&span), CALLER_TRACE, "the span started a trace of its own");

            // The same span, set up where the step 1 solution does it: before
            // anything enters it.
            let span = tracing::info_span!("request", otel.kind = "server");
            step_01_http_solution::http::continue_trace(&span, &caller_headers());
            assert_eq!(trace_of(&span), CALLER_TRACE);
        });
    }

    #[test]
    fn a_span_the_filter_disabled_has_no_parent_to_set() {
        with_telemetry(tracing_subscriber::filter::LevelFilter::WARN, || {
            let parent =
                global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(&caller_headers())));
            let span = tracing::info_span!("request", otel.kind = "server");
            let result = span.set_parent(parent);
            assert!(matches!(result, Err(SetParentError::SpanDisabled)), "got {result:?}");
        });
    }

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_boundary_logs_the_error_instead_of_failing() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone()));
        let span = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", otel.kind = "server");
            continue_trace(&span, &caller_headers());
            span
        });
        drop(span);
        let log = String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("UTF-8 log");
        assert!(log.contains("WARN"), "{log}");
        assert!(log.contains("cannot continue the caller's trace"), "{log}");
        assert!(log.contains("already been started"), "{log}");
    }
}
