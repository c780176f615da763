//! A traced service under load, sampled by `perf`: the final flow in
//! release, pinned as `overhead` pins it, an open loop at a steady rate, and
//! `perf record` on the gateway and the worker meanwhile (call stacks
//! unwound from DWARF, so no rebuild with frame pointers is needed).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::overhead::{pin_flow, warm_up};
use crate::soak::drive::{Rate, open_loop, progress};
use crate::soak::overhead::SWITCHED;
use stitch_runner::flow::Profile;

/// What a profile records.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub kafka: String,
    pub rate: Rate,
    /// Samples per second and per CPU.
    pub frequency: u32,
    pub services_core: usize,
    pub others: String,
    /// Where `perf record` writes.
    pub output: PathBuf,
}

/// Fails with how to get it when `perf record` cannot run here.
pub fn require_perf() -> anyhow::Result<()> {
    let probe = duct::cmd!("perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true")
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run();
    match probe {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => bail!(
            "`perf record` does not work here ({}): {} (as root, or with kernel.perf_event_paranoid ≤ 1)",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(err) => Err(err).context("`perf` is needed for the flame graph: apt-get install linux-perf"),
    }
}

/// Records the gateway and the worker for `options.rate`'s duration.
pub fn record(options: &ProfileOptions) -> anyhow::Result<PathBuf> {
    require_perf()?;
    options.rate.validate()?;
    let kafka = options.kafka.parse().map_err(|err| anyhow::anyhow!("--kafka {}: {err}", options.kafka))?;
    let step = crate::step::final_flow()?;
    stitch_runner::flow::with_flow_built(&step, kafka, "flamegraph", Profile::Release, |flow| {
        let _pinned = pin_flow(flow, options.services_core, &options.others)?;
        warm_up(flow, options.rate.rps, 2.0)?;
        let pids: Vec<String> =
            SWITCHED.iter().flat_map(|&role| flow.services.pids(role)).map(|pid| pid.to_string()).collect();
        let perf = start_perf(options, &pids.join(","), &flow.logs)?;
        let bar = progress("profiling", options.rate.requests());
        let sent = flow.runtime.block_on(open_loop(flow.services.gateway(), options.rate, bar.clone()));
        bar.finish_and_clear();
        let recorded = perf.wait().context("waiting for perf record");
        let sent = sent?;
        let output = recorded?;
        if !output.status.success() {
            bail!("perf record failed ({}); see {}", output.status, flow.logs.join("perf.log").display());
        }
        let failed = sent.iter().filter(|s| s.outcome.is_err()).count();
        if failed > 0 {
            bail!("{failed} of {} requests failed while profiling", sent.len());
        }
        flow.check_alive()?;
        Ok(options.output.clone())
    })
}

fn start_perf(options: &ProfileOptions, pids: &str, logs: &Path) -> anyhow::Result<duct::Handle> {
    // As long as the load: perf stops when `sleep` does.
    let seconds = format!("{}", options.rate.seconds);
    duct::cmd!(
        "perf",
        "record",
        "-e",
        "cpu-clock",
        "-F",
        options.frequency.to_string(),
        "--call-graph",
        "dwarf,16384",
        "-p",
        pids,
        "-o",
        &options.output,
        "--",
        "sleep",
        seconds
    )
    .stdin_null()
    .stderr_to_stdout()
    .stdout_path(logs.join("perf.log"))
    .unchecked()
    .start()
    .context("starting perf record")
}
