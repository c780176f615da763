//! What the judge reads and writes: a recorded run in, the gate's violations
//! out, one JSON line per run (`stitch_model::Judgement`, which
//! `cargo xtask check step-5` parses).

use std::path::Path;

use anyhow::Context as _;
use stitch_model::Baseline;
use stitch_model::CheckRun;
use stitch_model::Judgement;

/// Reads one recorded run, written by the harness as JSON.
pub fn read_run(path: &Path) -> anyhow::Result<CheckRun> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the recorded run {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!("{} is not a recorded run: delete it, and `cargo xtask check step-5` records it again", path.display())
    })
}

/// Judges one run file with the lesson's gate.
pub fn judge(run_path: &Path, baseline: &Baseline) -> anyhow::Result<Judgement> {
    let run = read_run(run_path)?;
    Ok(Judgement { run: run_path.to_path_buf(), violations: crate::gate::violations(&run, baseline) })
}
