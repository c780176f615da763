//! Step 5's record: the committed baseline the gate compares against, what a
//! gate says of one recorded run, and what step 5's check measured.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What the judge prints on stdout, one JSON line per run file it is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Judgement {
    pub run: PathBuf,
    /// Empty when the gate lets the run pass.
    pub violations: Vec<String>,
}

/// One row of the check: a flow, what a correct gate says, what the judge said.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgedFlow {
    pub flow: String,
    pub wrong: String,
    pub should_pass: bool,
    /// The learner's gate's violations; empty means it let the flow pass.
    pub violations: Vec<String>,
    /// Whether this invocation recorded the flow (false: reused).
    pub recorded_now: bool,
}

impl JudgedFlow {
    pub fn passed_the_gate(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether the gate judged this flow as it should.
    pub fn right(&self) -> bool {
        self.passed_the_gate() == self.should_pass
    }
}

/// Everything step 5's check measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateCheck {
    pub step: String,
    pub solution: bool,
    pub kafka: String,
    pub requests_per_flow: usize,
    pub flows: Vec<JudgedFlow>,
    /// Seconds spent recording flows (zero when every one was reused).
    pub recording_seconds: f64,
    /// Seconds spent building and running the judge.
    pub judging_seconds: f64,
}

impl GateCheck {
    /// The step passes when every flow was judged right.
    pub fn passed(&self) -> bool {
        self.flows.iter().all(JudgedFlow::right)
    }

    /// One line per flow judged wrong.
    pub fn failures(&self) -> Vec<String> {
        self.flows
            .iter()
            .filter(|flow| !flow.right())
            .map(|flow| {
                if flow.should_pass {
                    format!("{}: rejected, but it is the fixed flow ({})", flow.flow, flow.violations.join("; "))
                } else {
                    format!("{}: let through ({})", flow.flow, flow.wrong)
                }
            })
            .collect()
    }
}

/// An internal service at or above this orphan rate fails the gate, whatever
/// the baseline says.
pub const ORPHAN_RATE_LIMIT: f64 = 0.01;

/// `ci/gate-baseline.toml`: the orphan rates the gate compares against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub services: BTreeMap<String, f64>,
}

impl Baseline {
    /// Where the project keeps it, relative to the workspace root.
    pub const PATH: &str = "ci/gate-baseline.toml";

    /// The baseline in `text`, read from `path` (named in the error).
    pub fn parse(text: &str, path: &std::path::Path) -> anyhow::Result<Baseline> {
        toml::from_str(text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The baseline at `path` (the judge of step 5 is told where it is).
    pub fn read(path: &std::path::Path) -> anyhow::Result<Baseline> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Baseline::parse(&text, path)
    }
}
