//! `cargo xtask ingest-bench`: how many spans one core of a receiver takes
//! over OTLP/HTTP, for lineage (release build, doing its whole analysis) and
//! for the project's collector (an `otlp` receiver and a debug exporter,
//! nothing else). Each receiver is pinned to one core with `taskset`; the
//! load (`replay`: pre-encoded export requests, trace ids fresh in every
//! request, over many keep-alive connections) runs on the others and keeps
//! the receiver's core busy. A run counts only when the receiver used at
//! least [`SATURATED_PERCENT`] of its core: below that, the figure would be
//! the load's rate, not the receiver's.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use stitch_campaigns::overhead::Spread;
use stitch_components::otelcol::{COLLECTOR_VERSION, Metrics, collector_config_dir, install_collector};
use stitch_components::process::{Child, cargo, free_port, http_get, wait_until};

use stitch_components::proc_stat::{Cores, cpu_seconds, load_average, peak_rss_kib};
use stitch_otlp_replay::{Sent, Template};

/// A receiver below this share of its core was not saturated.
pub const SATURATED_PERCENT: f64 = 90.0;

/// The book's table, under `book/src/`.
pub const BOOK_FILE: &str = "generated/ingest-bench.md";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds of load in each run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Runs per receiver, alternating between the two; the table gives
    /// the spread (min, median, max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Keep-alive HTTP connections the load keeps busy at once.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Traces per export request, of the flow's 6 spans each.
    #[arg(long, default_value_t = 85)]
    traces_per_request: usize,
    /// Only this receiver.
    #[arg(long, value_enum)]
    only: Option<ReceiverKind>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the table into the book (book/src/generated/ingest-bench.md).
    #[arg(long, conflicts_with = "only")]
    book: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    Lineage,
    Otelcol,
}

/// What one receiver did in one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Intake {
    /// Spans accepted per CPU-second of the receiver: its rate on one core.
    pub spans_per_cpu_second: f64,
    /// Spans accepted per wall-clock second.
    pub spans_per_second: f64,
    /// CPU time of the receiver / wall time, in percent of its one core.
    pub cpu_percent: f64,
    /// Peak resident set size (VmHWM).
    pub peak_rss_mib: f64,
    pub spans_sent: u64,
    /// The receiver's own count of spans it accepted.
    pub spans_accepted: u64,
    /// lineage only: spans it classified once every trace was settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans_classified: Option<u64>,
    pub requests: u64,
}

#[derive(Debug, Serialize)]
struct ReceiverResult {
    receiver: ReceiverKind,
    runs: Vec<Intake>,
    spans_per_cpu_second: Spread,
    cpu_percent: Spread,
    peak_rss_mib: Spread,
}

#[derive(Debug, Serialize)]
struct Comparison {
    receivers: Vec<ReceiverResult>,
    /// lineage's median spans per CPU-second over the collector's.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
    load: Load,
}

#[derive(Debug, Serialize)]
struct Load {
    generator: &'static str,
    protocol: &'static str,
    seconds: u64,
    runs: usize,
    connections: usize,
    spans_per_request: u64,
    request_bytes: usize,
    cores: Cores,
    collector: String,
    /// The machine's 1-minute load average before and after the runs.
    load_average: (f64, f64),
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if args.runs == 0 {
        bail!("--runs 0: at least one run is needed");
    }
    let cores = Cores::split("ingest-bench")?;
    let kinds: Vec<ReceiverKind> = match args.only {
        Some(kind) => vec![kind],
        None => vec![ReceiverKind::Lineage, ReceiverKind::Otelcol],
    };
    let (lineage, replay) = build()?;
    let collector = kinds.contains(&ReceiverKind::Otelcol).then(install_collector).transpose()?;
    let template = Template::new(args.traces_per_request)?;
    let load = Load {
        generator: "pre-encoded OTLP/protobuf export requests, trace ids and business keys fresh in every request",
        protocol: "OTLP/HTTP (protobuf, uncompressed)",
        seconds: args.seconds,
        runs: args.runs,
        connections: args.connections,
        spans_per_request: template.spans,
        request_bytes: template.len(),
        cores,
        collector: format!("otelcol {COLLECTOR_VERSION}"),
        load_average: (load_average()?, 0.0),
    };
    let logs = stitch_paths::run_dir().join("ingest-bench");
    let mut runs: Vec<(ReceiverKind, Vec<Intake>)> = kinds.iter().map(|&kind| (kind, Vec::new())).collect();
    for round in 0..args.runs {
        for (kind, intakes) in &mut runs {
            eprintln!("ingest-bench: run {} of {}, {kind:?}, {} s", round + 1, args.runs, args.seconds);
            let receiver = match kind {
                ReceiverKind::Lineage => start_lineage(&lineage, &load, &logs)?,
                ReceiverKind::Otelcol => start_collector(collector.as_deref().expect("installed above"), &load, &logs)?,
            };
            intakes.push(measure(receiver, &replay, args, &load, &logs)?);
        }
    }
    let mut load = load;
    load.load_average.1 = load_average()?;
    let receivers: Vec<ReceiverResult> = runs
        .into_iter()
        .map(|(receiver, runs)| ReceiverResult {
            receiver,
            spans_per_cpu_second: Spread::of(runs.iter().map(|r| r.spans_per_cpu_second)).expect("runs ≥ 1"),
            cpu_percent: Spread::of(runs.iter().map(|r| r.cpu_percent)).expect("runs ≥ 1"),
            peak_rss_mib: Spread::of(runs.iter().map(|r| r.peak_rss_mib)).expect("runs ≥ 1"),
            runs,
        })
        .collect();
    let median = |kind| receivers.iter().find(|r| r.receiver == kind).map(|r| r.spans_per_cpu_second.median);
    let ratio = match (median(ReceiverKind::Lineage), median(ReceiverKind::Otelcol)) {
        (Some(lineage), Some(collector)) => Some(round(lineage / collector, 2)),
        _ => None,
    };
    let comparison = Comparison { receivers, ratio, load };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        println!("{}", markdown(&comparison));
    }
    // The book gets the runs either way, and says whether they count.
    if args.book {
        let path = stitch_paths::project_root().join("book").join("src").join(BOOK_FILE);
        std::fs::write(&path, markdown(&comparison)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    let unsaturated = unsaturated(&comparison);
    if !unsaturated.is_empty() {
        eprintln!(
            "ingest-bench: not saturated ({}): the load did not keep the receiver's core busy, or another \
             process shared that core; these figures are not the receiver's rate",
            unsaturated.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The runs whose receiver used less than [`SATURATED_PERCENT`] of its core.
fn unsaturated(c: &Comparison) -> Vec<String> {
    c.receivers
        .iter()
        .flat_map(|r| r.runs.iter().map(move |run| (r.receiver, run)))
        .filter(|(_, run)| run.cpu_percent < SATURATED_PERCENT)
        .map(|(kind, run)| format!("{kind:?} at {:.0}% of its core", run.cpu_percent))
        .collect()
}

fn markdown(c: &Comparison) -> String {
    let load = &c.load;
    let mut table = crate::table::Table::new(
        &[
            "receiver",
            "spans per CPU-second (min / median / max)",
            "CPU of its core",
            "peak RSS",
            "spans sent = accepted = classified",
        ],
        &[false, true, true, true, false],
    );
    for result in &c.receivers {
        let s = result.spans_per_cpu_second;
        let all_counted = result.runs.iter().all(|run| {
            run.spans_accepted == run.spans_sent && run.spans_classified.is_none_or(|c| c == run.spans_sent)
        });
        let sent: u64 = result.runs.iter().map(|run| run.spans_sent).sum();
        table.row(vec![
            match result.receiver {
                ReceiverKind::Lineage => "lineage (whole analysis)".to_owned(),
                ReceiverKind::Otelcol => format!("{} (otlp → debug)", load.collector),
            },
            format!("{} / {} / {}", thousands(s.min), thousands(s.median), thousands(s.max)),
            format!("{:.0}–{:.0}%", result.cpu_percent.min, result.cpu_percent.max),
            format!("{:.0} MiB", result.peak_rss_mib.max),
            format!("{} {}", thousands(sent as f64), if all_counted { "(every one)" } else { "(MISSING SPANS)" }),
        ]);
    }
    let mut out = format!(
        "<!-- generated by `cargo xtask ingest-bench --book`: do not edit -->\n\n{} runs of {} s per receiver, \
         alternating; each receiver pinned to CPU {}, the load on CPU {}: {}, {} spans ({} bytes) per request, \
         over {} keep-alive connections, {}.\n\n{}",
        load.runs,
        load.seconds,
        load.cores.measured,
        load.cores.others,
        load.generator,
        load.spans_per_request,
        load.request_bytes,
        load.connections,
        load.protocol,
        table.markdown()
    );
    if let Some(ratio) = c.ratio {
        out.push_str(&format!("\nlineage / collector, median spans per CPU-second: ×{ratio:.2}\n"));
    }
    out.push_str(&format!(
        "\nThe machine's load average was {:.2} at the start and {:.2} at the end.\n",
        load.load_average.0, load.load_average.1
    ));
    let unsaturated = unsaturated(c);
    if unsaturated.is_empty() {
        out.push_str(&format!("Every run kept its receiver's core at least {SATURATED_PERCENT:.0}% busy.\n"));
    } else {
        out.push_str(&format!(
            "**Not saturated** ({}): the load did not keep the receiver's core {SATURATED_PERCENT:.0}% busy, or \
             another process shared that core. These are the receivers' spans per CPU-second at part of a core, \
             not their rate at a full one; run `cargo xtask ingest-bench --book` on a quiet machine.\n",
            unsaturated.join(", ")
        ));
    }
    out
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// lineage and the load, both in release: the load must outrun the receiver.
fn build() -> Result<(PathBuf, PathBuf)> {
    eprintln!("ingest-bench: building lineage and otlp-replay (release)");
    let status =
        cargo(&[&"build", &"--release", &"--quiet", &"--package", &"lineage", &"--package", &"stitch-otlp-replay"])
            .stdout_to_stderr()
            .unchecked()
            .run()
            .context("running cargo build --release")?
            .status;
    if !status.success() {
        bail!("cargo build --release -p lineage -p stitch-otlp-replay failed (see the compiler output above)");
    }
    let release = stitch_components::process::target_dir().join("release");
    Ok((release.join("lineage"), release.join("otlp-replay")))
}

/// A receiver pinned to its core: where to send, and how to read what it took.
struct Receiver {
    kind: ReceiverKind,
    child: Child,
    traces_url: String,
    /// lineage's HTTP base, or the collector's metrics endpoint.
    counters_url: String,
}

impl Receiver {
    fn pid(&self) -> Result<u32> {
        // taskset execs the receiver: one process, one pid.
        self.child.pids().first().copied().with_context(|| format!("{} has no pid", self.child.name()))
    }
}

fn listening(child: &Child, ports: &[u16]) -> Result<()> {
    wait_until(child, Duration::from_secs(30), || {
        ports.iter().all(|&port| {
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
        })
    })
}

fn start_lineage(binary: &Path, load: &Load, logs: &Path) -> Result<Receiver> {
    let (grpc, http) = (free_port()?, free_port()?);
    let child = Child::start(
        "lineage",
        duct::cmd!(
            "taskset",
            "--cpu-list",
            load.cores.measured.to_string(),
            binary,
            "--grpc-port",
            grpc.to_string(),
            "--http-port",
            http.to_string(),
            "--log-level",
            "warn"
        ),
        &logs.join("lineage.log"),
    )?;
    listening(&child, &[grpc, http])?;
    Ok(Receiver {
        kind: ReceiverKind::Lineage,
        child,
        traces_url: format!("http://127.0.0.1:{http}/v1/traces"),
        counters_url: format!("http://127.0.0.1:{http}"),
    })
}

fn start_collector(binary: &Path, load: &Load, logs: &Path) -> Result<Receiver> {
    let (http, metrics) = (free_port()?, free_port()?);
    let config = collector_config_dir().join("ingest-bench.yaml");
    let child = Child::start(
        "collector",
        duct::cmd!("taskset", "--cpu-list", load.cores.measured.to_string(), binary, "--config", &config)
            .env("STITCH_OTLP_HTTP", format!("127.0.0.1:{http}"))
            .env("STITCH_METRICS_HOST", "127.0.0.1")
            .env("STITCH_METRICS_PORT", metrics.to_string()),
        &logs.join("collector.log"),
    )?;
    listening(&child, &[http, metrics])?;
    Ok(Receiver {
        kind: ReceiverKind::Otelcol,
        child,
        traces_url: format!("http://127.0.0.1:{http}/v1/traces"),
        counters_url: format!("http://127.0.0.1:{metrics}/metrics"),
    })
}

fn measure(mut receiver: Receiver, replay: &Path, args: &Args, load: &Load, logs: &Path) -> Result<Intake> {
    let pid = receiver.pid()?;
    let cpu_before = cpu_seconds(pid)?;
    let sent = send(replay, &receiver.traces_url, args, load, logs)?;
    // Every request was answered: what the receiver holds is all it will get.
    let cpu = cpu_seconds(pid)? - cpu_before;
    receiver.child.check_alive()?;
    let (accepted, classified) = match receiver.kind {
        ReceiverKind::Lineage => {
            post(&format!("{}/api/settle", receiver.counters_url))?;
            let report: lineage::Report =
                serde_json::from_str(&http_get(&format!("{}/api/report", receiver.counters_url))?)
                    .context("reading lineage's /api/report")?;
            (report.spans_received, Some(report.spans_settled))
        }
        ReceiverKind::Otelcol => {
            let metrics = Metrics::parse(&http_get(&receiver.counters_url)?)?;
            (accepted_spans(&metrics).with_context(|| format!("reading {}", receiver.counters_url))?, None)
        }
    };
    let rss_mib = peak_rss_kib(pid)? as f64 / 1024.0;
    receiver.child.stop(Duration::from_secs(5));
    if sent.spans == 0 || cpu <= 0.0 {
        bail!("{:?} took {} spans using {cpu:.2} s of CPU: nothing to measure", receiver.kind, sent.spans);
    }
    Ok(Intake {
        spans_per_cpu_second: round(accepted as f64 / cpu, 0),
        spans_per_second: round(accepted as f64 / sent.seconds, 0),
        cpu_percent: round(100.0 * cpu / sent.seconds, 1),
        peak_rss_mib: round(rss_mib, 1),
        spans_sent: sent.spans,
        spans_accepted: accepted,
        spans_classified: classified,
        requests: sent.requests,
    })
}

/// Runs the load on the other cores until it has sent for `--seconds`.
fn send(replay: &Path, url: &str, args: &Args, load: &Load, logs: &Path) -> Result<Sent> {
    let log = logs.join("otlp-replay.log");
    let output = duct::cmd!(
        "taskset",
        "--cpu-list",
        &load.cores.others,
        replay,
        "--url",
        url,
        "--seconds",
        args.seconds.to_string(),
        "--connections",
        args.connections.to_string(),
        "--traces-per-request",
        args.traces_per_request.to_string()
    )
    .stderr_path(&log)
    .stdout_capture()
    .unchecked()
    .run()
    .context("running otlp-replay")?;
    if !output.status.success() {
        bail!(
            "otlp-replay failed ({}); last lines of {}:\n{}",
            output.status,
            log.display(),
            stitch_components::process::log_tail(&log, 20)
        );
    }
    serde_json::from_slice(&output.stdout).context("reading what otlp-replay printed")
}

/// A POST without a body on loopback; anything but success is an error.
fn post(url: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let response = reqwest::Client::new().post(url).send().await.with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            bail!("POST {url} answered {}", response.status());
        }
        Ok(())
    })
}

/// The collector's count of spans its receiver accepted.
fn accepted_spans(metrics: &Metrics) -> Result<u64> {
    for name in ["otelcol_receiver_accepted_spans_total", "otelcol_receiver_accepted_spans"] {
        if metrics.series(name, &[]).next().is_some() {
            return Ok(metrics.sum(name, &[])? as u64);
        }
    }
    bail!("the collector exposes no otelcol_receiver_accepted_spans")
}

fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_spans_need_the_counter() {
        let collector = Metrics::parse(
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 1536\n\
             otelcol_receiver_refused_spans_total{receiver=\"otlp\",transport=\"http\"} 0\n",
        )
        .unwrap();
        assert_eq!(accepted_spans(&collector).unwrap(), 1536);
        let renamed = Metrics::parse("otelcol_receiver_spans_ok_total 1536\n").unwrap();
        assert!(accepted_spans(&renamed).is_err(), "a renamed counter is an error, not zero");
    }

    #[test]
    fn the_collector_config_receives_http_and_drops() {
        let config = std::fs::read_to_string(collector_config_dir().join("ingest-bench.yaml")).unwrap();
        assert!(config.contains("receivers: [otlp]") && config.contains("exporters: [debug]"), "{config}");
        for variable in ["STITCH_OTLP_HTTP", "STITCH_METRICS_HOST", "STITCH_METRICS_PORT"] {
            assert!(config.contains(&format!("${{env:{variable}}}")), "{variable}");
        }
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
