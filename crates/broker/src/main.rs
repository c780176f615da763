//! `stitch-broker`: a single-node, in-memory, Kafka-compatible broker.
//!
//! It embeds [Tansu](https://github.com/tansu-io/tansu) so that the workshop
//! runs with nothing but cargo. Everything lives in memory: a restart starts
//! from an empty cluster. Topics are never created on demand, so create them
//! (AdminClient `CreateTopics`) before producing.

use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpListener},
    process::ExitCode,
};

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use tansu_broker::{broker::Broker, coordinator::group::administrator::Controller};
use tansu_storage::StorageContainer;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::Instant,
};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use url::Url;
use uuid::Uuid;

/// An in-memory Kafka-compatible broker for the Stitch workshop.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to accept Kafka clients on; it is also the address advertised
    /// in metadata, so clients must be able to reach it as written.
    /// Port 0 picks a free port (logged at startup).
    #[arg(long, default_value = "127.0.0.1:9092", env = "STITCH_BROKER_LISTEN")]
    listen: SocketAddr,

    /// Cluster id reported in metadata responses.
    #[arg(long, default_value = "stitch")]
    cluster_id: String,

    /// Node id of this broker; it leads every partition.
    #[arg(long, default_value_t = 1)]
    node_id: i32,
}

fn main() -> ExitCode {
    let args = Args::parse();

    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // Tansu reports every request at debug and client disconnects at
            // error; warn keeps a workshop run's log readable.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,stitch_broker=info")),
        )
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };

    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let listen = resolve_listen(args.listen)?;

    // Tansu's own `Broker::main` also traps the signals, but it swallows a
    // failed bind (the serving task panics and `main` still returns Ok).
    // Driving `serve` here surfaces its errors and keeps exit codes honest.
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    let url = Url::parse(&format!("tcp://{listen}"))?;
    let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(args.node_id)
        .cluster_id(args.cluster_id.clone())
        .incarnation_id(Uuid::new_v4())
        .advertised_listener(url.clone())
        .listener(url)
        .storage(Url::parse("memory://tansu/")?)
        // Without this Tansu draws progress spinners and clears the terminal.
        .silent(true)
        .build()
        .await
        .map_err(|err| anyhow!("building the Tansu broker: {err}"))?;

    info!(
        %listen,
        cluster_id = %args.cluster_id,
        node_id = args.node_id,
        "serving Kafka from memory",
    );

    tokio::select! {
        served = broker.serve(started) => {
            served.map_err(|err| anyhow!("broker on {listen} stopped: {err}"))?;
        }
        _ = sigterm.recv() => info!("SIGTERM: shutting down"),
        _ = sigint.recv() => info!("SIGINT: shutting down"),
    }
    // Nothing is persisted, so dropping the connection tasks with the
    // runtime is a complete shutdown.
    Ok(())
}

/// Checks that `listen` is free and turns port 0 into a concrete port.
///
/// Tansu binds inside `serve` and cannot report the port it got, yet the
/// advertised address must carry the real port: clients reconnect to the
/// address found in metadata, not to the bootstrap address.
fn resolve_listen(listen: SocketAddr) -> Result<SocketAddr> {
    let probe = TcpListener::bind(listen).map_err(|err| match err.kind() {
        ErrorKind::AddrInUse => anyhow!(
            "{listen} is already in use: another broker (or another program) is listening \
             there. Stop it, or start stitch-broker with --listen on a free port \
             (e.g. --listen 127.0.0.1:0)."
        ),
        _ => anyhow!("cannot listen on {listen}: {err}"),
    })?;
    Ok(probe.local_addr()?)
}
