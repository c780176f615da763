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

/// One scrape of a Prometheus text endpoint: its counters and gauges (a
/// histogram's `_sum` and `_count` among them), read by `prometheus-parse`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// Parses the text exposition format. A line the parser would skip (not
    /// a sample, a value that is not a number, a label it cannot read) is an
    /// error naming the line: a scrape read in part would count as zeros.
    pub fn parse(text: &str) -> anyhow::Result<Metrics> {
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            check_sample(line).with_context(|| format!("a metrics line that is not a sample: {line:?}"))?;
        }
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
            .context("reading a Prometheus text scrape")?;
        let samples = scrape
            .samples
            .into_iter()
            .filter_map(|sample| {
                let value = match sample.value {
                    prometheus_parse::Value::Counter(value)
                    | prometheus_parse::Value::Gauge(value)
                    | prometheus_parse::Value::Untyped(value) => value,
                    // Buckets and quantiles: the checks read `_sum` and `_count`.
                    prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => return None,
                };
                let labels = sample.labels.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
                Some((sample.metric, labels, value))
            })
            .collect();
        Ok(Metrics { samples })
    }

    /// The sum of every series of `name` whose labels include all of
    /// `labels`. A scrape without any series of `name` is an error: a
    /// renamed metric must not read as zero.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        if !self.samples.iter().any(|(sample, _, _)| sample == name) {
            bail!("the scrape has no {name}");
        }
        Ok(self.events(name, labels))
    }

    /// [`Metrics::sum`] of a counter the collector creates at its first
    /// event (a late span, a cached decision, a failed send, a backend
    /// answered): until then it has no series, and none means none happened.
    pub fn events(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        // `+ 0.0`: an empty float sum is -0, which prints as "-0".
        self.series(name, labels).map(|(_, value)| value).sum::<f64>() + 0.0
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

/// Fails on a sample line `prometheus-parse` would skip or misread: not a
/// sample, a value that is not a number, or a label value with a character
/// it splits on (`,`, `=`) or cannot unescape (`"`, `\`, `}`).
fn check_sample(line: &str) -> anyhow::Result<()> {
    let prometheus_parse::LineInfo::Sample { labels, value, .. } = prometheus_parse::LineInfo::parse(line) else {
        bail!("not `name{{labels}} value`");
    };
    if !matches!(value, "NaN" | "+Inf" | "-Inf") {
        value.parse::<f64>().with_context(|| format!("the value {value:?} is not a number"))?;
    }
    for pair in labels.into_iter().flat_map(|labels| labels.split(',')).filter(|pair| !pair.is_empty()) {
        let Some((key, quoted)) = pair.split_once('=') else { bail!("the label {pair:?} has no value") };
        let value = quoted.strip_prefix('"').and_then(|rest| rest.strip_suffix('"'));
        let readable = value.is_some_and(|value| !value.contains(['"', '\\', '=', '}']));
        if key.is_empty() || !readable {
            bail!("the label {pair:?} is not key=\"value\" with a plain value");
        }
    }
    Ok(())
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
        assert_eq!(metrics.sum("otelcol_a", &[("sampled", "true")]).unwrap(), 3.0);
        assert_eq!(metrics.sum("otelcol_a", &[("policy", "errors")]).unwrap(), 42.0);
        assert_eq!(metrics.sum("otelcol_rss", &[]).unwrap(), 1.5e8);
        // A family the scrape has, with no series of these labels: none happened.
        assert_eq!(metrics.sum("otelcol_a", &[("policy", "baseline")]).unwrap(), 0.0);
    }

    #[test]
    fn a_metric_the_scrape_lacks_is_an_error_unless_it_counts_events() {
        let metrics = Metrics::parse("otelcol_a 1\n").unwrap();
        let error = metrics.sum("otelcol_renamed", &[]).unwrap_err();
        assert_eq!(error.to_string(), "the scrape has no otelcol_renamed");
        assert_eq!(metrics.events("otelcol_exporter_send_failed_spans", &[]), 0.0);
        assert_eq!(metrics.events("otelcol_a", &[]), 1.0);
    }

    #[test]
    fn a_line_that_is_not_a_sample_is_an_error_that_names_it() {
        let error = Metrics::parse("otelcol_a 1\ngarbage line\n").unwrap_err();
        assert!(format!("{error:#}").contains("\"garbage line\""), "{error:#}");
        let error = Metrics::parse("otelcol_a{x=\"1\"} many\n").unwrap_err();
        assert!(format!("{error:#}").contains("\"many\" is not a number"), "{error:#}");
    }

    #[test]
    fn a_label_value_the_parser_would_split_is_an_error_not_a_wrong_label() {
        for line in ["m{endpoint=\"127.0.0.1:1,2\"} 7", "m{note=\"a \\\"b\\\"\"} 7", "m{a=b} 7"] {
            let error = Metrics::parse(line).unwrap_err();
            assert!(format!("{error:#}").contains("is not key=\"value\" with a plain value"), "{line}: {error:#}");
        }
    }

    /// Scrapes of the pinned collector (tier 1 and tier 2 after a few traces,
    /// tier 2 idle) read whole, with the series the checks use.
    #[test]
    fn reads_the_collectors_own_scrapes() {
        let tier2 = Metrics::parse(include_str!("../testdata/tier2-after-traffic.prom")).unwrap();
        let sampled = tier2
            .sum("otelcol_processor_tail_sampling_count_traces_sampled", &[("policy", "errors"), ("sampled", "true")])
            .unwrap();
        assert_eq!(sampled, 3.0);
        assert_eq!(tier2.sum("otelcol_processor_tail_sampling_new_trace_id_received", &[]).unwrap(), 3.0);
        assert_eq!(tier2.sum("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early", &[]).unwrap(), 0.0);
        assert_eq!(tier2.sum("otelcol_receiver_refused_spans", &[]).unwrap(), 0.0);
        assert_eq!(tier2.sum("otelcol_receiver_accepted_spans", &[]).unwrap(), 3.0);
        assert!(tier2.sum("otelcol_process_memory_rss", &[]).unwrap() > 1e6);
        // A histogram's count and sum, as the late-span age is read.
        assert!(tier2.sum("otelcol_processor_tail_sampling_sampling_trace_removal_age_count", &[]).is_ok());

        let tier1 = Metrics::parse(include_str!("../testdata/tier1-after-traffic.prom")).unwrap();
        let (labels, exports) =
            tier1.series("otelcol_loadbalancer_backend_outcome", &[("success", "true")]).next().expect("one backend");
        assert_eq!((labels["endpoint"].as_str(), exports), ("127.0.0.1:14918", 1.0));

        // Idle, before any span: no receiver counters yet.
        let idle = Metrics::parse(include_str!("../testdata/tier2-idle.prom")).unwrap();
        assert!(idle.sum("otelcol_receiver_accepted_spans", &[]).is_err());
        assert_eq!(idle.events("otelcol_receiver_accepted_spans", &[]), 0.0);
        assert!(idle.sum("otelcol_processor_tail_sampling_sampling_traces_on_memory", &[]).is_ok());
    }
}
