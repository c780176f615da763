//! `cargo xtask diff step-N`: the lesson files, step against solution.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use stitch_paths::project_root;
use stitch_runner::step::{self, StepDirs as _};

pub fn show(query: &str) -> anyhow::Result<ExitCode> {
    let step = step::find(query)?;
    if !step.has_solution() {
        anyhow::bail!("{} has no solution to compare with", step.short_name());
    }
    for file in &step.meta.lesson {
        let root = project_root();
        let relative = |solution: bool| {
            step.dir(solution).join(file).strip_prefix(&root).map(Path::to_path_buf).unwrap_or_default()
        };
        duct::cmd!("git", "diff", "--no-index", "--color=auto", relative(false), relative(true))
            .dir(&root)
            .unchecked()
            .run()
            .context("running git diff")?;
    }
    Ok(ExitCode::SUCCESS)
}
