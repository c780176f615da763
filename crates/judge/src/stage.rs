//! The stages' judges: what a stage measured (its [`StageData`]) to the
//! claims it must hold, each with what was measured, and the notes a report
//! prints beside them. A new stage's judge is one module here and one arm
//! of [`judge`].

pub mod browser;
pub mod long_trace;
pub mod mesh;
pub mod tier;

use serde::{Deserialize, Serialize};
use stitch_model::StageData;

/// One claim of a stage, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub claim: String,
    pub measured: String,
    pub passed: bool,
}

impl Claim {
    pub fn new(claim: impl Into<String>, measured: impl Into<String>, passed: bool) -> Claim {
        Claim { claim: claim.into(), measured: measured.into(), passed }
    }

    /// The line a failed claim adds to a verdict's failures.
    pub fn failure(&self) -> String {
        format!("{}: measured {}", self.claim, self.measured)
    }
}

/// What a stage's judge says of its data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageVerdict {
    /// Every claim; a failed one fails the run.
    pub claims: Vec<Claim>,
    /// Lines worth printing beside them (a config value, a routing summary).
    pub notes: Vec<String>,
}

impl StageVerdict {
    /// Whether every claim held.
    pub fn passed(&self) -> bool {
        self.claims.iter().all(|claim| claim.passed)
    }

    /// One line per failed claim.
    pub fn failures(&self) -> Vec<String> {
        self.claims.iter().filter(|claim| !claim.passed).map(Claim::failure).collect()
    }
}

/// Judges what a stage measured.
pub fn judge(data: &StageData) -> StageVerdict {
    match data {
        StageData::TailSampling(data) => tier::judge(data),
        StageData::SamplingCannotRepair(data) => tier::judge_cannot_repair(data),
        StageData::Mesh(data) => mesh::judge(data),
        StageData::Browser(data) => browser::judge(data),
        StageData::LongTrace(data) => long_trace::judge(data),
    }
}

/// `part/whole`, the way the stages' claims count.
pub(crate) fn ratio(part: usize, whole: usize) -> String {
    format!("{part}/{whole}")
}

#[cfg(test)]
pub(crate) mod testing {
    use super::{Claim, StageVerdict};

    /// The claim whose wording starts with `start`; panics naming the claims there are.
    pub fn claim<'a>(verdict: &'a StageVerdict, start: &str) -> &'a Claim {
        verdict.claims.iter().find(|claim| claim.claim.starts_with(start)).unwrap_or_else(|| {
            let claims: Vec<&str> = verdict.claims.iter().map(|claim| claim.claim.as_str()).collect();
            panic!("no claim starting {start:?} among {claims:#?}")
        })
    }

    /// Asserts that exactly the claim starting with `start` failed, and returns what it measured.
    pub fn only_failure(verdict: &StageVerdict, start: &str) -> String {
        let failed: Vec<&Claim> = verdict.claims.iter().filter(|claim| !claim.passed).collect();
        assert_eq!(failed.len(), 1, "expected one failed claim, got {failed:#?}");
        assert!(failed[0].claim.starts_with(start), "expected {start:?} to fail, got {failed:#?}");
        failed[0].measured.clone()
    }

    /// Asserts every claim held.
    pub fn all_pass(verdict: &StageVerdict) {
        let failed: Vec<&Claim> = verdict.claims.iter().filter(|claim| !claim.passed).collect();
        assert!(failed.is_empty(), "expected every claim to hold, got {failed:#?}");
    }
}
