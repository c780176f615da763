//! Starting and stopping the Kafka broker a workshop run talks to.
//!
//! Two brokers speak the same protocol on `127.0.0.1`:
//!
//! - [`BrokerKind::Tansu`]: `stitch-broker`, an in-memory broker built by
//!   cargo from `crates/broker`. Starts in milliseconds, needs nothing else.
//! - [`BrokerKind::Apache`]: Apache Kafka in KRaft mode, one JVM, its jars
//!   resolved from Maven Central once (see [`install_apache_kafka`]) and its
//!   configuration taken from `infra/kafka/`.
//!
//! Neither creates topics on demand: call [`ensure_topic`] before producing.

use std::{
    ffi::{OsStr, OsString},
    fmt, fs,
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    str::FromStr,
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use crate::process::{Child, free_port, log_tail, spinner, tail};
use anyhow::{Context, Result, anyhow, bail};
use duct::{Expression, cmd};
use rdkafka::{
    ClientConfig, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    types::RDKafkaErrorCode,
};

/// Version of Apache Kafka that `infra/kafka/pom.xml` resolves.
pub const APACHE_KAFKA_VERSION: &str = "4.4.0";

/// The one address every broker listens on and advertises.
const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Any valid KRaft cluster id will do (16 bytes, base64url): each run
/// formats a fresh data directory. These are the bytes of "Stitch-workshop!".
const KRAFT_CLUSTER_ID: &str = "U3RpdGNoLXdvcmtzaG9wIQ";

/// A JVM on a busy two-core machine takes seconds just to load Kafka.
const APACHE_READY_TIMEOUT: Duration = Duration::from_secs(90);
const TANSU_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Kafka flushes and closes its logs on SIGTERM, which takes a couple of
/// seconds on a single node.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Lines of the broker's log quoted in an error.
const LOG_LINES: usize = 30;

const INSTALL_HINT: &str = "install them with `apt-get install openjdk-17-jre-headless maven`, \
     or use `--kafka tansu`, which needs nothing beyond cargo";

/// Which broker implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BrokerKind {
    /// `stitch-broker`: Tansu embedded, everything in memory.
    Tansu,
    /// Apache Kafka in KRaft combined mode, on the local JVM.
    Apache,
}

impl BrokerKind {
    /// Human-readable name, as shown while the broker starts.
    pub fn description(self) -> String {
        match self {
            BrokerKind::Tansu => "Tansu (stitch-broker, in memory)".to_owned(),
            BrokerKind::Apache => format!("Apache Kafka {APACHE_KAFKA_VERSION} (KRaft)"),
        }
    }
}

impl FromStr for BrokerKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tansu" => Ok(BrokerKind::Tansu),
            "apache" => Ok(BrokerKind::Apache),
            other => bail!("unknown Kafka broker {other:?}: expected \"tansu\" or \"apache\""),
        }
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerKind::Tansu => "tansu",
            BrokerKind::Apache => "apache",
        })
    }
}

/// How to start a [`Broker`].
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// Which broker to run.
    pub kind: BrokerKind,
    /// Port for Kafka clients on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Per-run scratch directory: the broker's log, and Apache Kafka's
    /// generated configuration and data. Created if missing.
    pub work_dir: PathBuf,
    /// The built `stitch-broker` binary (used for [`BrokerKind::Tansu`]).
    pub tansu_binary: PathBuf,
    /// Where the Apache Kafka jars are cached across runs, e.g.
    /// [`default_cache_dir`] (used for [`BrokerKind::Apache`]).
    pub cache_dir: PathBuf,
}

/// A running broker process. Dropping it kills the process.
#[derive(Debug)]
pub struct Broker {
    kind: BrokerKind,
    bootstrap: String,
    process: Child,
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
        let bootstrap = format!("{HOST}:{port}");
        let log_path = opts.work_dir.join(format!("kafka-{}.log", opts.kind));

        let (expression, timeout) = match opts.kind {
            BrokerKind::Tansu => (tansu_command(opts, &bootstrap)?, TANSU_READY_TIMEOUT),
            BrokerKind::Apache => {
                require_java()?;
                let libs = install_apache_kafka(&opts.cache_dir, &infra_dir())?;
                let expression = apache_command(opts, &libs, port)?;
                (expression, APACHE_READY_TIMEOUT)
            }
        };

        let spinner = spinner(format!("starting {}…", opts.kind.description()));
        let started = Instant::now();
        let process = Child::start(&format!("the {} broker", opts.kind), expression, &log_path)?;
        let broker = Broker { kind: opts.kind, bootstrap, process };
        let ready = broker.wait_ready(port, started + timeout, timeout);
        spinner.finish_and_clear();
        // On error `broker` drops here, which kills the process.
        ready?;
        Ok(broker)
    }

    /// The `bootstrap.servers` value for clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Which broker this is.
    pub fn kind(&self) -> BrokerKind {
        self.kind
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

    fn wait_ready(&self, port: u16, deadline: Instant, timeout: Duration) -> Result<()> {
        let timed_out = |what: &str| {
            anyhow!(
                "the {} broker did not {what} within {timeout:?}; last lines of {}:\n{}",
                self.kind,
                self.log_path().display(),
                log_tail(self.log_path(), LOG_LINES),
            )
        };
        let addr = SocketAddr::from((HOST, port));

        // Until the port is open a Kafka client would sit in its reconnect
        // backoff; plain connects find the moment sooner.
        loop {
            self.process.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(timed_out("open its port"));
            }
            thread::sleep(Duration::from_millis(25));
        }

        // An open port is not a working broker: Apache Kafka accepts
        // connections before it has registered itself, and answers metadata
        // with no brokers until then.
        let client: BaseConsumer = probe_config(&self.bootstrap).create().context("creating a Kafka client")?;
        loop {
            self.process.check_alive()?;
            if let Ok(metadata) = client.fetch_metadata(None, Duration::from_secs(1))
                && metadata.brokers().iter().any(|b| b.port() == i32::from(port))
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(timed_out("answer a metadata request listing itself"));
            }
            thread::sleep(Duration::from_millis(50));
        }

        // Apache Kafka creates its consumer-offsets topic when the first
        // group request arrives, and answers "not coordinator" for the
        // seconds that takes: the first consumer group of a run would be
        // seconds slower than the rest, and an early offset lookup fails.
        // One offset lookup here pays that while the spinner runs.
        let group_client: BaseConsumer = probe_config(&self.bootstrap)
            .set("group.id", "stitch-harness-warmup")
            .create()
            .context("creating a Kafka client")?;
        loop {
            self.process.check_alive()?;
            let mut partitions = TopicPartitionList::new();
            partitions.add_partition("stitch-harness-warmup", 0);
            if group_client.committed_offsets(partitions, Duration::from_secs(2)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(timed_out("answer a consumer group request"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `infra/kafka/` of this workspace: Apache Kafka's pom, properties and
/// logging configuration.
pub fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/kafka")
}

/// `<stitch cache>/kafka-<version>` (see [`crate::cache_dir`]), the usual
/// [`BrokerOptions::cache_dir`]: one directory per Kafka version, so going
/// back to an older version finds its jars still there.
pub fn default_cache_dir() -> PathBuf {
    crate::cache_dir().join(format!("kafka-{APACHE_KAFKA_VERSION}"))
}

/// Resolves the Apache Kafka broker's jars into `<cache_dir>/libs` with
/// Maven and `<infra_dir>/pom.xml`, and returns that directory.
///
/// Only the first call downloads anything: a marker written after the copy
/// completes records the pom it was made from, so an interrupted download,
/// or a changed pom, is redone.
pub fn install_apache_kafka(cache_dir: &Path, infra_dir: &Path) -> Result<PathBuf> {
    // Tests start brokers from parallel threads; one download is enough.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _guard = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

    let pom_path = infra_dir.join("pom.xml");
    let pom = fs::read_to_string(&pom_path).with_context(|| format!("reading {}", pom_path.display()))?;
    let libs = cache_dir.join("libs");
    let marker = cache_dir.join("installed-from-pom.xml");
    if libs.is_dir() && fs::read_to_string(&marker).is_ok_and(|done| done == pom) {
        return Ok(libs);
    }

    require_tool("mvn", "Maven (`mvn`) is needed once, to download Apache Kafka's jars")?;
    fs::create_dir_all(cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    let _ = fs::remove_file(&marker);
    // Another process may be installing into the same cache: each copies
    // into its own directory and moves it into place when complete.
    let partial = cache_dir.join(format!("libs.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);

    let spinner = spinner(format!("downloading Apache Kafka {APACHE_KAFKA_VERSION} with Maven (first run only)…"));
    let started = Instant::now();
    let output = cmd!(
        "mvn",
        "-q",
        "-B",
        "-f",
        &pom_path,
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        format!("-DoutputDirectory={}", partial.display()),
    )
    .stdin_null()
    .stderr_to_stdout()
    .stdout_capture()
    .unchecked()
    .run()
    .context("running mvn")?;
    spinner.finish_and_clear();
    if !output.status.success() {
        let _ = fs::remove_dir_all(&partial);
        bail!(
            "`mvn dependency:copy-dependencies -f {}` failed ({}):\n{}",
            pom_path.display(),
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 40),
        );
    }
    let kafka_jar = format!("kafka_2.13-{APACHE_KAFKA_VERSION}.jar");
    if !partial.join(&kafka_jar).is_file() {
        let _ = fs::remove_dir_all(&partial);
        bail!(
            "Maven resolved {} but produced no {kafka_jar}: does its kafka.version \
             match APACHE_KAFKA_VERSION ({APACHE_KAFKA_VERSION})?",
            pom_path.display()
        );
    }

    if fs::read_to_string(&marker).is_ok_and(|done| done == pom) {
        // Another process finished first, and its broker may be loading
        // classes from those jars right now: keep them.
        let _ = fs::remove_dir_all(&partial);
        return Ok(libs);
    }
    if libs.exists() {
        fs::remove_dir_all(&libs).with_context(|| format!("removing {}", libs.display()))?;
    }
    fs::rename(&partial, &libs).with_context(|| format!("moving {} to {}", partial.display(), libs.display()))?;
    let marker_partial = cache_dir.join(format!("installed.partial-{}", std::process::id()));
    fs::write(&marker_partial, &pom)?;
    fs::rename(&marker_partial, &marker)?;
    eprintln!("Apache Kafka {APACHE_KAFKA_VERSION} installed in {} ({:.1?})", libs.display(), started.elapsed());
    Ok(libs)
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

    let client: BaseConsumer = probe_config(bootstrap).create()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::from("no metadata response");
    while Instant::now() < deadline {
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
                        return Ok(());
                    }
                    last = format!("{led} of {found} partitions have a leader");
                }
                Some(t) => last = format!("metadata error {:?}", t.error()),
                None => last = "topic missing from metadata".to_owned(),
            },
            Err(err) => last = err.to_string(),
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("topic {topic:?} on {bootstrap} did not become ready within 30 s: {last}")
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

fn tansu_command(opts: &BrokerOptions, bootstrap: &str) -> Result<Expression> {
    if !opts.tansu_binary.is_file() {
        bail!(
            "stitch-broker not found at {}: build it with \
             `cargo build --manifest-path crates/broker/Cargo.toml --target-dir target`",
            opts.tansu_binary.display()
        );
    }
    let mut expression = cmd!(&opts.tansu_binary, "--listen", bootstrap);
    // A RUST_LOG meant for the workshop's services would flood the broker's
    // log with Tansu's per-request debug output.
    expression = match std::env::var_os("STITCH_BROKER_LOG") {
        Some(filter) => expression.env("RUST_LOG", filter),
        None => expression.env_remove("RUST_LOG"),
    };
    Ok(expression)
}

/// Writes the run's `server.properties`, formats the data directory, and
/// returns the command that runs the broker.
fn apache_command(opts: &BrokerOptions, libs: &Path, port: u16) -> Result<Expression> {
    let infra = infra_dir();
    // Formatting has a log of its own: the broker's log is started afresh.
    let log_path = &opts.work_dir.join("kafka-format.log");
    let controller_port = loop {
        let candidate = free_port()?;
        if candidate != port {
            break candidate;
        }
    };
    let data_dir = opts.work_dir.join("kafka-data");
    if data_dir.exists() {
        fs::remove_dir_all(&data_dir).with_context(|| format!("removing {}", data_dir.display()))?;
    }
    let template_path = infra.join("server.properties");
    let template =
        fs::read_to_string(&template_path).with_context(|| format!("reading {}", template_path.display()))?;
    let properties = render_properties(
        &template,
        &[
            ("node.id", "1".to_owned()),
            ("listeners", format!("PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}")),
            ("advertised.listeners", format!("PLAINTEXT://{HOST}:{port}")),
            ("controller.quorum.voters", format!("1@{HOST}:{controller_port}")),
            ("log.dirs", data_dir.display().to_string()),
        ],
    );
    let properties_path = opts.work_dir.join("server.properties");
    fs::write(&properties_path, properties).with_context(|| format!("writing {}", properties_path.display()))?;

    let java = |main_class: &str, args: &[&OsStr]| {
        let mut argv: Vec<OsString> = vec![
            "-Xms256m".into(),
            "-Xmx1g".into(),
            // Two cores: the serial collector and the C1 compiler alone get
            // the broker up seconds sooner; a workshop's load needs no more.
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-Djava.awt.headless=true".into(),
            format!("-Dlog4j2.configurationFile={}", infra.join("log4j2.properties").display()).into(),
            "-cp".into(),
            // The JVM expands the wildcard itself; no shell is involved.
            libs.join("*").into_os_string(),
            main_class.into(),
        ];
        argv.extend(args.iter().map(|&arg| arg.to_owned()));
        cmd("java", argv)
    };

    let spinner = spinner("formatting Apache Kafka storage…".to_owned());
    let formatted = java(
        "kafka.tools.StorageTool",
        &["format".as_ref(), "-t".as_ref(), KRAFT_CLUSTER_ID.as_ref(), "-c".as_ref(), properties_path.as_os_str()],
    )
    .stdin_null()
    .stderr_to_stdout()
    .stdout_path(log_path)
    .unchecked()
    .run()
    .context("running kafka.tools.StorageTool")?;
    spinner.finish_and_clear();
    if !formatted.status.success() {
        bail!(
            "formatting Kafka storage in {} failed ({}); last lines of {}:\n{}",
            data_dir.display(),
            formatted.status,
            log_path.display(),
            log_tail(log_path, LOG_LINES),
        );
    }
    Ok(java("kafka.Kafka", &[properties_path.as_os_str()]))
}

/// `template` with the value of each key in `overrides` replaced (or
/// appended when the template lacks it); comments and order are kept.
fn render_properties(template: &str, overrides: &[(&str, String)]) -> String {
    let mut seen = vec![false; overrides.len()];
    let mut out = String::from(
        "# Generated by the Stitch harness from infra/kafka/server.properties;\n\
         # edit that file instead.\n",
    );
    for line in template.lines() {
        let key = line
            .trim_start()
            .split_once('=')
            .map(|(key, _)| key.trim())
            .filter(|_| !line.trim_start().starts_with(['#', '!']));
        match key.and_then(|key| overrides.iter().position(|(k, _)| *k == key)) {
            Some(i) => {
                seen[i] = true;
                out.push_str(&format!("{}={}\n", overrides[i].0, overrides[i].1));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, (key, value)) in overrides.iter().enumerate() {
        if !seen[i] {
            out.push_str(&format!("{key}={value}\n"));
        }
    }
    out
}

fn require_java() -> Result<()> {
    require_tool("java", "Apache Kafka needs a Java 17+ runtime (`java`)")
}

fn require_tool(program: &str, why: &str) -> Result<()> {
    match cmd!(program, "-version").stdin_null().stdout_null().stderr_null().unchecked().run() {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            bail!("{why}, but `{program}` is not on PATH: {INSTALL_HINT}")
        }
        Err(err) => Err(err).context(format!("running `{program} -version`")),
    }
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

    #[test]
    fn pom_resolves_the_version_the_launcher_expects() {
        let pom = fs::read_to_string(infra_dir().join("pom.xml")).unwrap();
        assert!(
            pom.contains(&format!("<kafka.version>{APACHE_KAFKA_VERSION}</kafka.version>")),
            "infra/kafka/pom.xml and APACHE_KAFKA_VERSION disagree"
        );
    }

    #[test]
    fn properties_keep_comments_and_replace_per_run_keys() {
        let template = "# listeners=commented\nlisteners=PLAINTEXT://x:1\nlog.dirs = /tmp/a\nfoo=bar\n";
        let out = render_properties(
            template,
            &[("listeners", "PLAINTEXT://y:2".to_owned()), ("log.dirs", "/w".to_owned()), ("node.id", "1".to_owned())],
        );
        assert!(out.contains("# listeners=commented\n"));
        assert!(out.contains("\nlisteners=PLAINTEXT://y:2\n"));
        assert!(out.contains("\nlog.dirs=/w\n"));
        assert!(out.contains("\nfoo=bar\n"));
        assert!(out.ends_with("node.id=1\n"));
        assert!(!out.contains("/tmp/a"));
    }

    #[test]
    fn every_per_run_key_is_in_the_committed_properties() {
        let template = fs::read_to_string(infra_dir().join("server.properties")).unwrap();
        for key in ["node.id", "listeners", "advertised.listeners", "controller.quorum.voters", "log.dirs"] {
            assert!(
                template.lines().any(|l| l.starts_with(&format!("{key}="))),
                "{key} missing from infra/kafka/server.properties"
            );
        }
    }
}
