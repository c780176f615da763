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
    let root = project_root();
    for file in &step.meta.lesson {
        let relative = |solution: bool| {
            let path = step.dir(solution).join(file);
            path.strip_prefix(&root)
                .map(Path::to_path_buf)
                .with_context(|| format!("{} is outside the checkout {}", path.display(), root.display()))
        };
        duct::cmd!("git", "diff", "--no-index", "--color=auto", relative(false)?, relative(true)?)
            .dir(&root)
            .unchecked()
            .run()
            .context("running git diff")?;
    }
    Ok(ExitCode::SUCCESS)
}
