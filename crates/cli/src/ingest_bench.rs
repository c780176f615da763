//! `cargo xtask ingest-bench`: the same OTLP/gRPC load from telemetrygen into
//! lineage (release build, doing its whole analysis) and into the project's
//! collector (an `otlp` receiver and a debug exporter, nothing else), one
//! after the other, each pinned to one core with `taskset` while telemetrygen
//! runs on the others. Reports spans accepted per CPU-second of the receiver
//! (its rate per core), the wall-clock rate, its CPU use and its peak RSS.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use stitch_components::otelcol::{COLLECTOR_VERSION, Metrics, collector_config_dir, install_collector};
use stitch_components::process::{Child, cargo, free_port, http_get, log_tail, wait_until};

/// telemetrygen comes from the collector-contrib release the collector is built from.
pub const TELEMETRYGEN_MODULE: &str = "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen";

/// Span attributes telemetrygen adds to every span, besides its own few:
/// with them a span carries about ten, as an HTTP server span does.
const SPAN_ATTRIBUTES: [&str; 7] = [
    "http.request.method=\"POST\"",
    "http.route=\"/orders\"",
    "url.path=\"/orders\"",
    "server.address=\"127.0.0.1\"",
    "network.protocol.version=\"1.1\"",
    "user_agent.original=\"stitch-load/0.1\"",
    // Not the business key: telemetrygen would give every trace the same
    // value, which no real system does.
    "enduser.id=\"stitch\"",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds of load against each receiver.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// telemetrygen processes run at once, all on the load cores: each
    /// exports one batch at a time, so several keep requests in flight.
    #[arg(long, default_value_t = 4)]
    generators: usize,
    /// Workers (goroutines) per telemetrygen process.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Child spans per generated trace (plus one root).
    #[arg(long, default_value_t = 7)]
    child_spans: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// What one receiver did under the load.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Intake {
    /// Spans accepted per CPU-second of the receiver: its rate on one core.
    pub spans_per_s: f64,
    /// Peak resident set size (VmHWM).
    pub rss_mib: f64,
    /// Spans accepted per wall-clock second.
    pub wall_spans_per_s: f64,
    /// CPU time of the receiver / wall time, in percent of its one core.
    pub cpu_percent: f64,
    pub spans: u64,
}

#[derive(Debug, Serialize)]
struct Comparison {
    lineage: Intake,
    otelcol: Intake,
    /// lineage's spans per CPU-second over the collector's.
    ratio: f64,
    load: Load,
}

#[derive(Debug, Serialize)]
struct Load {
    generator: String,
    seconds: u64,
    generators: usize,
    workers: usize,
    spans_per_trace: usize,
    extra_span_attributes: usize,
    receiver_core: usize,
    load_cores: String,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let cores = std::thread::available_parallelism().context("counting CPUs")?.get();
    if cores < 2 {
        bail!("ingest-bench needs 2 CPUs or more: one for the receiver, the rest for telemetrygen (found {cores})");
    }
    require_taskset()?;
    let receiver_core = cores - 1;
    let load_cores = if cores == 2 { "0".to_owned() } else { format!("0-{}", cores - 2) };

    eprintln!("ingest-bench: building lineage (release)");
    let status = cargo(&[&"build", &"--release", &"--quiet", &"--package", &"lineage"])
        .stdout_to_stderr()
        .unchecked()
        .run()
        .context("running cargo build --release -p lineage")?
        .status;
    if !status.success() {
        bail!("cargo build --release -p lineage failed (see the compiler output above)");
    }
    let lineage = stitch_components::process::target_dir().join("release").join("lineage");
    let telemetrygen = install_telemetrygen()?;
    let collector = install_collector()?;
    let load = Load {
        generator: format!("telemetrygen v{COLLECTOR_VERSION}"),
        seconds: args.seconds,
        generators: args.generators,
        workers: args.workers,
        spans_per_trace: args.child_spans + 1,
        extra_span_attributes: SPAN_ATTRIBUTES.len(),
        receiver_core,
        load_cores,
    };
    let logs = stitch_paths::run_dir().join("ingest-bench");

    let lineage_run = {
        let (grpc, http) = (free_port()?, free_port()?);
        let receiver = Receiver::start(
            "lineage",
            duct::cmd!(
                "taskset",
                "-c",
                receiver_core.to_string(),
                &lineage,
                "--grpc-port",
                grpc.to_string(),
                "--http-port",
                http.to_string(),
                "--log-level",
                "warn"
            ),
            grpc,
            http,
            &["lineage_spans_received_total"],
            &logs.join("lineage.log"),
        )?;
        measure(receiver, &telemetrygen, args, &load, &logs)?
    };
    let collector_run = {
        let (grpc, metrics) = (free_port()?, free_port()?);
        let config = collector_config_dir().join("ingest-bench.yaml");
        let receiver = Receiver::start(
            "collector",
            duct::cmd!("taskset", "-c", receiver_core.to_string(), &collector, "--config", &config)
                .env("STITCH_OTLP_GRPC", format!("127.0.0.1:{grpc}"))
                .env("STITCH_METRICS_HOST", "127.0.0.1")
                .env("STITCH_METRICS_PORT", metrics.to_string()),
            grpc,
            metrics,
            &["otelcol_receiver_accepted_spans_total", "otelcol_receiver_accepted_spans"],
            &logs.join("collector.log"),
        )?;
        measure(receiver, &telemetrygen, args, &load, &logs)?
    };
    let comparison = Comparison {
        ratio: round(lineage_run.spans_per_s / collector_run.spans_per_s, 2),
        lineage: lineage_run,
        otelcol: collector_run,
        load,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print_table(&comparison);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(c: &Comparison) {
    let load = &c.load;
    println!(
        "\n{} → receiver pinned to CPU {}, load on CPU {}: {} s, {} processes × {} workers, traces of {} spans, \
         {} extra attributes per span\n",
        load.generator,
        load.receiver_core,
        load.load_cores,
        load.seconds,
        load.generators,
        load.workers,
        load.spans_per_trace,
        load.extra_span_attributes
    );
    println!(
        "{:<10} {:>16} {:>14} {:>8} {:>12} {:>10}",
        "receiver", "spans/CPU-second", "spans/s (wall)", "CPU", "spans", "peak RSS"
    );
    for (name, intake) in [("lineage", &c.lineage), ("otelcol", &c.otelcol)] {
        println!(
            "{name:<10} {:>16.0} {:>14.0} {:>7.0}% {:>12} {:>6.1} MiB",
            intake.spans_per_s, intake.wall_spans_per_s, intake.cpu_percent, intake.spans, intake.rss_mib
        );
    }
    println!("\nlineage / otelcol, spans per CPU-second: {:.2}", c.ratio);
}

/// A receiver pinned to its core, with the counter of spans it accepted.
struct Receiver {
    child: Child,
    grpc_port: u16,
    metrics_url: String,
    accepted_names: &'static [&'static str],
}

impl Receiver {
    fn start(
        name: &str,
        expression: duct::Expression,
        grpc_port: u16,
        metrics_port: u16,
        accepted_names: &'static [&'static str],
        log: &Path,
    ) -> Result<Receiver> {
        let child = Child::start(name, expression, log)?;
        wait_until(&child, Duration::from_secs(30), || {
            [grpc_port, metrics_port].iter().all(|&port| {
                std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
            })
        })?;
        Ok(Receiver {
            child,
            grpc_port,
            metrics_url: format!("http://127.0.0.1:{metrics_port}/metrics"),
            accepted_names,
        })
    }

    fn pid(&self) -> Result<u32> {
        // taskset execs the receiver: one process, one pid.
        self.child.pids().first().copied().with_context(|| format!("{} has no pid", self.child.name()))
    }

    fn accepted(&self) -> Result<u64> {
        let metrics = Metrics::parse(&http_get(&self.metrics_url)?)?;
        accepted_spans(&metrics, self.accepted_names).with_context(|| format!("reading {}", self.metrics_url))
    }
}

/// The accepted-spans counter under the first of `names` that has series.
fn accepted_spans(metrics: &Metrics, names: &[&str]) -> Result<u64> {
    for name in names {
        if metrics.series(name, &[]).next().is_some() {
            return Ok(metrics.sum(name, &[])? as u64);
        }
    }
    bail!("none of {} is exposed", names.join(", "))
}

fn measure(mut receiver: Receiver, telemetrygen: &Path, args: &Args, load: &Load, logs: &Path) -> Result<Intake> {
    let pid = receiver.pid()?;
    let name = receiver.child.name().to_owned();
    let endpoint = format!("127.0.0.1:{}", receiver.grpc_port);
    // Each receiver starts fresh, so its counter holds this load's spans only.
    let cpu_before = cpu_seconds(pid)?;
    let started = Instant::now();
    let mut command: Vec<String> =
        ["-c", &load.load_cores, &telemetrygen.display().to_string(), "traces"].iter().map(|s| s.to_string()).collect();
    command.extend(
        [
            "--otlp-endpoint",
            &endpoint,
            "--otlp-insecure",
            "--duration",
            &format!("{}s", args.seconds),
            "--rate",
            "0",
            "--workers",
            &args.workers.to_string(),
            "--child-spans",
            &args.child_spans.to_string(),
            "--batch-size",
            "512",
            "--service",
            "gateway",
        ]
        .map(str::to_owned),
    );
    for attribute in SPAN_ATTRIBUTES {
        command.extend(["--telemetry-attributes".to_owned(), attribute.to_owned()]);
    }
    eprintln!("ingest-bench: {} s of telemetrygen ×{} into {name}", args.seconds, args.generators);
    let generators = (0..args.generators.max(1))
        .map(|i| {
            let log = logs.join(format!("telemetrygen-{name}-{i}.log"));
            let handle = duct::cmd("taskset", &command)
                .stdin_null()
                .stderr_to_stdout()
                .stdout_path(&log)
                .unchecked()
                .start()
                .context("starting telemetrygen")?;
            Ok((handle, log))
        })
        .collect::<Result<Vec<_>>>()?;
    for (handle, log) in generators {
        let output = handle.wait().context("waiting for telemetrygen")?;
        if !output.status.success() {
            bail!(
                "telemetrygen against {name} failed ({}); last lines of {}:\n{}",
                output.status,
                log.display(),
                log_tail(&log, 20)
            );
        }
    }
    // Let the last export land before reading the counters.
    std::thread::sleep(Duration::from_millis(500));
    receiver.child.check_alive()?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu_before;
    let spans = receiver.accepted()?;
    let rss_mib = peak_rss_kib(pid)? as f64 / 1024.0;
    receiver.child.stop(Duration::from_secs(5));
    if spans == 0 || cpu <= 0.0 {
        bail!("{name} accepted {spans} spans using {cpu:.2} s of CPU: nothing to measure; see {}", logs.display());
    }
    Ok(Intake {
        spans_per_s: round(spans as f64 / cpu, 0),
        rss_mib: round(rss_mib, 1),
        wall_spans_per_s: round(spans as f64 / wall, 0),
        cpu_percent: round(100.0 * cpu / wall, 1),
        spans,
    })
}

fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

fn require_taskset() -> Result<()> {
    match duct::cmd!("taskset", "--version").stdin_null().stdout_null().stderr_null().unchecked().run() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => bail!("`taskset --version` failed ({})", output.status),
        Err(err) => Err(err).context("`taskset` (util-linux) is needed to pin each receiver to one core"),
    }
}

/// User + system CPU time of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = rustix::param::clock_ticks_per_second();
    if ticks == 0 {
        bail!("the kernel reports 0 clock ticks per second");
    }
    let (utime, stime) = parse_stat_times(&stat).with_context(|| format!("unexpected {path}: {stat}"))?;
    Ok((utime + stime) as f64 / ticks as f64)
}

/// utime and stime (fields 14 and 15) in clock ticks; the command name
/// before them may hold spaces and parentheses, so split after the last ')'.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// Peak resident set size, from `/proc/PID/status`.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {path}"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:").trim().strip_suffix("kB")?.trim().parse().ok()
}

/// telemetrygen, built with `go install` from the contrib release the
/// collector is built from, and cached beside it.
pub fn install_telemetrygen() -> Result<PathBuf> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _guard = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = stitch_paths::cache_dir().join(format!("telemetrygen-v{COLLECTOR_VERSION}"));
    let binary = dir.join("bin").join("telemetrygen");
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join("install.log");
    stitch_components::otelcol::require_go()?;
    stitch_components::otelcol::go_step(
        &format!("building telemetrygen v{COLLECTOR_VERSION} from the Go module proxy (first run only)"),
        duct::cmd!("go", "install", format!("{TELEMETRYGEN_MODULE}@v{COLLECTOR_VERSION}"))
            .env("GOBIN", dir.join("bin")),
        &log,
    )?;
    if !binary.is_file() {
        bail!("go install finished but wrote no {}; see {}", binary.display(), log.display());
    }
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_survive_odd_command_names() {
        let stat = "4242 (otel col) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 122 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_times(stat), Some((731, 122)));
        assert_eq!(parse_stat_times("4242 (cut) S 1"), None);
    }

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        let status = "Name:\tlineage\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(51_200));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn accepted_spans_need_the_counter() {
        let collector = Metrics::parse(
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 1536\n\
             otelcol_receiver_refused_spans_total{receiver=\"otlp\",transport=\"grpc\"} 0\n",
        )
        .unwrap();
        let names = ["otelcol_receiver_accepted_spans_total", "otelcol_receiver_accepted_spans"];
        assert_eq!(accepted_spans(&collector, &names).unwrap(), 1536);
        let renamed = Metrics::parse("otelcol_receiver_spans_ok_total 1536\n").unwrap();
        assert!(accepted_spans(&renamed, &names).is_err(), "a renamed counter is an error, not zero");
    }

    #[test]
    fn the_collector_config_receives_and_drops() {
        let config = std::fs::read_to_string(collector_config_dir().join("ingest-bench.yaml")).unwrap();
        assert!(config.contains("receivers: [otlp]") && config.contains("exporters: [debug]"), "{config}");
        for variable in ["STITCH_OTLP_GRPC", "STITCH_METRICS_HOST", "STITCH_METRICS_PORT"] {
            assert!(config.contains(&format!("${{env:{variable}}}")), "{variable}");
        }
    }
}
