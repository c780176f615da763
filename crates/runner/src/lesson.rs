//! The crate a check runs. A check is the same whatever crate it is given:
//! the learner's (`steps/`), the solution's (`solutions/`), a copy of the
//! learner's crate with other lesson files (CI's wrong fixes), or another
//! package with the step's flow (a trap). Only this says which one it was,
//! for the record and the screen.

use std::path::PathBuf;

use stitch_model::Step;

use crate::step::StepDirs as _;

/// Where a crate a check runs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `steps/step-NN-…`, as the learner left it.
    Learner,
    /// `solutions/step-NN-…`.
    Solution,
    /// A copy of the learner's crate with these lesson files in place (a
    /// wrong fix the book names, or the solution's lesson).
    Copy(String),
    /// Another package that runs the step's flow (a trap of the book).
    Other,
}

/// A crate whose binary runs the step's flow.
#[derive(Debug, Clone)]
pub struct LessonCrate {
    /// Its package.
    pub package: String,
    /// The binary of the package that runs the flow.
    pub binary: String,
    /// Its directory: a stage reads lesson files there (step 4's
    /// `sampling.yaml`, step 7's `allowlist.js`).
    pub dir: PathBuf,
    /// The workspace manifest it is built with; `None`: the project's.
    pub manifest: Option<PathBuf>,
    pub origin: Origin,
}

impl LessonCrate {
    /// The learner's crate of `step`.
    pub fn learner(step: &Step) -> LessonCrate {
        let package = step.package(false);
        LessonCrate { binary: package.clone(), package, dir: step.dir(false), manifest: None, origin: Origin::Learner }
    }

    /// The solution of `step`.
    pub fn solution(step: &Step) -> LessonCrate {
        let package = step.package(true);
        LessonCrate { binary: package.clone(), package, dir: step.dir(true), manifest: None, origin: Origin::Solution }
    }

    /// The learner's crate, or the solution's.
    pub fn of(step: &Step, solution: bool) -> LessonCrate {
        if solution { LessonCrate::solution(step) } else { LessonCrate::learner(step) }
    }

    /// A binary of a package of the project's workspace that is neither
    /// (a trap, a flow broken as a step ships it).
    pub fn other(package: &str, binary: &str) -> LessonCrate {
        LessonCrate {
            package: package.to_owned(),
            binary: binary.to_owned(),
            dir: crate::project_root(),
            manifest: None,
            origin: Origin::Other,
        }
    }

    /// Whether it is the step's solution (for the record and the screen only).
    pub fn is_solution(&self) -> bool {
        self.origin == Origin::Solution
    }

    /// Builds its binary.
    pub fn build(&self) -> anyhow::Result<()> {
        match &self.manifest {
            None => crate::process::cargo_build(&[&self.package]),
            Some(manifest) => crate::process::cargo_build_in(manifest, &[&self.package]),
        }
    }
}
