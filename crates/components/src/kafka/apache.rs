//! Apache Kafka in KRaft mode: its jars resolved from Maven Central once, its
//! configuration taken from `infra/kafka/`, one JVM per broker.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use duct::{Expression, cmd};

use super::{BrokerOptions, Data, HOST, LOG_LINES};
use crate::process::{free_port, run_logged, spinner, tail};

/// Version of Apache Kafka that `infra/kafka/pom.xml` resolves.
pub const APACHE_KAFKA_VERSION: &str = "4.4.0";

/// Any valid KRaft cluster id will do (16 bytes, base64url): each run
/// formats a fresh data directory. These are the bytes of "Stitch-workshop!".
const KRAFT_CLUSTER_ID: &str = "U3RpdGNoLXdvcmtzaG9wIQ";

/// A JVM on a busy two-core machine takes seconds just to load Kafka.
pub(super) const APACHE_READY_TIMEOUT: Duration = Duration::from_secs(90);
const INSTALL_HINT: &str = "install them with `apt-get install openjdk-17-jre-headless maven`, \
     or use `--kafka tansu`, which needs nothing beyond cargo";

/// `infra/kafka/` of this workspace: Apache Kafka's pom, properties and
/// logging configuration.
pub fn infra_dir() -> PathBuf {
    crate::project_root().join("infra").join("kafka")
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

    require_tool("mvn", "Maven (`mvn`) is needed once, to download Apache Kafka's jars", INSTALL_HINT)?;
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

/// Returns the command that runs the broker on `opts.port`. On
/// [`Data::Fresh`] it first writes the run's `server.properties` and formats
/// a new data directory; on [`Data::Kept`] it runs on what the last start
/// left (a restart).
pub(super) fn apache_command(opts: &BrokerOptions, libs: &Path, data: Data) -> Result<Expression> {
    let infra = infra_dir();
    let properties_path = opts.work_dir.join("server.properties");
    let data_dir = opts.work_dir.join("kafka-data");
    if data == Data::Fresh {
        write_properties(opts, &infra, &properties_path, &data_dir)?;
    } else if !properties_path.is_file() || !data_dir.is_dir() {
        bail!(
            "restarting Apache Kafka: {} or {} is missing (a restart needs what the first start wrote)",
            properties_path.display(),
            data_dir.display()
        );
    }
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

    if data == Data::Fresh {
        // Formatting has a log of its own: the broker's log is started afresh.
        let log_path = &opts.work_dir.join("kafka-format.log");
        let spinner = spinner("formatting Apache Kafka storage…".to_owned());
        let formatted = run_logged(
            &format!("formatting Kafka storage in {}", data_dir.display()),
            java(
                "kafka.tools.StorageTool",
                &[
                    "format".as_ref(),
                    "-t".as_ref(),
                    KRAFT_CLUSTER_ID.as_ref(),
                    "-c".as_ref(),
                    properties_path.as_os_str(),
                ],
            ),
            log_path,
            LOG_LINES,
        );
        spinner.finish_and_clear();
        formatted?;
    }
    Ok(java("kafka.Kafka", &[properties_path.as_os_str()]))
}

/// Writes `server.properties` for a broker on `opts.port` with a controller
/// port of its own, and empties the data directory.
fn write_properties(opts: &BrokerOptions, infra: &Path, properties_path: &Path, data_dir: &Path) -> Result<()> {
    let port = opts.port;
    let controller_port = loop {
        let candidate = free_port()?;
        if candidate != port {
            break candidate;
        }
    };
    if data_dir.exists() {
        fs::remove_dir_all(data_dir).with_context(|| format!("removing {}", data_dir.display()))?;
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
    fs::write(properties_path, properties).with_context(|| format!("writing {}", properties_path.display()))
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

pub(super) fn require_java() -> Result<()> {
    require_tool("java", "Apache Kafka needs a Java 17+ runtime (`java`)", INSTALL_HINT)
}

/// Fails with `why` and `how` to install it when `program -version` cannot run.
pub fn require_tool(program: &str, why: &str, how: &str) -> Result<()> {
    match cmd!(program, "-version").stdin_null().stdout_null().stderr_null().unchecked().run() {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            bail!("{why}, but `{program}` is not on PATH: {how}")
        }
        Err(err) => Err(err).context(format!("running `{program} -version`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
