//! Starting and stopping the Kafka broker a workshop run talks to.
//!
//! Two brokers speak the same protocol on `127.0.0.1`:
//!
//! - [`BrokerKind::Tansu`]: `stitch-broker`, Tansu built by cargo from
//!   `crates/broker`, its data in one SQLite file in the run's directory.
//!   Starts in under a second, needs nothing else.
//! - [`BrokerKind::Apache`]: Apache Kafka in KRaft mode, one JVM, its jars
//!   resolved from Maven Central once (see [`install_apache_kafka`]) and its
//!   configuration taken from `infra/kafka/`.
//!
//! Neither creates topics on demand: call [`ensure_topic`] before producing.

use std::{
    fs,
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

mod apache;

pub use self::apache::require_tool;
pub use self::apache::{APACHE_KAFKA_VERSION, default_cache_dir, infra_dir, install_apache_kafka};
use self::apache::{APACHE_READY_TIMEOUT, apache_command, require_java};
use crate::process::{Child, free_port, log_tail, poll, spinner};
use anyhow::{Context, Result, anyhow, bail};
use duct::{Expression, cmd};
use rdkafka::{
    ClientConfig, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    types::RDKafkaErrorCode,
};

/// The topic the flow's worker publishes to and its consumer reads, and its
/// partitions: the flow's defaults (`crates/flow/src/kafka.rs`).
pub const FLOW_TOPIC: &str = "orders";
pub const FLOW_PARTITIONS: i32 = 2;

/// The one address every broker listens on and advertises.
const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

const TANSU_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Kafka flushes and closes its logs on SIGTERM, which takes a couple of
/// seconds on a single node.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Lines of the broker's log quoted in an error.
const LOG_LINES: usize = 30;

/// Which broker implementation to run; `--kafka tansu` or `--kafka apache`
/// on the command line, the same name in a run's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, strum::Display, strum::EnumString)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum BrokerKind {
    /// `stitch-broker`: Tansu embedded, its data in SQLite.
    Tansu,
    /// Apache Kafka in KRaft combined mode, on the local JVM.
    Apache,
}

impl BrokerKind {
    /// Human-readable name, as shown while the broker starts.
    pub fn description(self) -> String {
        match self {
            BrokerKind::Tansu => "Tansu (stitch-broker, SQLite)".to_owned(),
            BrokerKind::Apache => format!("Apache Kafka {APACHE_KAFKA_VERSION} (KRaft)"),
        }
    }
}

/// How to start a [`Broker`].
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// Which broker to run.
    pub kind: BrokerKind,
    /// Port for Kafka clients on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Per-run scratch directory: the broker's log and data (and Apache
    /// Kafka's generated configuration). Created if missing.
    pub work_dir: PathBuf,
    /// The built `stitch-broker` binary (used for [`BrokerKind::Tansu`]).
    pub tansu_binary: PathBuf,
    /// Where the Apache Kafka jars are cached across runs, e.g.
    /// [`default_cache_dir`] (used for [`BrokerKind::Apache`]).
    pub cache_dir: PathBuf,
}

impl BrokerOptions {
    /// `kind` on `port` (0: a free one), with its scratch directory under
    /// `logs`, the built `stitch-broker` and the usual jar cache.
    pub fn in_logs(kind: BrokerKind, port: u16, logs: &std::path::Path) -> BrokerOptions {
        BrokerOptions {
            kind,
            port,
            work_dir: logs.join("kafka"),
            tansu_binary: crate::process::binary("stitch-broker"),
            cache_dir: default_cache_dir(),
        }
    }
}

/// A running broker process. Dropping it kills the process.
#[derive(Debug)]
pub struct Broker {
    /// What it was started with, its port filled in: a restart reuses both.
    opts: BrokerOptions,
    bootstrap: String,
    process: Child,
    /// Times [`Broker::restart`] has run: each restart logs to a file of its own.
    restarts: u32,
}

/// What a broker start does to the data it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Data {
    /// A new cluster: the data directory emptied (Tansu) or formatted
    /// afresh (Apache Kafka).
    Fresh,
    /// Whatever the last process left on disk: topics with their ids,
    /// messages, committed offsets.
    Kept,
}

impl Broker {
    /// Starts a broker and returns once it answers Kafka metadata requests
    /// listing itself and its group coordinator is up, so topics can be
    /// created and consumer groups joined right away.
    ///
    /// The process's stdout and stderr go to [`Broker::log_path`] in
    /// `opts.work_dir`; errors quote the end of that log.
    pub fn start(opts: &BrokerOptions) -> Result<Broker> {
        fs::create_dir_all(&opts.work_dir).with_context(|| format!("creating work dir {}", opts.work_dir.display()))?;
        let port = match opts.port {
            0 => free_port()?,
            port => {
                ensure_port_free(port)?;
                port
            }
        };
        let opts = BrokerOptions { port, ..opts.clone() };
        let log_path = opts.work_dir.join(format!("kafka-{}.log", opts.kind));
        let process = spawn(&opts, Data::Fresh, &log_path)?;
        Ok(Broker { bootstrap: format!("{HOST}:{port}"), opts, process, restarts: 0 })
    }

    /// Stops the broker as [`Broker::stop`] does and starts it again on the
    /// same port and data, returning once it is ready: both brokers come
    /// back with their topics (ids unchanged), messages and committed
    /// offsets.
    pub fn restart(&mut self) -> Result<()> {
        self.process.stop(STOP_GRACE);
        self.restarts += 1;
        let log_path = self.opts.work_dir.join(format!("kafka-{}.restart-{}.log", self.opts.kind, self.restarts));
        self.process = spawn(&self.opts, Data::Kept, &log_path)?;
        Ok(())
    }

    /// The `bootstrap.servers` value for clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Which broker this is.
    pub fn kind(&self) -> BrokerKind {
        self.opts.kind
    }

    /// Fails, quoting the end of the broker's log, if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.process.check_alive()
    }

    /// The file that receives the broker's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        self.process.log()
    }

    /// Process id of the broker (the JVM for Apache Kafka).
    pub fn pid(&self) -> u32 {
        self.process.pids()[0]
    }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still running after
    /// a few seconds. Returns once the process has been reaped.
    pub fn stop(mut self) {
        self.process.stop(STOP_GRACE);
    }

    /// Leaves the broker running after this value is gone (for `cargo xtask
    /// up`); returns its pids, which whoever stops it later needs.
    pub fn detach(self) -> Vec<u32> {
        self.process.detach()
    }
}

/// Starts the broker process for `opts` (its port chosen) and waits until
/// it is ready; on error the process is killed.
fn spawn(opts: &BrokerOptions, data: Data, log_path: &Path) -> Result<Child> {
    let (expression, timeout) = match opts.kind {
        BrokerKind::Tansu => (tansu_command(opts, &format!("{HOST}:{}", opts.port), data)?, TANSU_READY_TIMEOUT),
        BrokerKind::Apache => {
            require_java()?;
            let libs = install_apache_kafka(&opts.cache_dir, &infra_dir())?;
            let expression = apache_command(opts, &libs, data)?;
            (expression, APACHE_READY_TIMEOUT)
        }
    };
    let spinner = spinner(format!("starting {}…", opts.kind.description()));
    let started = Instant::now();
    let process = Child::start(&format!("the {} broker", opts.kind), expression, log_path)?;
    let ready = wait_ready(opts.kind, &process, opts.port, started + timeout, timeout);
    spinner.finish_and_clear();
    // On error `process` drops here, which kills it.
    ready.map(|()| process)
}

fn wait_ready(kind: BrokerKind, process: &Child, port: u16, deadline: Instant, timeout: Duration) -> Result<()> {
    let timed_out = |what: &str| {
        anyhow!(
            "the {} broker did not {what} within {timeout:?}; last lines of {}:\n{}",
            kind,
            process.log().display(),
            log_tail(process.log(), LOG_LINES),
        )
    };
    let addr = SocketAddr::from((HOST, port));
    let bootstrap = format!("{HOST}:{port}");

    // Until the port is open a Kafka client would sit in its reconnect
    // backoff; plain connects find the moment sooner.
    let left = || deadline.saturating_duration_since(Instant::now());
    poll(left(), Duration::from_millis(25), || {
        process.check_alive()?;
        anyhow::Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok().map(drop))
    })?
    .ok_or_else(|| timed_out("open its port"))?;

    // An open port is not a working broker: Apache Kafka accepts
    // connections before it has registered itself, and answers metadata
    // with no brokers until then.
    let client: BaseConsumer = probe_config(&bootstrap).create().context("creating a Kafka client")?;
    poll(left(), Duration::from_millis(50), || {
        process.check_alive()?;
        // Until it lists itself, an answer (or its failure) is not ready yet.
        let listed = client
            .fetch_metadata(None, Duration::from_secs(1))
            .is_ok_and(|metadata| metadata.brokers().iter().any(|b| b.port() == i32::from(port)));
        anyhow::Ok(listed.then_some(()))
    })?
    .ok_or_else(|| timed_out("answer a metadata request listing itself"))?;

    // Apache Kafka creates its consumer-offsets topic when the first
    // group request arrives, and answers "not coordinator" for the
    // seconds that takes: the first consumer group of a run would be
    // seconds slower than the rest, and an early offset lookup fails.
    // One offset lookup here pays that while the spinner runs.
    let group_client: BaseConsumer = probe_config(&bootstrap)
        .set("group.id", "stitch-harness-warmup")
        .create()
        .context("creating a Kafka client")?;
    poll(left(), Duration::from_millis(100), || {
        process.check_alive()?;
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition("stitch-harness-warmup", 0);
        // "Not coordinator" until the offsets topic exists: not ready yet.
        anyhow::Ok(group_client.committed_offsets(partitions, Duration::from_secs(2)).ok().map(drop))
    })?
    .ok_or_else(|| timed_out("answer a consumer group request"))
}

/// Creates `topic` with `partitions` partitions (replication factor 1) if it
/// does not exist yet, and returns once the broker's metadata shows every
/// partition with a leader, so that producers need not retry.
///
/// An existing topic with another partition count is an error.
pub fn ensure_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        probe_config(bootstrap).create().context("creating a Kafka admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .operation_timeout(Some(Duration::from_secs(10)));
    // The admin client answers from its own thread, so any executor works,
    // and this one also works when called from inside a tokio runtime.
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .with_context(|| format!("creating topic {topic:?} on {bootstrap}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name:?} on {bootstrap}: {code}"),
        }
    }
    wait_for_topic(bootstrap, topic, partitions)
}

/// Returns once the broker's metadata shows `topic` with `partitions`
/// partitions, each with a leader; creates nothing, so a topic that is gone
/// is an error after 30 s.
pub fn wait_for_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let client: BaseConsumer = probe_config(bootstrap).create()?;
    let mut last = String::from("no metadata response");
    let ready = poll(Duration::from_secs(30), Duration::from_millis(100), || {
        match client.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() => {
                    let found = t.partitions().len();
                    if found != partitions as usize && found != 0 {
                        bail!(
                            "topic {topic:?} on {bootstrap} exists with {found} partitions, \
                             not {partitions}"
                        );
                    }
                    let led = t.partitions().iter().filter(|p| p.error().is_none() && p.leader() >= 0).count();
                    if found != 0 && led == found {
                        return Ok(Some(()));
                    }
                    last = format!("{led} of {found} partitions have a leader");
                }
                Some(t) => last = format!("metadata error {:?}", t.error()),
                None => last = "topic missing from metadata".to_owned(),
            },
            Err(err) => last = err.to_string(),
        }
        Ok(None)
    })?;
    ready.with_context(|| format!("topic {topic:?} on {bootstrap} did not become ready within 30 s: {last}"))
}

fn ensure_port_free(port: u16) -> Result<()> {
    match TcpListener::bind((HOST, port)) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AddrInUse => bail!(
            "port {port} on {HOST} is already in use, so a Kafka broker cannot listen there. \
             Probably a broker from an earlier run is still up: see what holds it with \
             `ss -ltnp 'sport = :{port}'` and stop it, or choose another port (0 picks a free one)."
        ),
        Err(err) => Err(err).context(format!("checking that port {port} on {HOST} is free")),
    }
}

/// Client settings for short-lived admin and probe clients.
fn probe_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // The defaults back off up to 10 s between connection attempts,
        // longer than a broker takes to come up.
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("socket.connection.setup.timeout.ms", "2000")
        .set("allow.auto.create.topics", "false");
    config
}

/// `stitch-broker` on `bootstrap`, its SQLite file in `tansu-data` under the
/// work dir: emptied for a [`Data::Fresh`] start, kept for a restart.
fn tansu_command(opts: &BrokerOptions, bootstrap: &str, data: Data) -> Result<Expression> {
    if !opts.tansu_binary.is_file() {
        bail!(
            "stitch-broker not found at {}: build it with \
             `cargo build --manifest-path crates/broker/Cargo.toml --target-dir target`",
            opts.tansu_binary.display()
        );
    }
    let data_dir = opts.work_dir.join("tansu-data");
    match data {
        Data::Fresh if data_dir.exists() => {
            fs::remove_dir_all(&data_dir).with_context(|| format!("removing {}", data_dir.display()))?
        }
        Data::Fresh => {}
        Data::Kept if !data_dir.is_dir() => bail!(
            "cannot restart the Tansu broker on its data: {} is missing (was the broker started from this work dir?)",
            data_dir.display()
        ),
        Data::Kept => {}
    }
    let mut expression = cmd!(&opts.tansu_binary, "--listen", bootstrap, "--data", &data_dir);
    // A RUST_LOG meant for the workshop's services would flood the broker's
    // log with Tansu's per-request debug output.
    expression = match std::env::var_os("STITCH_BROKER_LOG") {
        Some(filter) => expression.env("RUST_LOG", filter),
        None => expression.env_remove("RUST_LOG"),
    };
    Ok(expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_kind_round_trips_through_strings() {
        for kind in [BrokerKind::Tansu, BrokerKind::Apache] {
            assert_eq!(kind.to_string().parse::<BrokerKind>().unwrap(), kind);
        }
        assert!("zookeeper".parse::<BrokerKind>().is_err());
    }
}
