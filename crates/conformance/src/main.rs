//! `cargo run -p stitch-conformance -- --port 8181`: the W3C Trace Context
//! test service on 127.0.0.1.

use clap::Parser;

/// The W3C Trace Context test service (github.com/w3c/trace-context, `test/`).
#[derive(Debug, Parser)]
#[command(name = "stitch-conformance")]
struct Args {
    /// Port on 127.0.0.1; the suite's endpoint is http://127.0.0.1:PORT/test.
    #[arg(long, default_value_t = 8181)]
    port: u16,
    /// The W3C propagator to measure: the project's, or the SDK's alone.
    #[arg(long, value_enum, env = stitch_conformance::telemetry::PROPAGATOR_ENV, default_value = "project")]
    propagator: stitch_conformance::telemetry::Propagator,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _provider = stitch_conformance::telemetry::install(args.propagator)?;
    let listener = stitch_conformance::listen::bind(args.port).await?;
    eprintln!(
        "listening on http://{}{} ({})",
        listener.local_addr()?,
        stitch_conformance::service::PATH,
        args.propagator.describe()
    );
    stitch_conformance::service::serve(listener, async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            eprintln!("cannot wait for Ctrl-C: {err}");
        }
    })
    .await
}
