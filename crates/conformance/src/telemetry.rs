//! The global propagator and tracer, as `stitch_telemetry::init` installs
//! them, minus the OTLP exporter: this service's spans matter only for the ids
//! they give the headers it sends.

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Log filter of the service: `info` keeps the client spans of
/// `reqwest_tracing`, which give every outgoing call its own parent-id.
pub const FILTER: &str = "info";

/// Installs the W3C propagator and a global subscriber whose OpenTelemetry
/// layer turns `tracing` spans into SDK spans. Keep the provider for the life
/// of the process.
pub fn install() -> anyhow::Result<SdkTracerProvider> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    // The SDK's defaults are the flow's: random ids, and a parent-based
    // sampler that follows the caller's sampled flag.
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("stitch-conformance");
    stitch_telemetry::install_subscriber(tracer, FILTER, tracing_subscriber::filter::LevelFilter::WARN)?;
    Ok(provider)
}
