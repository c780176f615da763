use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lineage::{Config, Lineage, parse_duration};

const PORTS: &str = "\
Ports (all on --bind):
  --grpc-port (4317)  OTLP/gRPC TraceService, gzip accepted.
  --http-port (4318)  one HTTP server for everything else:
      POST /v1/traces               OTLP/HTTP, protobuf or JSON, gzip accepted
      GET  /metrics                 Prometheus text exposition (lineage_*)
      GET  /api/report              counters as JSON
      GET  /api/traces/{id}[/dump]  span tree as JSON [or text]
      GET  /api/requests/{key}[/dump]  fragments of one business key
      POST /api/settle, /api/reset  settle everything open / forget everything
                                    (loopback peers only, see --allow-remote-reset)
      GET  /, /traces/{id}, /requests/{key}  HTML waterfalls (no script)
  Port 0 picks a free port; the addresses are printed at start.

Every flag can also be set through the environment variable shown.";

const LONG_ABOUT: &str = concat!(
    "Receives every span over OTLP, rebuilds traces and measures the orphan-span rate.\n\n",
    include_str!("metric.md")
);

#[derive(Debug, Parser)]
#[command(
    name = "lineage",
    version,
    about = "Receives every span over OTLP, rebuilds traces and measures the orphan-span rate.",
    long_about = LONG_ABOUT,
    after_long_help = PORTS
)]
struct Args {
    /// Address both servers listen on; 0.0.0.0 exposes them beyond this host.
    #[arg(long, env = "LINEAGE_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,

    /// OTLP/gRPC port (TraceService/Export).
    #[arg(long, env = "LINEAGE_GRPC_PORT", default_value_t = lineage::DEFAULT_GRPC_PORT)]
    grpc_port: u16,

    /// HTTP port: OTLP/HTTP (POST /v1/traces), /metrics, /api/*, HTML pages.
    #[arg(long, env = "LINEAGE_HTTP_PORT", default_value_t = lineage::DEFAULT_HTTP_PORT)]
    http_port: u16,

    /// Service whose root spans are requests; repeat or comma-separate for several [default: gateway].
    #[arg(long = "entry-service", env = "LINEAGE_ENTRY_SERVICES", value_delimiter = ',')]
    entry_services: Vec<String>,

    /// Span attribute holding the business key (string or int values).
    #[arg(long, env = "LINEAGE_BUSINESS_KEY", default_value = "order.id")]
    business_key: String,

    /// A trace settles after this long without a new span (e.g. 2s, 500ms).
    #[arg(long, env = "LINEAGE_QUIET_PERIOD", default_value = "2s", value_parser = parse_duration)]
    quiet_period: Duration,

    /// A trace settles at the latest this long after its first span arrived.
    #[arg(long, env = "LINEAGE_MAX_AGE", default_value = "30s", value_parser = parse_duration)]
    max_age: Duration,

    /// Traces held at most; the oldest settled ones are evicted first.
    #[arg(long, env = "LINEAGE_MAX_TRACES", default_value_t = Config::default().max_traces)]
    max_traces: usize,

    /// Spans held at most (about 100-200 bytes each).
    #[arg(long, env = "LINEAGE_MAX_SPANS", default_value_t = Config::default().max_spans)]
    max_spans: usize,

    /// Largest OTLP payload accepted, before and after decompression (e.g. 8MiB, 65536).
    #[arg(long, env = "LINEAGE_MAX_PAYLOAD", default_value = "8MiB", value_parser = parse_size)]
    max_payload: usize,

    /// Browser origin allowed to export to POST /v1/traces (e.g. http://127.0.0.1:8080);
    /// repeat or comma-separate for several [default: none, every page is refused].
    #[arg(long = "cors-origin", env = "LINEAGE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    cors_origins: Vec<String>,

    /// Let peers that are not loopback POST /api/reset and /api/settle (by default
    /// they get 403); with --bind 0.0.0.0 anyone who reaches the port could then
    /// wipe every measurement. Web pages are refused either way.
    #[arg(long, env = "LINEAGE_ALLOW_REMOTE_RESET")]
    allow_remote_reset: bool,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "LINEAGE_LOG", default_value = "info")]
    log_level: String,
}

/// An origin as browsers send it: scheme, host and port, nothing after.
fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.trim().trim_end_matches('/');
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(format!("not an origin: {text:?} (try http://127.0.0.1:8080)"));
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '*']) {
        return Err(format!("not an origin: {text:?}: scheme://host[:port], no path and no wildcard"));
    }
    Ok(origin.to_owned())
}

fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number.parse().map_err(|_| format!("not a size: {text:?} (try 8MiB)"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!("unknown unit {other:?} in {text:?}: use KiB, MiB or GiB"));
        }
    };
    value.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("invalid --log-level {:?}", args.log_level))?,
        )
        .init();

    let mut entry_services: Vec<String> =
        args.entry_services.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    if entry_services.is_empty() {
        entry_services = Config::default().entry_services;
    }
    let config = Config {
        grpc_addr: SocketAddr::new(args.bind, args.grpc_port),
        http_addr: SocketAddr::new(args.bind, args.http_port),
        entry_services,
        business_key: args.business_key,
        quiet_period: args.quiet_period,
        max_age: args.max_age,
        max_traces: args.max_traces,
        max_spans: args.max_spans,
        max_payload_bytes: args.max_payload,
        cors_origins: args.cors_origins,
        allow_remote_reset: args.allow_remote_reset,
    };
    let lineage = Lineage::start(config.clone()).await?;
    let http = lineage.http_endpoint();
    println!("lineage: OTLP/gRPC   {}", lineage.otlp_grpc_endpoint());
    println!("lineage: OTLP/HTTP   {http}/v1/traces");
    println!("lineage: metrics     {http}/metrics");
    println!("lineage: report      {http}/api/report");
    println!("lineage: pages       {http}/");
    println!(
        "lineage: entry services {}, business key {}, quiet period {:?}, max age {:?}",
        config.entry_services.join(", "),
        config.business_key,
        config.quiet_period,
        config.max_age
    );
    if config.allow_remote_reset {
        println!("lineage: any peer may reset and settle (--allow-remote-reset)");
    }
    if !config.cors_origins.is_empty() {
        println!("lineage: pages may export from {}", config.cors_origins.join(", "));
    }
    stop_signal().await;
    println!("lineage: shutting down");
    lineage.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn origins() {
        assert_eq!(parse_origin("http://127.0.0.1:8080/"), Ok("http://127.0.0.1:8080".to_owned()));
        assert!(parse_origin("127.0.0.1:8080").is_err());
        assert!(parse_origin("http://127.0.0.1:8080/app").is_err());
        assert!(parse_origin("http://*.example.com").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
