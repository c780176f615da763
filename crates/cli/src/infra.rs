//! `cargo xtask up` / `down`: Kafka and lineage in the background, on the
//! ports the services use by default, for running a step by hand.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use stitch_components::kafka::{Broker, BrokerKind, BrokerOptions};
use stitch_components::process::{Child, Signal, alive, binary, build_broker, cargo_build, signal, wait_until};

const KAFKA_PORT: u16 = 9092;
const LINEAGE_GRPC_PORT: u16 = 4317;
const LINEAGE_HTTP_PORT: u16 = 4318;

fn state_dir() -> PathBuf {
    stitch_paths::run_dir().join("up")
}

/// One line per process `up` started: `name pid`.
fn pid_file() -> PathBuf {
    state_dir().join("pids")
}

/// What `up` started, from its pid file; nothing when `up` never ran (or
/// `down` already removed the file).
fn read_pids() -> anyhow::Result<Vec<(String, u32)>> {
    let path = pid_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    parse_pids(&text).with_context(|| format!("in {}", path.display()))
}

/// `name pid` lines.
fn parse_pids(text: &str) -> anyhow::Result<Vec<(String, u32)>> {
    text.lines()
        .map(|line| {
            let parsed = line.split_once(' ').and_then(|(name, pid)| Some((name.to_owned(), pid.parse().ok()?)));
            parsed.with_context(|| format!("{line:?} is not `name pid`"))
        })
        .collect()
}

fn record(name: &str, pids: &[u32]) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(state_dir())?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(pid_file())?;
    for pid in pids {
        writeln!(file, "{name} {pid}")?;
    }
    Ok(())
}

pub fn up(kafka: BrokerKind) -> anyhow::Result<ExitCode> {
    let running: Vec<_> = read_pids()?.into_iter().filter(|(_, pid)| alive(*pid)).collect();
    if !running.is_empty() {
        let names: Vec<_> = running.iter().map(|(name, pid)| format!("{name} (pid {pid})")).collect();
        println!("already up: {}. `cargo xtask down` stops them.", names.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    let _ = std::fs::remove_file(pid_file());
    cargo_build(&["lineage"])?;
    build_broker()?;
    let logs = state_dir();

    let lineage = Child::start(
        "lineage",
        duct::cmd!(
            binary("lineage"),
            "--grpc-port",
            LINEAGE_GRPC_PORT.to_string(),
            "--http-port",
            LINEAGE_HTTP_PORT.to_string()
        ),
        &logs.join("lineage.log"),
    )?;
    wait_until(&lineage, Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", LINEAGE_HTTP_PORT)).is_ok()
    })?;
    record("lineage", &lineage.detach())?;

    let broker = Broker::start(&BrokerOptions::in_logs(kafka, KAFKA_PORT, &logs));
    let broker = match broker {
        Ok(broker) => broker,
        Err(err) => {
            // Leave nothing half up.
            let _ = down();
            return Err(err);
        }
    };
    record("kafka", &broker.detach())?;

    println!(
        "up: Kafka ({kafka}) on 127.0.0.1:{KAFKA_PORT}, lineage on 127.0.0.1:{LINEAGE_GRPC_PORT} (OTLP/gRPC) and http://127.0.0.1:{LINEAGE_HTTP_PORT} (OTLP/HTTP, report, pages)"
    );
    println!(
        "logs in {}; run a step with e.g. `cargo run -p step-01-http -- gateway`; stop with `cargo xtask down`",
        logs.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn down() -> anyhow::Result<ExitCode> {
    let pids = read_pids()?;
    for (_, pid) in &pids {
        signal(*pid, Signal::TERM);
    }
    let Ok(_all_stopped) =
        stitch_components::process::poll(Duration::from_secs(10), Duration::from_millis(100), || {
            Ok::<_, std::convert::Infallible>((!pids.iter().any(|(_, pid)| alive(*pid))).then_some(()))
        });
    for (name, pid) in &pids {
        if alive(*pid) {
            eprintln!("{name} (pid {pid}) ignored SIGTERM; killing it");
            signal(*pid, Signal::KILL);
        }
    }
    if pid_file().exists() {
        std::fs::remove_file(pid_file()).with_context(|| format!("removing {}", pid_file().display()))?;
    }
    println!("down: {} process(es) stopped", pids.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pid_file_line_that_is_not_name_pid_is_an_error() {
        assert_eq!(
            super::parse_pids("lineage 12\nkafka 34\n").unwrap(),
            [("lineage".to_owned(), 12), ("kafka".to_owned(), 34)]
        );
        let err = super::parse_pids("lineage 12\nkafka\n").unwrap_err();
        assert!(err.to_string().contains("\"kafka\""), "{err}");
    }
}
