//! Spans captured in memory, for the steps' fast tests: the real SDK and the
//! services' W3C propagator, no exporter process, no collector.

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt as _;

/// The spans this thread's test ends, as the real SDK exports them.
pub struct Capture {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
    _subscriber: DefaultGuard,
}

impl Capture {
    /// Installs the W3C propagator (the same for every test, so installing it
    /// again is harmless) and a subscriber for this thread only, so tests
    /// running side by side never see each other's spans.
    pub fn start() -> Capture {
        global::set_text_map_propagator(crate::w3c::W3cPropagator::new());
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("boundary-test")));
        Capture { exporter, _provider: provider, _subscriber: tracing::subscriber::set_default(subscriber) }
    }

    /// Every span ended so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().expect("the in-memory exporter answers")
    }

    /// The ended spans called `name`.
    pub fn ended(&self, name: &str) -> Vec<SpanData> {
        self.spans().into_iter().filter(|span| span.name == name).collect()
    }

    /// The one ended span called `name`.
    pub fn only(&self, name: &str) -> SpanData {
        let mut found = self.ended(name);
        assert_eq!(found.len(), 1, "expected one ended span called {name:?}, found {}", found.len());
        found.remove(0)
    }
}
