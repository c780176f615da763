//! Tracing and OpenTelemetry set-up shared by every Stitch service.
//!
//! Everything that is NOT a propagation lesson lives here, written once: the
//! OTLP exporter, the batch processor, the resource (`service.name`), the global
//! W3C propagator (strict: [`w3c::W3cPropagator`]), and a shutdown that really
//! flushes. The boundaries where
//! lineage is born live in the step crates.

mod export_counts;
#[cfg(feature = "testing")]
pub mod testing;
pub mod w3c;

pub use export_counts::ExportCounts;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Default log filter. Note what it does NOT say: `reqwest=off` or `tower=off`
/// would also silence `reqwest_tracing`/`tower_http` (directives match by target
/// prefix), and the client span would vanish from every trace.
pub const DEFAULT_FILTER: &str = "info";

/// How often the batch processor exports. The SDK default is 5 s, which would
/// dominate the time a request needs to become a connected trace in lineage.
pub const EXPORT_DELAY: Duration = Duration::from_millis(200);

/// Options of one service process.
#[derive(Clone, Debug)]
pub struct Options {
    /// `service.name` of every span this process emits.
    pub service: String,
    /// OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: String,
    /// An `EnvFilter` directive string; `RUST_LOG` wins when set.
    pub filter: String,
    /// Extra resource attributes, e.g. which step produced the spans.
    pub resource: Vec<(String, String)>,
    /// Installs the global W3C propagator, [`w3c::W3cPropagator`]. Every
    /// service sets it; only `traps/no-propagator` clears it, to show what
    /// its absence does.
    pub install_propagator: bool,
    /// How often the batch processor exports: [`EXPORT_DELAY`] in the
    /// services. `None` keeps the SDK's default (5 s, or
    /// `OTEL_BSP_SCHEDULE_DELAY`), as `traps/no-shutdown` does to show what a
    /// short-lived job that never shuts down loses.
    pub export_delay: Option<Duration>,
    /// Whether spans become OpenTelemetry spans and are exported. Off, the
    /// process keeps its `tracing` spans and logs but has no OpenTelemetry
    /// layer, processor or exporter: what the soak compares against to
    /// measure what tracing costs.
    pub tracing: Tracing,
    /// Spans the batch processor holds between exports before it drops
    /// new ones: [`MAX_QUEUE_SIZE`] in the services.
    pub max_queue_size: usize,
}

/// OpenTelemetry on or off in a service, or on with one of the cuts of
/// "What tracing costs" undone, so that `cargo xtask overhead --cuts` can
/// measure what each cut saves on the same binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Tracing {
    #[default]
    On,
    Off,
    /// On, with the span counter as a second processor beside the batch
    /// processor (the SDK then copies every ended span once per processor).
    TwoProcessors,
    /// On, with `tracing-opentelemetry`'s default layer (code location,
    /// thread, target, busy and idle times on every span).
    DefaultLayer,
}

impl Tracing {
    /// The value of `--tracing`.
    pub fn name(self) -> &'static str {
        match self {
            Tracing::On => "on",
            Tracing::Off => "off",
            Tracing::TwoProcessors => "two-processors",
            Tracing::DefaultLayer => "default-layer",
        }
    }

    /// Whether spans are exported.
    pub fn exports(self) -> bool {
        self != Tracing::Off
    }
}

/// The batch processor's queue: spans that ended and wait for the next
/// export. The SDK's 2048 is about 2 s of the worker's spans at 300
/// requests/s; past it, spans are dropped. The soak's saturation scenario
/// measures where that starts.
pub const MAX_QUEUE_SIZE: usize = 2048;

/// A running telemetry pipeline. Call [`Telemetry::shutdown`] before the process
/// exits: a provider that is never shut down loses its last batch.
#[must_use = "call shutdown() before exit or the last batch of spans is lost"]
pub struct Telemetry {
    /// `None` with [`Tracing::Off`].
    provider: Option<SdkTracerProvider>,
    service: String,
}

/// Installs the global propagator (unless [`Options::install_propagator`] is
/// false), the OTLP exporter and the tracing subscriber.
///
/// Must run inside a tokio runtime: the tonic channel spawns its worker there.
pub fn init(options: &Options) -> anyhow::Result<Telemetry> {
    // ANCHOR: propagator
    // Without a global propagator, every inject/extract in the workshop is a
    // silent no-op: the tracing layer does not install one. This one is
    // OpenTelemetry's W3C propagator behind a validator of the spec's rules.
    if options.install_propagator {
        global::set_text_map_propagator(w3c::W3cPropagator::new());
    }
    // ANCHOR_END: propagator

    if options.tracing == Tracing::Off {
        tracing_subscriber::registry()
            .with(env_filter(&options.filter)?)
            .with(log_layer(tracing_subscriber::filter::LevelFilter::INFO))
            .try_init()
            .context("a global tracing subscriber is already installed")?;
        return Ok(Telemetry { provider: None, service: options.service.clone() });
    }

    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&options.otlp_endpoint)
        .with_timeout(Duration::from_secs(3))
        .build()
        .with_context(|| format!("building the OTLP exporter for {}", options.otlp_endpoint))?;
    let batch = match options.export_delay {
        Some(delay) => BatchConfigBuilder::default().with_scheduled_delay(delay),
        None => BatchConfigBuilder::default(),
    };
    let batch = batch.with_max_queue_size(options.max_queue_size);
    let processor =
        BatchSpanProcessor::builder(export_counts::CountingExporter(exporter)).with_batch_config(batch.build()).build();
    let mut resource = Resource::builder().with_service_name(options.service.clone());
    for (key, value) in &options.resource {
        resource = resource.with_attribute(opentelemetry::KeyValue::new(key.clone(), value.clone()));
    }
    let builder = SdkTracerProvider::builder();
    let builder = match options.tracing {
        Tracing::TwoProcessors => {
            builder.with_span_processor(export_counts::EndedCounter).with_span_processor(processor)
        }
        _ => builder.with_span_processor(export_counts::CountingProcessor(processor)),
    };
    let provider = builder.with_resource(resource.build()).build();
    let tracer = provider.tracer(options.service.clone());

    let layer = match options.tracing {
        Tracing::DefaultLayer => tracing_opentelemetry::layer().with_tracer(tracer),
        _ => otel_layer(tracer),
    };
    install(layer, &options.filter, tracing_subscriber::filter::LevelFilter::INFO)?;
    Ok(Telemetry { provider: Some(provider), service: options.service.clone() })
}

/// The global subscriber every Stitch process runs: `filter` (or `RUST_LOG`)
/// decides which spans exist, the OpenTelemetry layer turns them into
/// `tracer`'s spans, and log lines at `log_level` or above go to stderr.
pub fn install_subscriber(
    tracer: SdkTracer,
    filter: &str,
    log_level: tracing_subscriber::filter::LevelFilter,
) -> anyhow::Result<()> {
    install(otel_layer(tracer), filter, log_level)
}

/// The OpenTelemetry layer, over the filter, over the registry.
type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>,
    SdkTracer,
>;

fn install(otel: OtelLayer, filter: &str, log_level: tracing_subscriber::filter::LevelFilter) -> anyhow::Result<()> {
    tracing_subscriber::registry()
        .with(env_filter(filter)?)
        .with(otel)
        .with(log_layer(log_level))
        .try_init()
        .context("a global tracing subscriber is already installed")
}

// ANCHOR: layer
/// The layer that turns `tracing` spans into OpenTelemetry spans, recording
/// what the spans' own fields say and nothing more. Its defaults add, to
/// every span, the source location (`code.*`, three attributes), the thread
/// (`thread.id`, `thread.name`), the target, and busy and idle times, which
/// read the clock on every enter and exit: work and bytes for each span that
/// no view of the workshop reads.
fn otel_layer(tracer: SdkTracer) -> OtelLayer {
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
}
// ANCHOR_END: layer

/// `RUST_LOG` when set, else `filter`.
fn env_filter(filter: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .with_context(|| format!("invalid log filter {filter:?}"))
}

/// Log lines at `log_level` or above, on stderr, and the propagator's
/// debug lines (why a received context was refused) when the filter lets
/// them be (`RUST_LOG=info,stitch_telemetry=debug`).
fn log_layer<S>(log_level: tracing_subscriber::filter::LevelFilter) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let shown = tracing_subscriber::filter::Targets::new()
        .with_default(log_level)
        .with_target("stitch_telemetry::w3c", tracing_subscriber::filter::LevelFilter::DEBUG.max(log_level));
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour for a terminal, plain text for the log files checks keep.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(shown)
}

impl Telemetry {
    /// Flushes and stops the exporter, then says what became of every span
    /// this process ended.
    ///
    /// The SDK's shutdown blocks on the export; doing it on a runtime worker
    /// would starve the tonic channel it waits for, so it runs on the blocking pool.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        let outcome = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("telemetry shutdown: {err}"),
            Err(err) => eprintln!("telemetry shutdown task: {err}"),
        }
        let counts = ExportCounts::now();
        eprintln!(
            "{}: {} spans ended, {} exported, {} failed to export, {} dropped before export",
            self.service,
            counts.ended,
            counts.exported,
            counts.failed,
            counts.dropped()
        );
    }
}

#[cfg(test)]
mod tracing_tests {
    use clap::ValueEnum as _;

    use super::Tracing;

    #[test]
    fn each_variant_is_named_as_the_services_flag_takes_it() {
        for variant in Tracing::value_variants() {
            let value = variant.to_possible_value().expect("no variant is skipped");
            assert_eq!(value.get_name(), variant.name());
            assert_eq!(Tracing::from_str(variant.name(), false), Ok(*variant));
        }
        let exporting: Vec<&str> = Tracing::value_variants().iter().filter(|v| v.exports()).map(|v| v.name()).collect();
        assert_eq!(exporting, ["on", "two-processors", "default-layer"]);
    }
}
