//! The entry point of every step binary: parses one service's command line,
//! starts its telemetry and runs it until a signal.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::Boundaries;
use crate::kafka::KafkaArgs;
use crate::peek::PeekArgs;

/// One of the workshop's three services. Each runs as its own process with its
/// own `service.name`.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    role: RoleArgs,
    /// OTLP/gRPC endpoint the spans are exported to (lineage, or a collector).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", default_value = "http://127.0.0.1:4317")]
    otlp_endpoint: String,
    /// Log filter (EnvFilter syntax); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = stitch_telemetry::DEFAULT_FILTER)]
    log: String,
    /// `off`: no OpenTelemetry at all (no layer, no exporter), only logs:
    /// what the soak compares against to measure tracing's cost.
    /// `two-processors` and `default-layer`: on, with one of the cuts of
    /// "What tracing costs" undone (`cargo xtask overhead --cuts`).
    #[arg(long, global = true, env = "STITCH_TRACING", default_value = "on")]
    tracing: stitch_telemetry::Tracing,
    /// Spans the batch processor may hold between exports; past it, new
    /// spans are dropped (and counted on `/metrics`).
    #[arg(long, global = true, default_value_t = stitch_telemetry::MAX_QUEUE_SIZE, value_parser = queue_size)]
    span_queue: usize,
}

#[derive(Subcommand, Debug)]
enum RoleArgs {
    /// The entry service: `POST /orders` and `POST /batches` call the worker over HTTP.
    Gateway {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Base URL of the worker.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        worker_url: String,
        #[command(flatten)]
        edge: crate::gateway::EdgeArgs,
    },
    /// Handles `POST /work`, then hands deferred work to a task that publishes to Kafka;
    /// `POST /batches` runs a batch's items in a task, one after another.
    Worker {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Processes the order messages in a consumer group.
    Consumer {
        /// Serves `GET /healthz` (200 once partitions are assigned).
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: SocketAddr,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Consumer group id.
        #[arg(long, default_value = "stitch-consumer")]
        group: String,
    },
    /// Prints the newest messages of the orders topic: partition, offset, key
    /// and each header (`traceparent` among them). Joins no group, commits nothing.
    Peek(PeekArgs),
}

/// A queue of at least one span: with none, every span would be dropped.
fn queue_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 would drop every span: give at least 1".to_owned()),
        Ok(size) => Ok(size),
        Err(err) => Err(format!("{text:?} is not a number of spans: {err}")),
    }
}

/// Parses the command line and runs one service until SIGINT/SIGTERM.
pub fn run(step: &str, boundaries: Boundaries) -> ExitCode {
    run_with(step, boundaries, |_| {})
}

/// [`run`], with the telemetry options changed by `telemetry` before the
/// pipeline starts. It exists for `traps/`, which reproduce the silent failures
/// of the book (`book/src/silent-failures.md`) on the final flow; the steps
/// always run with the defaults.
pub fn run_with(step: &str, boundaries: Boundaries, telemetry: fn(&mut stitch_telemetry::Options)) -> ExitCode {
    let cli = Cli::parse();
    let service = match &cli.role {
        // Not a service: no telemetry, no runtime.
        RoleArgs::Peek(args) => return peek(args),
        RoleArgs::Gateway { .. } => crate::Role::Gateway.name(),
        RoleArgs::Worker { .. } => crate::Role::Worker.name(),
        RoleArgs::Consumer { .. } => crate::Role::Consumer.name(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{service}: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let mut options = stitch_telemetry::Options {
            service: service.to_owned(),
            otlp_endpoint: cli.otlp_endpoint.clone(),
            filter: cli.log.clone(),
            resource: vec![("stitch.step".to_owned(), step.to_owned())],
            install_propagator: true,
            export_delay: Some(stitch_telemetry::EXPORT_DELAY),
            tracing: cli.tracing,
            max_queue_size: cli.span_queue,
        };
        telemetry(&mut options);
        let telemetry = stitch_telemetry::init(&options)?;
        let served = match cli.role {
            RoleArgs::Gateway { listen, worker_url, edge } => {
                crate::gateway::serve(listen, worker_url, edge, boundaries).await
            }
            RoleArgs::Worker { listen, kafka } => crate::worker::serve(listen, kafka, boundaries).await,
            RoleArgs::Consumer { listen, kafka, group } => {
                crate::consumer::serve(listen, kafka, group, boundaries).await
            }
            RoleArgs::Peek(_) => unreachable!("peek returned above"),
        };
        telemetry.shutdown().await;
        served
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{service}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn peek(args: &PeekArgs) -> ExitCode {
    match crate::peek::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("peek: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Launch;

    fn parse(launch: &Launch) -> Cli {
        let args = launch.args("http://127.0.0.1:4999");
        Cli::try_parse_from(std::iter::once("flow".to_owned()).chain(args))
            .expect("the parser reads what Launch writes")
    }

    #[test]
    fn every_launch_parses_back_to_its_values() {
        let listen: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let gateway = parse(&Launch::Gateway { listen, worker_url: "http://127.0.0.1:7002".to_owned() });
        assert_eq!(gateway.otlp_endpoint, "http://127.0.0.1:4999");
        assert!(
            matches!(&gateway.role, RoleArgs::Gateway { listen: l, worker_url, .. } if *l == listen && worker_url == "http://127.0.0.1:7002")
        );
        let worker = parse(&Launch::Worker { listen, kafka: "127.0.0.1:9999".to_owned() });
        assert!(
            matches!(&worker.role, RoleArgs::Worker { listen: l, kafka } if *l == listen && kafka.bootstrap == "127.0.0.1:9999")
        );
        let consumer = parse(&Launch::Consumer { listen, kafka: "127.0.0.1:9999".to_owned(), group: "g-1".to_owned() });
        assert!(matches!(
            &consumer.role,
            RoleArgs::Consumer { listen: l, kafka, group } if *l == listen && kafka.bootstrap == "127.0.0.1:9999" && group == "g-1"
        ));
    }

    #[test]
    fn peek_reads_the_orders_topic_of_the_default_broker() {
        let cli = Cli::try_parse_from(["flow", "peek"]).unwrap();
        assert!(matches!(
            &cli.role,
            RoleArgs::Peek(PeekArgs { kafka, last: 5 }) if kafka.bootstrap == "127.0.0.1:9092" && kafka.topic == "orders"
        ));
        let cli = Cli::try_parse_from(["flow", "peek", "--last", "2", "--kafka", "127.0.0.1:9999"]).unwrap();
        assert!(
            matches!(&cli.role, RoleArgs::Peek(PeekArgs { kafka, last: 2 }) if kafka.bootstrap == "127.0.0.1:9999")
        );
        let refused = Cli::try_parse_from(["flow", "peek", "--last", "0"]).unwrap_err().to_string();
        assert!(refused.contains("--last"), "{refused}");
    }
}
