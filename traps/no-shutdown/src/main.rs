//! Silent failure 5: a provider that is never shut down.
//!
//! A short-lived job, set up with the SDK's default batch delay (5 s): it
//! imports N orders, one span each, and exits. Without `--shutdown` it returns
//! from `main` with the provider alive, as a job that forgot
//! `Telemetry::shutdown` does: the batch processor had not exported yet, and
//! every span is lost. With `--shutdown` the same job flushes them all.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

/// Service name of the job's spans.
const SERVICE: &str = "orders-job";

#[derive(Parser)]
#[command(version, about = "A short-lived job: N spans, then exit, with or without shutting the provider down")]
struct Cli {
    /// Spans (imported orders) the job emits.
    #[arg(long, default_value_t = 50)]
    spans: usize,
    /// Shut the provider down before exiting, as every job should.
    #[arg(long)]
    shutdown: bool,
    /// OTLP/gRPC endpoint the spans are exported to (lineage).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", default_value = "http://127.0.0.1:4317")]
    otlp_endpoint: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("trap-no-shutdown: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let telemetry = stitch_telemetry::init(&stitch_telemetry::Options {
            service: SERVICE.to_owned(),
            otlp_endpoint: cli.otlp_endpoint.clone(),
            filter: stitch_telemetry::DEFAULT_FILTER.to_owned(),
            resource: vec![("stitch.step".to_owned(), env!("CARGO_PKG_NAME").to_owned())],
            install_propagator: true,
            // The SDK's default: a job rarely thinks about the batch delay.
            export_delay: None,
            tracing: stitch_telemetry::Tracing::On,
            max_queue_size: stitch_telemetry::MAX_QUEUE_SIZE,
        })?;
        let run = std::process::id();
        for n in 1..=cli.spans {
            let order_id = format!("imp-{run:08x}-{n:06}");
            tracing::info_span!("import order", otel.kind = "internal", order.id = %order_id).in_scope(|| {
                tracing::debug!(%order_id, "imported");
            });
        }
        if cli.shutdown {
            telemetry.shutdown().await;
        }
        // Otherwise `telemetry` is only dropped here: the subscriber still holds
        // the provider, nothing flushes it, and the process exits.
        tracing::info!(spans = cli.spans, shutdown = cli.shutdown, "job done");
        anyhow::Ok(())
    })
}
