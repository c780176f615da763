//! The fuzz's foreign producer: `infra/kafka/ForeignProducer.java`, on
//! Apache Kafka's own Java client, run from source with the jars the Apache
//! Kafka launcher caches. Its messages reach the consumer through the same
//! topic as librdkafka's, and are judged the same way.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use duct::cmd;

use super::cases::Case;
use crate::kafka::{default_cache_dir, infra_dir, install_apache_kafka, require_tool};

/// JVM start, compiling the source, then at most the client's own delivery
/// timeout (15 s, set in the Java file).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Client settings the fuzz's producer runs with. On a connection to a
/// broker it learned from metadata, the Java client 4.x sends ApiVersions
/// v5 carrying the cluster id and node id it expects; Tansu 0.6 knows
/// ApiVersions up to v4, fails to decode that request and drops the
/// connection, so the producer retries until its delivery timeout. Without
/// the check, the request decodes and every message is delivered.
pub const CLIENT_SETTINGS: &[&str] = &["metadata.cluster.check.enable=false"];

const INSTALL_HINT: &str = "the soak's foreign producer runs Apache Kafka's Java client from source and needs \
     a JDK 17+ (`java` with its compiler) and Maven once, for the jars: \
     `apt-get install openjdk-17-jdk-headless maven`";

/// Whether the broker acknowledged one case's message, or why not.
pub type Sent = Result<(), String>;

/// Sends every case (each keyed `keys[i]`, its payload the order JSON) to
/// `topic` in one JVM, with [`CLIENT_SETTINGS`]. An error means the producer
/// did not run, or the broker took none of its messages; a message the
/// broker did not take fails its case only. The producer's output goes to
/// `log`.
pub fn send(bootstrap: &str, topic: &str, cases: &[Case], keys: &[String], log: &Path) -> anyhow::Result<Vec<Sent>> {
    send_with(bootstrap, topic, cases, keys, CLIENT_SETTINGS, log)
}

/// [`send`] with other client settings (`name=value`).
pub fn send_with(
    bootstrap: &str,
    topic: &str,
    cases: &[Case],
    keys: &[String],
    settings: &[&str],
    log: &Path,
) -> anyhow::Result<Vec<Sent>> {
    if cases.len() != keys.len() {
        bail!("{} cases but {} keys: each case needs its key", cases.len(), keys.len());
    }
    let libs = ready()?;
    let source = infra_dir().join("ForeignProducer.java");
    let mut input = String::new();
    for (case, key) in cases.iter().zip(keys) {
        let payload = serde_json::json!({ "order_id": key }).to_string();
        write!(input, "{key}\t{payload}")?;
        for (name, value) in &case.headers {
            match value {
                Some(value) => write!(input, "\t{name}={}", hex::encode(value))?,
                None => write!(input, "\t{name}")?,
            }
        }
        input.push('\n');
    }

    let mut args: Vec<String> = vec![
        format!("-Dlog4j2.configurationFile={}", infra_dir().join("log4j2.properties").display()),
        "-XX:TieredStopAtLevel=1".to_owned(),
        "-cp".to_owned(),
        // The JVM expands the wildcard itself; no shell is involved.
        libs.join("*").display().to_string(),
        source.display().to_string(),
        bootstrap.to_owned(),
        topic.to_owned(),
    ];
    args.extend(settings.iter().map(|&setting| setting.to_owned()));
    let handle = cmd("java", &args)
        .stdin_bytes(input)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .start()
        .context("starting the foreign producer (java)")?;
    let Some(output) = handle.wait_timeout(TIMEOUT).context("waiting for the foreign producer")?.cloned() else {
        // The one process this started; kill() also reaps it.
        let _ = handle.kill();
        bail!("the foreign producer did not finish within {TIMEOUT:?}");
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(log, &text).with_context(|| format!("writing {}", log.display()))?;

    let acknowledged: Vec<&str> =
        text.lines().filter_map(|line| line.strip_prefix("sent\t")?.split('\t').next()).collect();
    if !output.status.success() && acknowledged.is_empty() {
        if text.contains("jdk.compiler") {
            bail!("this `java` cannot run a source file (no compiler: a JRE, not a JDK): {INSTALL_HINT}");
        }
        bail!(
            "the foreign producer sent nothing ({}); the end of {}:\n{}",
            output.status,
            log.display(),
            crate::process::tail(&text, 20)
        );
    }
    let failure = text.lines().find(|line| line.starts_with("producing failed")).unwrap_or("no acknowledgement");
    Ok(keys
        .iter()
        .map(|key| if acknowledged.contains(&key.as_str()) { Ok(()) } else { Err(failure.to_owned()) })
        .collect())
}

/// Checks for `java` and the producer's source, and resolves the jars once
/// (Maven); returns the jar directory. The soak calls it before its first
/// request, so a missing JDK costs seconds, not a whole run.
pub fn ready() -> anyhow::Result<std::path::PathBuf> {
    require_jdk()?;
    let source = infra_dir().join("ForeignProducer.java");
    if !source.is_file() {
        bail!("{} is missing: it is part of the repository; restore it with `git checkout`", source.display());
    }
    install_apache_kafka(&default_cache_dir(), &infra_dir())
}

fn require_jdk() -> anyhow::Result<()> {
    require("java")
}

fn require(java: &str) -> anyhow::Result<()> {
    require_tool(java, "the soak's foreign producer needs Java", INSTALL_HINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_java_says_how_to_install_it() {
        let err = require("stitch-no-such-java").unwrap_err().to_string();
        assert!(err.contains("apt-get install openjdk-17-jdk-headless maven"), "{err}");
    }

    #[test]
    fn header_values_travel_as_hex() {
        // What ForeignProducer.java decodes: two lowercase digits a byte.
        assert_eq!(hex::encode([0x00, 0xff, b'a']), "00ff61");
    }
}
