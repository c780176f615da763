//! `flame`: reads `perf script` output on stdin, writes a flame graph (SVG)
//! and prints, as JSON, where the on-CPU samples went by what tracing does
//! (span creation, attributes, span end, the batch processor, OTLP
//! encoding, the export's gRPC) and what the service does besides.

use std::io::{BufReader, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use inferno::collapse::Collapse as _;
use serde::Serialize;

#[derive(Parser)]
#[command(about = "perf script output (stdin) into a flame graph and a breakdown by what tracing does")]
struct Args {
    /// Where the SVG goes.
    #[arg(long)]
    svg: PathBuf,
    /// Where the folded stacks go (one line per stack: frames;…;frames count).
    #[arg(long)]
    folded: Option<PathBuf>,
    /// The picture's title.
    #[arg(long, default_value = "Flame graph")]
    title: String,
}

/// What a stack is spent on, first match wins: the order goes from the
/// most specific frames to the broadest.
const CATEGORIES: [(&str, &[&str]); 9] = [
    ("log lines (the fmt layer; with tracing off too)", &["tracing_subscriber::fmt"]),
    ("OTLP encoding (prost)", &["prost::", "opentelemetry_proto::transform", "opentelemetry_proto::tonic"]),
    ("export: gRPC and HTTP/2 (tonic, h2)", &["tonic::", "h2::", "tower::buffer"]),
    ("batch processor", &["BatchSpanProcessor", "batch_span_processor", "OpenTelemetry.Tr"]),
    ("span end (on_close, SpanData)", &["on_close", "on_end", "SpanData", "opentelemetry_sdk::trace::span::Span"]),
    (
        "attribute recording (on_record, visitors)",
        &["on_record", "SpanAttributeVisitor", "record_str", "record_debug", "record_u64", "record_i64"],
    ),
    (
        "span creation (on_new_span, ids, sampler)",
        &["on_new_span", "new_span", "build_with_context", "SdkTracer", "RandomIdGenerator", "Sampler"],
    ),
    ("context and propagation", &["inject", "extract", "Propagator", "propagation", "opentelemetry::context", "w3c::"]),
    (
        "other tracing: the OpenTelemetry layer, the registry (with tracing off too)",
        &["tracing_opentelemetry", "opentelemetry", "tracing_subscriber", "tracing_core", "tracing::span"],
    ),
];

const REST: &str = "the service's own work (HTTP, JSON, Kafka, runtime)";

/// perf's `cpu-clock` counts nanoseconds: a stack's weight is the CPU time
/// its samples stand for.
#[derive(Serialize)]
struct Share {
    what: String,
    cpu_ms: f64,
    percent: f64,
}

#[derive(Serialize)]
struct Breakdown {
    cpu_ms: f64,
    shares: Vec<Share>,
}

fn category(stack: &str) -> &'static str {
    CATEGORIES
        .iter()
        .find(|(_, patterns)| patterns.iter().any(|pattern| stack.contains(pattern)))
        .map_or(REST, |(name, _)| name)
}

fn breakdown(folded: &str) -> anyhow::Result<Breakdown> {
    let mut counts: Vec<(&str, u64)> = CATEGORIES.iter().map(|(name, _)| (*name, 0)).collect();
    counts.push((REST, 0));
    let mut samples = 0;
    for line in folded.lines().filter(|line| !line.trim().is_empty()) {
        let (stack, count) = line.rsplit_once(' ').with_context(|| format!("not a folded stack: {line:?}"))?;
        let count: u64 = count.parse().with_context(|| format!("not a sample count: {line:?}"))?;
        let what = category(stack);
        counts.iter_mut().find(|(name, _)| *name == what).expect("every category is counted").1 += count;
        samples += count;
    }
    if samples == 0 {
        bail!("perf recorded no sample: nothing ran on the CPU while it recorded");
    }
    let shares = counts
        .into_iter()
        .map(|(what, n)| Share {
            what: what.to_owned(),
            cpu_ms: (n as f64 / 1e5).round() / 10.0,
            percent: (1000.0 * n as f64 / samples as f64).round() / 10.0,
        })
        .collect();
    Ok(Breakdown { cpu_ms: (samples as f64 / 1e5).round() / 10.0, shares })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut folded = Vec::new();
    inferno::collapse::perf::Folder::from(inferno::collapse::perf::Options::default())
        .collapse(BufReader::new(std::io::stdin().lock()), &mut folded)
        .context("folding perf's stacks")?;
    let folded = String::from_utf8(folded).context("folded stacks are not UTF-8")?;
    let result = breakdown(&folded)?;
    if let Some(path) = &args.folded {
        std::fs::write(path, &folded).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = args.title.clone();
    options.count_name = "ns of CPU".to_owned();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg).context("drawing the flame graph")?;
    std::fs::write(&args.svg, svg).with_context(|| format!("writing {}", args.svg.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&result)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_fall_in_the_most_specific_category() {
        let folded = "gateway;tokio;tracing_opentelemetry::layer::on_new_span;opentelemetry_sdk::SdkTracer::build 30000000\n\
                      gateway;OpenTelemetry.Tr;BatchSpanProcessor::run;prost::encoding::encode 20000000\n\
                      gateway;tokio;hyper::proto::h1::dispatch 50000000\n";
        let result = breakdown(folded).unwrap();
        assert_eq!(result.cpu_ms, 100.0);
        let share = |what: &str| result.shares.iter().find(|s| s.what.starts_with(what)).unwrap().percent;
        assert_eq!(share("span creation"), 30.0);
        assert_eq!(share("OTLP encoding"), 20.0);
        assert_eq!(share("the service's own work"), 50.0);
        let logged = breakdown("gateway;tracing_subscriber::fmt::Layer::on_new_span;record_debug 10\n").unwrap();
        assert_eq!(logged.shares[0].percent, 100.0, "a log line's formatting is the log layer's, not tracing's");
    }

    #[test]
    fn nothing_recorded_is_an_error() {
        assert!(breakdown("").is_err());
        assert!(breakdown("a;b notanumber\n").is_err());
    }
}
