//! `stitch-broker`: a single-node Kafka-compatible broker that keeps its
//! data in one SQLite file.
//!
//! It embeds [Tansu](https://github.com/tansu-io/tansu) so that the workshop
//! runs with nothing but cargo. Topics (with their ids), messages, consumer
//! groups and committed offsets live in `DATA/tansu.db`, so a broker started
//! again on the same directory carries on where the last one stopped, as
//! Apache Kafka does on its log directory. Topics are never created on
//! demand, so create them (AdminClient `CreateTopics`) before producing.

use std::{
    fs,
    io::ErrorKind,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
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

/// A Kafka-compatible broker for the Stitch workshop, its data in SQLite.
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

    /// Directory of the broker's data (`tansu.db` and SQLite's journal),
    /// created if missing. A broker started on the directory another one
    /// left keeps its topics, messages and committed offsets; an empty
    /// directory starts an empty cluster.
    #[arg(long, env = "STITCH_BROKER_DATA")]
    data: PathBuf,
}

/// The SQLite file under `--data`.
const DATABASE: &str = "tansu.db";

fn main() -> ExitCode {
    let args = Args::parse();

    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // Tansu reports every request at debug and client disconnects at
            // error; warn keeps a workshop run's log readable.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,stitch_broker=info")),
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

    let (database, storage) = open_data(&args.data)?;
    let mut broker = build(&args, listen, storage).await?;
    add_missing_indexes(&database).await?;

    info!(
        %listen,
        cluster_id = %args.cluster_id,
        node_id = args.node_id,
        data = %database.display(),
        "serving Kafka from SQLite",
    );

    tokio::select! {
        served = broker.serve(started) => {
            served.map_err(|err| anyhow!("broker on {listen} stopped: {err}"))?;
        }
        _ = sigterm.recv() => info!("SIGTERM: shutting down"),
        _ = sigint.recv() => info!("SIGINT: shutting down"),
    }
    // Every request Tansu answered is a committed SQLite transaction, so
    // dropping the connection tasks with the runtime loses nothing that was
    // acknowledged.
    Ok(())
}

/// Tansu on `listen`, its data in `storage`; building it creates the
/// database's tables when they are missing.
async fn build(args: &Args, listen: SocketAddr, storage: Url) -> Result<TansuBroker> {
    let url = Url::parse(&format!("tcp://{listen}"))?;
    Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(args.node_id)
        .cluster_id(args.cluster_id.clone())
        .incarnation_id(Uuid::new_v4())
        .advertised_listener(url.clone())
        .listener(url)
        .storage(storage)
        // Without this Tansu draws progress spinners and clears the terminal.
        .silent(true)
        .build()
        .await
        .map_err(|err| anyhow!("building the Tansu broker: {err}"))
}

type TansuBroker = Broker<Controller<StorageContainer>, StorageContainer>;

/// Creates the data directory and returns the SQLite file's path and the
/// storage URL that names it.
///
/// Tansu resolves a `sqlite://` URL's path against the working directory,
/// whatever it starts with, so the process moves into the data directory
/// and names the file relative to it.
fn open_data(data: &Path) -> Result<(PathBuf, Url)> {
    fs::create_dir_all(data).with_context(|| format!("creating the data directory {}", data.display()))?;
    let data = fs::canonicalize(data).with_context(|| format!("resolving the data directory {}", data.display()))?;
    std::env::set_current_dir(&data).with_context(|| format!("entering the data directory {}", data.display()))?;
    Ok((data.join(DATABASE), Url::parse(&format!("sqlite:///{DATABASE}"))?))
}

/// Indexes the headers by their record.
///
/// Tansu 0.6's SQLite schema (`040-header.sql`) gives the `header` table no
/// index, and a fetch looks up each record's headers by its topic partition
/// and offset (`header_fetch.sql`): every record read scans every header
/// ever stored. With the flow's three headers a message, produce-and-fetch
/// throughput fell as the topic grew, to 67 messages/s over 40,000 messages;
/// the broker stopped answering within the clients' timeouts. Runs after
/// Tansu created its tables; a no-op on a database that has the index.
async fn add_missing_indexes(database: &Path) -> Result<()> {
    let db = libsql::Builder::new_local(database)
        .build()
        .await
        .with_context(|| format!("opening {}", database.display()))?;
    db.connect()?
        .execute("create index if not exists header_by_record on header (topition, offset_id)", ())
        .await
        .with_context(|| format!("indexing the headers in {}", database.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookup Tansu 0.6 runs for each record a fetch returns
    /// (`header_fetch.sql` in tansu-storage), as SQLite plans it.
    async fn header_lookup_plan(database: &Path) -> Result<String> {
        let db = libsql::Builder::new_local(database).build().await?;
        let mut rows = db
            .connect()?
            .query(
                "explain query plan select h.k, h.v from header h \
                 join record r on h.topition = r.topition and h.offset_id = r.offset_id \
                 join topition tp on tp.id = r.topition join topic t on tp.topic = t.id \
                 join cluster c on t.cluster = c.id \
                 where c.name = ?1 and t.name = ?2 and tp.partition = ?3 and r.offset_id = ?4",
                ("stitch", "orders", 0, 0),
            )
            .await?;
        let mut plan = String::new();
        while let Some(row) = rows.next().await? {
            plan.push_str(&row.get::<String>(3)?);
            plan.push('\n');
        }
        Ok(plan)
    }

    #[tokio::test]
    async fn a_fetch_finds_each_records_headers_by_index() -> Result<()> {
        let data = std::env::temp_dir().join(format!("stitch-broker-index-{}", std::process::id()));
        let _ = fs::remove_dir_all(&data);
        let args = Args::parse_from(["stitch-broker", "--data", &data.display().to_string()]);
        let (database, storage) = open_data(&args.data)?;
        build(&args, "127.0.0.1:0".parse()?, storage).await?;

        let before = header_lookup_plan(&database).await?;
        assert!(before.contains("SCAN h"), "Tansu's schema has a header index of its own now:\n{before}");
        add_missing_indexes(&database).await?;
        let after = header_lookup_plan(&database).await?;
        assert!(after.contains("USING INDEX header_by_record"), "{after}");
        // A second start finds the index there.
        add_missing_indexes(&database).await?;
        fs::remove_dir_all(&data)?;
        Ok(())
    }
}
