//! A step of the workshop as its `steps/step-NN-name/step.toml` declares it:
//! what it teaches, its lesson files, its stage or judge, and what its runs
//! must show. Reading the files is the runner's job; this is their schema.

use std::collections::BTreeMap;

use anyhow::bail;
use lineage::Boundary;
use serde::{Deserialize, Serialize};

use crate::stage::StageKind;

/// Every judge a `step.toml` may name (`judge = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JudgeKind {
    /// Step 5: the end-to-end gate of the final flow.
    CiGate,
}

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

    /// Every step but the baseline has a solution; a judged step's is its
    /// solution crate (it has no `[solved]` run to expect).
    pub fn has_solution(&self) -> bool {
        self.meta.solved.is_some() || self.meta.judge.is_some()
    }

    /// Steps 0–3: the lesson is the flow itself (no stage around it, no judge).
    pub fn is_flow(&self) -> bool {
        self.meta.stage.is_none() && self.meta.judge.is_none()
    }

    /// What a run of the step shows once its lesson is solved (the baseline,
    /// which has nothing to solve: what it shows as it is). A run waits for
    /// this many spans whatever crate it runs: a run that shows fewer ends
    /// when its spans stop arriving. A judged step runs no flow of its own.
    pub fn full_expectation(&self) -> anyhow::Result<&Expectation> {
        match (&self.meta.solved, &self.meta.unsolved) {
            (Some(solved), _) => Ok(solved),
            (None, Some(unsolved)) => Ok(unsolved),
            (None, None) => bail!("{} runs no flow of its own: it has no [unsolved] expectation", self.short_name()),
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

impl StepMeta {
    /// A `step.toml`'s text, parsed and checked.
    pub fn parse(text: &str) -> anyhow::Result<StepMeta> {
        let meta: StepMeta = toml::from_str(text)?;
        validate_kind(&meta)?;
        Ok(meta)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::STEP_1;

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
        assert!(error.contains("line 9") && error.contains("https"), "{error}");
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
        assert!(step.full_expectation().unwrap_err().to_string().contains("runs no flow"));

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
}
