//! The OpenTelemetry Collector and Jaeger: built once from the Go module proxy
//! into the cache, started as child processes from the configs in `infra/`,
//! and read through their Prometheus self-metrics.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::process::{Child, free_port, http_get, run_logged, spinner, wait_until};

use stitch_paths::cached::{self, current_collector, current_jaeger};
pub use stitch_paths::cached::{COLLECTOR_VERSION, JAEGER_VERSION, collector_config_dir};

const GO_HINT: &str = "install Go 1.25 or newer (https://go.dev/dl, or your package manager) and make sure \
                       `go` is on PATH; the collector and Jaeger are built from the Go module proxy once and cached";

/// The collector binary, built with the OpenTelemetry Collector Builder from
/// `infra/collector/builder-config.yaml` on first use.
pub fn install_collector() -> Result<PathBuf> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _guard = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let config = cached::collector_sources()
        .with_context(|| format!("reading {}", collector_config_dir().join("builder-config.yaml").display()))?;
    let cached::CachedBuild { dir, binary, marker } = cached::collector();
    if let Some(binary) = current_collector() {
        return Ok(binary);
    }
    require_go()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(&marker);

    let builder = dir.join("bin").join("builder");
    if !builder.is_file() {
        go_step(
            &format!("installing the collector builder {COLLECTOR_VERSION} (first run only)"),
            duct::cmd!("go", "install", format!("go.opentelemetry.io/collector/cmd/builder@v{COLLECTOR_VERSION}"))
                .env("GOBIN", dir.join("bin")),
            &dir.join("builder-install.log"),
        )?;
    }
    // The builder writes its sources and binary into `output_path` (./build),
    // relative to the directory it runs in.
    let work = dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("builder-config.yaml"), &config)?;
    go_step(
        &format!(
            "building the collector {COLLECTOR_VERSION} with tail_sampling and load_balancing (first run only, minutes)"
        ),
        duct::cmd!(&builder, "--config", "builder-config.yaml").dir(&work),
        &dir.join("build.log"),
    )?;
    let built = work.join("build").join("otelcol-stitch");
    if !built.is_file() {
        bail!(
            "the collector builder finished but wrote no {}; see {}",
            built.display(),
            dir.join("build.log").display()
        );
    }
    std::fs::rename(&built, &binary).with_context(|| format!("moving the collector to {}", binary.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::write(&marker, &config)?;
    Ok(binary)
}

/// The Jaeger v2 binary, built from the module pinned in `infra/jaeger/go.mod`
/// on first use. Built from the module proxy it serves the API, not the UI.
pub fn install_jaeger() -> Result<PathBuf> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _guard = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (go_mod, go_sum) = cached::jaeger_sources()
        .with_context(|| format!("reading go.mod and go.sum in {}", cached::infra_dir().join("jaeger").display()))?;
    let fingerprint = cached::jaeger_fingerprint(&go_mod, &go_sum);
    let cached::CachedBuild { dir, binary, marker } = cached::jaeger();
    if let Some(binary) = current_jaeger() {
        return Ok(binary);
    }
    require_go()?;
    let work = dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let _ = std::fs::remove_file(&marker);
    std::fs::write(work.join("go.mod"), &go_mod)?;
    std::fs::write(work.join("go.sum"), &go_sum)?;
    go_step(
        &format!("building Jaeger {JAEGER_VERSION} (first run only, minutes)"),
        duct::cmd!(
            "go",
            "build",
            "-trimpath",
            "-ldflags=-s -w",
            "-o",
            "jaeger",
            "github.com/jaegertracing/jaeger/cmd/jaeger"
        )
        .dir(&work),
        &dir.join("build.log"),
    )?;
    std::fs::rename(work.join("jaeger"), &binary).with_context(|| format!("moving Jaeger to {}", binary.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::write(&marker, fingerprint)?;
    Ok(binary)
}

/// Fails with how to get Go when `go` is not on PATH.
pub fn require_go() -> Result<()> {
    match duct::cmd!("go", "version").stdin_null().stdout_null().stderr_null().unchecked().run() {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => bail!("`go` is not on PATH: {GO_HINT}"),
        Err(err) => Err(err).context("running `go version`"),
    }
}

/// Runs one long Go command with a spinner, its output in `log`.
pub fn go_step(what: &str, expression: duct::Expression, log: &Path) -> Result<()> {
    let spinner = spinner(what.to_owned());
    let started = Instant::now();
    let ran = run_logged(what, expression, log, 30);
    spinner.finish_and_clear();
    ran?;
    // Outside a terminal the phase has printed its own time already.
    if spinner.on_terminal() {
        eprintln!("{what}: done in {:.0} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// A collector-based process (the collector, or Jaeger, which is one) with
/// its self-metrics on a Prometheus endpoint.
pub struct OtelProcess {
    child: Child,
    pub name: String,
    pub metrics_port: u16,
}

impl OtelProcess {
    /// Starts `binary --config <each config>` with `env` (plus the metrics
    /// address) and waits until `ready_port` accepts connections.
    pub fn start(
        name: &str,
        binary: &Path,
        configs: &[PathBuf],
        env: &[(&str, String)],
        ready_port: u16,
        log: &Path,
    ) -> Result<OtelProcess> {
        OtelProcess::start_with(name, binary, configs, env, ready_port, log, |expression| expression)
    }

    /// [`OtelProcess::start`] with the command adjusted first (e.g. started
    /// inside a memory cgroup).
    pub fn start_with(
        name: &str,
        binary: &Path,
        configs: &[PathBuf],
        env: &[(&str, String)],
        ready_port: u16,
        log: &Path,
        adjust: impl FnOnce(duct::Expression) -> duct::Expression,
    ) -> Result<OtelProcess> {
        let metrics_port = free_port()?;
        let mut args = Vec::new();
        for config in configs {
            args.push("--config".to_owned());
            args.push(config.display().to_string());
        }
        let mut expression = duct::cmd(binary, args)
            .env("STITCH_METRICS_HOST", "127.0.0.1")
            .env("STITCH_METRICS_PORT", metrics_port.to_string());
        for (key, value) in env {
            expression = expression.env(key, value);
        }
        let child = Child::start(name, adjust(expression), log)?;
        wait_until(&child, Duration::from_secs(30), || {
            [ready_port, metrics_port].iter().all(|&port| {
                std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
            })
        })?;
        Ok(OtelProcess { child, name: name.to_owned(), metrics_port })
    }

    pub fn check_alive(&self) -> Result<()> {
        self.child.check_alive()
    }

    pub fn log(&self) -> &Path {
        self.child.log()
    }

    /// How the process ended, or `None` while it runs.
    pub fn exit_status(&self) -> Result<Option<std::process::ExitStatus>> {
        self.child.exit_status()
    }

    pub fn stop(&mut self) {
        self.child.stop(Duration::from_secs(5));
    }

    /// Scrapes the process's self-metrics.
    pub fn metrics(&self) -> Result<Metrics> {
        let text = http_get(&format!("http://127.0.0.1:{}/metrics", self.metrics_port))?;
        Metrics::parse(&text)
    }
}

/// One scrape of a Prometheus text endpoint.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// Parses the text exposition format. A sample line it cannot read is an
    /// error naming the line: a scrape read in part would count as zeros.
    pub fn parse(text: &str) -> anyhow::Result<Metrics> {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| parse_sample(line).with_context(|| format!("a metrics line that is not a sample: {line:?}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Metrics { samples })
    }

    /// The sum of every series of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels).map(|(_, value)| value).sum()
    }

    /// Every series of `name` whose labels include all of `labels`.
    pub fn series<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(sample, sample_labels, _)| {
                sample == name && labels.iter().all(|(key, value)| sample_labels.get(*key).is_some_and(|v| v == value))
            })
            .map(|(_, labels, value)| (labels, *value))
    }
}

/// `name{labels} value` or `name value`, with an optional timestamp after
/// the value.
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (series, rest) = match line.rfind('}') {
        Some(close) => line.split_at(close + 1),
        None => line.split_once(' ')?,
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}')?)),
        None => (series, BTreeMap::new()),
    };
    Some((name.trim().to_owned(), labels, value))
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = index + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let metrics = Metrics::parse(
            "# HELP x y\n# TYPE otelcol_a counter\n\
             otelcol_a{policy=\"errors\",sampled=\"true\"} 2\n\
             otelcol_a{policy=\"errors\",sampled=\"false\"} 40\n\
             otelcol_a{policy=\"slow\",sampled=\"true\"} 1\n\
             otelcol_rss 1.5e+08 1733112000000\n",
        )
        .unwrap();
        assert_eq!(metrics.sum("otelcol_a", &[("sampled", "true")]), 3.0);
        assert_eq!(metrics.sum("otelcol_a", &[("policy", "errors")]), 42.0);
        assert_eq!(metrics.sum("otelcol_rss", &[]), 1.5e8);
        assert_eq!(metrics.sum("missing", &[]), 0.0);
    }

    #[test]
    fn a_line_that_is_not_a_sample_is_an_error_that_names_it() {
        let error = Metrics::parse("otelcol_a 1\ngarbage line\n").unwrap_err();
        assert!(format!("{error:#}").contains("\"garbage line\""), "{error:#}");
    }

    #[test]
    fn label_values_may_hold_commas_quotes_and_braces() {
        let metrics = Metrics::parse("m{endpoint=\"127.0.0.1:1,2\",note=\"a \\\"b\\\" {c}\"} 7\n").unwrap();
        let (labels, value) = metrics.series("m", &[]).next().expect("one series");
        assert_eq!(value, 7.0);
        assert_eq!(labels["endpoint"], "127.0.0.1:1,2");
        assert_eq!(labels["note"], "a \"b\" {c}");
    }
}
