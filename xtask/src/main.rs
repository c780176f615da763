//! `cargo xtask`: the workshop's command line, as a thin dispatcher.
//!
//! `doctor` is answered here, from a binary that depends on nothing heavy, so
//! that a fresh clone learns what it lacks before it compiles librdkafka.
//! Every other command is handed, arguments unchanged, to the workshop's
//! command line (`crates/cli`, the `stitch` binary), which cargo builds on
//! first use.

mod doctor;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("doctor") {
        if args.len() > 1 {
            eprintln!("error: `cargo xtask doctor` takes no arguments");
            return ExitCode::from(2);
        }
        return doctor::run();
    }
    forward(&args)
}

/// Runs `stitch` with `args`, built by the same cargo that runs this.
fn forward(args: &[String]) -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["run", "--package", "stitch-cli", "--bin", "stitch", "--"]).args(args);
    // When this started, for a command that times itself from the first
    // keystroke (`ci --record-time`): the build of `stitch` counts too.
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        command.env("STITCH_XTASK_STARTED_MS", now.as_millis().to_string());
    }
    // The workspace root, wherever `cargo xtask` was typed.
    command.current_dir(stitch_paths::project_root());
    exec(command)
}

#[cfg(unix)]
fn exec(mut command: Command) -> ExitCode {
    use std::os::unix::process::CommandExt as _;
    // Replaces this process: signals (Ctrl-C) reach the command as they
    // would have reached `cargo xtask`.
    let err = command.exec();
    eprintln!("error: could not run cargo: {err}");
    ExitCode::FAILURE
}

#[cfg(not(unix))]
fn exec(mut command: Command) -> ExitCode {
    match command.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1) as u8),
        Err(err) => {
            eprintln!("error: could not run cargo: {err}");
            ExitCode::FAILURE
        }
    }
}
