//! The steps of the workshop, read from each `steps/step-NN-name/step.toml`
//! (the schema is [`stitch_model::step`]), and where their crates are.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
pub use stitch_model::step::{Expectation, JudgeKind, Step, StepMeta, Targets};

use crate::project_root;

/// Where a step's crates are.
pub trait StepDirs {
    /// The learner's crate (`steps/`), or the solution's (`solutions/`).
    fn dir(&self, solution: bool) -> PathBuf;
}

impl StepDirs for Step {
    fn dir(&self, solution: bool) -> PathBuf {
        project_root().join(if solution { "solutions" } else { "steps" }).join(&self.name)
    }
}

/// Every step, in order.
pub fn all() -> anyhow::Result<Vec<Step>> {
    let dir = project_root().join("steps");
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = name.strip_prefix("step-").and_then(|rest| rest.get(..2)).and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let path = entry.path().join("step.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let meta = StepMeta::parse(&text).with_context(|| format!("in {}", path.display()))?;
        steps.push(Step { number, name, meta });
    }
    steps.sort_by_key(|step| step.number);
    Ok(steps)
}

/// The step whose solution is the final flow: the last one of steps 0–3.
/// The CI gate and the traps run on its solution; later steps only add
/// around it, or judge it.
pub fn final_flow() -> anyhow::Result<Step> {
    all()?.into_iter().rfind(Step::is_flow).context("no steps")
}

/// Finds a step by `3`, `step-3`, `step-03` or `step-03-kafka`.
pub fn find(query: &str) -> anyhow::Result<Step> {
    let steps = all()?;
    let wanted = query.trim_start_matches("step-");
    let number = wanted.split('-').next().and_then(|n| n.parse::<u8>().ok());
    steps.iter().find(|step| step.name == query || number == Some(step.number)).cloned().with_context(|| {
        let known: Vec<String> = steps.iter().map(Step::short_name).collect();
        format!("no step {query:?}; known steps: {}", known.join(", "))
    })
}

/// Checks what parsing cannot: that every lesson file exists. (Boundary and
/// stage names are checked when `step.toml` is read.)
pub fn validate(steps: &[Step]) -> anyhow::Result<()> {
    for step in steps {
        for file in &step.meta.lesson {
            if !step.dir(false).join(file).is_file() {
                bail!("{}: lesson file {file} does not exist", step.name);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stitch_model::StageKind;

    #[test]
    fn the_final_flow_is_the_last_step_of_the_flow_itself() {
        let steps = all().expect("steps");
        let last = final_flow().expect("a final flow");
        assert!(last.is_flow() && last.has_solution());
        assert!(steps.iter().any(|step| step.meta.judge.is_some() && step.number > last.number));
    }

    #[test]
    fn every_step_of_the_workshop_parses_and_validates() {
        let steps = all().expect("every step.toml parses");
        validate(&steps).expect("every step validates");
        assert!(steps.iter().any(|step| step.meta.stage == Some(StageKind::TailSampling)));
    }
}
