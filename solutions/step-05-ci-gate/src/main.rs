//! The judge: `step-05-ci-gate[-solution] --baseline ci/gate-baseline.toml RUN.json…`
//! prints, for each recorded run, one JSON line with the violations the
//! lesson's gate found. `cargo xtask check step-5` runs it on each flow.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let usage = concat!("usage: ", env!("CARGO_BIN_NAME"), " --baseline BASELINE.toml RUN.json…");
    if args.next().is_none_or(|flag| flag != "--baseline") {
        bail!("{usage}");
    }
    let baseline = args.next().map(PathBuf::from).context(usage)?;
    let baseline = stitch_model::Baseline::read(&baseline)?;
    let runs: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if runs.is_empty() {
        bail!("no run to judge; {usage}");
    }
    for path in runs {
        let judgement = step_05_ci_gate_solution::judge::judge(&path, &baseline)?;
        println!("{}", serde_json::to_string(&judgement)?);
    }
    Ok(())
}
