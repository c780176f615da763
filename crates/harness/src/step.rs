//! The steps of the workshop, read from each `steps/step-NN-name/step.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use lineage::Boundary;
use serde::Deserialize;

use crate::gate_judge::JudgeKind;
use crate::project_root;
use crate::stages::StageKind;

/// Requests a run drives, for steps that do not say otherwise.
pub const DEFAULT_REQUESTS: usize = 200;

/// What a step's `step.toml` says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepMeta {
    pub title: String,
    /// The book chapter, relative to the workspace root.
    pub chapter: String,
    /// The boundaries this step's lesson is about.
    pub teaches: Vec<Boundary>,
    /// The files a learner edits, relative to the step's directory.
    pub lesson: Vec<String>,
    /// Graded hints, level 1 first (see [`crate::hints`]).
    #[serde(default)]
    pub hints: Vec<String>,
    /// What the step adds around the flow; none for steps 0–3.
    #[serde(default)]
    pub stage: Option<StageKind>,
    /// A step whose lesson judges runs of the flow instead of being part of
    /// it (step 5's gate): its check runs the step's judge on recorded flows,
    /// and it has no targets or expectations of its own.
    #[serde(default)]
    pub judge: Option<JudgeKind>,
    /// Requests a run drives unless told otherwise (200 when absent); for a
    /// judged step, requests per recorded flow.
    #[serde(default)]
    pub requests: Option<usize>,
    /// Absent for a judged step, which runs no flow of its own.
    #[serde(default)]
    pub targets: Targets,
    /// Required of every step that runs a flow; absent for a judged step.
    pub unsolved: Option<Expectation>,
    /// Absent for step 0, which has nothing to solve, and for a judged step.
    pub solved: Option<Expectation>,
}

/// Highest rates that pass, judged on every run of the step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    #[serde(default)]
    pub services: BTreeMap<String, f64>,
    #[serde(default)]
    pub boundaries: BTreeMap<Boundary, f64>,
}

/// What a run of the step (unsolved, or solved) must show.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub spans_per_request: u64,
    #[serde(default)]
    pub min_break_rate: BTreeMap<Boundary, f64>,
    #[serde(default)]
    pub min_orphan_rate: BTreeMap<String, f64>,
}

/// One step of the workshop.
#[derive(Debug, Clone)]
pub struct Step {
    pub number: u8,
    /// Directory name, e.g. `step-01-http`; also the learner's package name.
    pub name: String,
    pub meta: StepMeta,
}

impl Step {
    /// Package (and binary) name of the step, or of its solution.
    pub fn package(&self, solution: bool) -> String {
        if solution { format!("{}-solution", self.name) } else { self.name.clone() }
    }

    pub fn dir(&self, solution: bool) -> PathBuf {
        project_root().join(if solution { "solutions" } else { "steps" }).join(&self.name)
    }

    /// Every step but the baseline has a solution; a judged step's is its
    /// solution crate (it has no `[solved]` run to expect).
    pub fn has_solution(&self) -> bool {
        self.meta.solved.is_some() || self.meta.judge.is_some()
    }

    /// Steps 0–3: the lesson is the flow itself (no stage around it, no judge).
    pub fn is_flow(&self) -> bool {
        self.meta.stage.is_none() && self.meta.judge.is_none()
    }

    /// What a run must show: the solved expectation, or the unsolved one.
    /// A judged step runs no flow of its own, so it has none.
    pub fn expectation(&self, solution: bool) -> anyhow::Result<&Expectation> {
        match (&self.meta.solved, &self.meta.unsolved, solution) {
            (Some(solved), _, true) => Ok(solved),
            (_, Some(unsolved), _) => Ok(unsolved),
            _ => bail!("{} runs no flow of its own: it has no [unsolved] expectation", self.short_name()),
        }
    }

    /// Requests a run drives when the command line does not say.
    pub fn default_requests(&self) -> usize {
        self.meta.requests.unwrap_or(DEFAULT_REQUESTS)
    }

    /// `step-1`, as people type it.
    pub fn short_name(&self) -> String {
        format!("step-{}", self.number)
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
        let meta: StepMeta = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        crate::hints::validate(&meta).with_context(|| format!("in {}", path.display()))?;
        validate_kind(&meta).with_context(|| format!("in {}", path.display()))?;
        steps.push(Step { number, name, meta });
    }
    steps.sort_by_key(|step| step.number);
    Ok(steps)
}

/// A step runs a flow (and says what its runs must show) or judges runs
/// of other flows (and says nothing about runs of its own), never both.
fn validate_kind(meta: &StepMeta) -> anyhow::Result<()> {
    match (&meta.judge, &meta.stage, &meta.unsolved) {
        (None, _, Some(_)) => Ok(()),
        (None, _, None) => bail!("`[unsolved]` is missing: a step that runs a flow says what its unsolved run shows"),
        (Some(_), Some(_), _) => bail!("`judge` and `stage` exclude each other: a judged step runs no flow of its own"),
        (Some(_), None, _)
            if meta.unsolved.is_some()
                || meta.solved.is_some()
                || !meta.targets.services.is_empty()
                || !meta.targets.boundaries.is_empty() =>
        {
            bail!("a judged step runs no flow of its own: remove `[targets]`, `[unsolved]` and `[solved]`")
        }
        (Some(_), None, _) => Ok(()),
    }
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
    use crate::test_runs::STEP_1;

    #[test]
    fn names_in_step_toml_are_typed() {
        let meta: StepMeta = toml::from_str(STEP_1).expect("step 1 parses");
        assert_eq!(meta.teaches, [Boundary::Http]);
        assert_eq!(meta.targets.boundaries.get(&Boundary::Http), Some(&0.01));
        let staged: StepMeta = toml::from_str(&format!("stage = \"long-trace\"\n{STEP_1}")).expect("a stage parses");
        assert_eq!(staged.stage, Some(StageKind::LongTrace));
    }

    #[test]
    fn an_unknown_boundary_or_stage_is_an_error_with_its_line() {
        let misspelt = STEP_1.replace("teaches = [\"http\"]", "teaches = [\"htpp\"]");
        let error = toml::from_str::<StepMeta>(&misspelt).unwrap_err().to_string();
        assert!(error.contains("line 4") && error.contains("htpp"), "{error}");
        let misspelt = STEP_1.replace("boundaries = { http = 0.01 }", "boundaries = { https = 0.01 }");
        let error = toml::from_str::<StepMeta>(&misspelt).unwrap_err().to_string();
        assert!(error.contains("line 14") && error.contains("https"), "{error}");
        let error = toml::from_str::<StepMeta>(&format!("stage = \"tail-sampler\"\n{STEP_1}")).unwrap_err().to_string();
        assert!(error.contains("line 1") && error.contains("tail-sampler"), "{error}");
    }

    const JUDGED: &str = "title = \"t\"\nchapter = \"c\"\nteaches = []\nlesson = []\njudge = \"ci-gate\"\n";

    #[test]
    fn a_judged_step_has_no_expectations_and_a_flow_step_needs_them() {
        let judged: StepMeta = toml::from_str(JUDGED).expect("a judged step parses");
        assert_eq!(judged.judge, Some(JudgeKind::CiGate));
        validate_kind(&judged).expect("a judged step without [unsolved] is valid");
        let step = Step { number: 5, name: "step-05-test".to_owned(), meta: judged };
        assert!(step.has_solution() && !step.is_flow());
        assert!(step.expectation(false).unwrap_err().to_string().contains("runs no flow"));

        let with_run: StepMeta =
            toml::from_str(&format!("{JUDGED}[unsolved]\nspans_per_request = 6\n")).expect("it parses");
        let error = validate_kind(&with_run).unwrap_err().to_string();
        assert!(error.contains("remove `[targets]`, `[unsolved]` and `[solved]`"), "{error}");
        let staged: StepMeta = toml::from_str(&format!("stage = \"mesh\"\n{JUDGED}")).expect("it parses");
        assert!(validate_kind(&staged).unwrap_err().to_string().contains("exclude each other"));

        let without_unsolved =
            STEP_1.replace("[unsolved]\nspans_per_request = 5\nmin_break_rate = { http = 0.95 }\n", "");
        let flow: StepMeta = toml::from_str(&without_unsolved).expect("it parses");
        assert!(validate_kind(&flow).unwrap_err().to_string().contains("`[unsolved]` is missing"));
        validate_kind(&toml::from_str(STEP_1).expect("step 1 parses")).expect("step 1 is valid");
    }

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
