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

/// Chooses the propagator in the tests and the service alike.
pub const PROPAGATOR_ENV: &str = "STITCH_CONFORMANCE_PROPAGATOR";

/// Which W3C propagator the service runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Propagator {
    /// What every Stitch service installs: `stitch_telemetry::w3c::W3cPropagator`.
    #[default]
    Project,
    /// OpenTelemetry's `TraceContextPropagator` alone, as the SDK ships it.
    Sdk,
}

impl Propagator {
    /// What the service's first line says it runs.
    pub fn describe(self) -> &'static str {
        match self {
            Propagator::Project => "the project's propagator",
            Propagator::Sdk => "OpenTelemetry's TraceContextPropagator alone",
        }
    }

    /// [`PROPAGATOR_ENV`]: `project` (or unset) or `sdk`; anything else is an error.
    pub fn from_env() -> anyhow::Result<Propagator> {
        match std::env::var(PROPAGATOR_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Propagator::default()),
            Ok(value) => <Propagator as clap::ValueEnum>::from_str(&value, false)
                .map_err(|_| anyhow::anyhow!("{PROPAGATOR_ENV}={value:?}: expected `project` or `sdk`")),
            Err(err) => anyhow::bail!("{PROPAGATOR_ENV}: {err}"),
        }
    }
}

/// Installs `propagator` and a global subscriber whose OpenTelemetry layer
/// turns `tracing` spans into SDK spans. Keep the provider for the life of
/// the process.
pub fn install(propagator: Propagator) -> anyhow::Result<SdkTracerProvider> {
    match propagator {
        Propagator::Project => global::set_text_map_propagator(stitch_telemetry::w3c::W3cPropagator::new()),
        Propagator::Sdk => global::set_text_map_propagator(TraceContextPropagator::new()),
    }
    // The SDK's defaults are the flow's: random ids, and a parent-based
    // sampler that follows the caller's sampled flag.
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("stitch-conformance");
    stitch_telemetry::install_subscriber(tracer, FILTER, tracing_subscriber::filter::LevelFilter::WARN)?;
    Ok(provider)
}
