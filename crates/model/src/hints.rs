//! A step's graded hints: three levels, each one closer to the answer, so a
//! learner who is stuck asks for the next one instead of reading the fix.
//!
//! They live beside the solution (`solutions/step-NN-name/hints.toml`), never
//! in the learner's crate or its `step.toml`: the chapters send the learner
//! there, and an answer one scroll away is no longer a choice. The same file
//! names what gives the answer away, for `cargo xtask ci`'s answer scan.

use anyhow::bail;
use serde::Deserialize;

use crate::step::StepMeta;

/// The file, in a step's solution directory.
pub const FILE: &str = "hints.toml";

/// How many hints a step with a lesson has: 1 names the concept, 2 the API
/// and where it goes, 3 points at the exact code.
pub const LEVELS: usize = 3;

/// What each level gives, as `cargo xtask hint` announces it.
pub const LEVEL_NAMES: [&str; LEVELS] = ["the concept", "the API, and where it goes", "the exact code"];

/// A step's `hints.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    /// Level 1 first.
    pub hints: Vec<String>,
    pub answer: Answer,
}

/// What gives a step's answer away: no learner may meet it before they
/// choose to (in `steps/`, in a crate a lesson can call, in a chapter's
/// unfolded text).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// Code of the solution's lesson files, as written there (whitespace aside).
    pub code: Vec<String>,
    /// What a solved check prints that gives the answer away, as the step's
    /// generated run (`book/src/generated/`) shows it.
    #[serde(default)]
    pub printed: Vec<String>,
}

impl Answer {
    /// Every telltale, code first.
    pub fn telltales(&self) -> impl Iterator<Item = &str> {
        self.code.iter().chain(&self.printed).map(String::as_str)
    }
}

impl Hints {
    /// A `hints.toml`'s text, parsed and checked on its own.
    pub fn parse(text: &str) -> anyhow::Result<Hints> {
        let hints: Hints = toml::from_str(text)?;
        if hints.hints.len() != LEVELS {
            bail!("`hints`: {} given; a step with a lesson needs exactly {LEVELS}, level 1 first", hints.hints.len());
        }
        if let Some(level) = hints.hints.iter().position(|hint| hint.trim().is_empty()) {
            bail!("`hints`: level {} is empty", level + 1);
        }
        if hints.answer.code.is_empty() {
            bail!("`answer.code` is empty: name the code that gives the answer away, so CI can keep it out of sight");
        }
        if hints.answer.telltales().any(|telltale| telltale.trim().is_empty()) {
            bail!("`answer`: an empty telltale matches everything");
        }
        Ok(hints)
    }

    /// Hint `level` (1-based), or why there is none.
    pub fn get(&self, level: usize) -> anyhow::Result<&str> {
        match level.checked_sub(1).and_then(|index| self.hints.get(index)) {
            Some(hint) => Ok(hint.trim()),
            None => bail!("no hint level {level}: levels go from 1 to {}", self.hints.len()),
        }
    }
}

/// A step with a lesson has hints; a step without one (the baseline) has
/// none, since there is nothing to hint at.
pub fn validate(meta: &StepMeta, hints: Option<&Hints>) -> anyhow::Result<()> {
    match (meta.lesson.is_empty(), hints) {
        (true, None) | (false, Some(_)) => Ok(()),
        (true, Some(_)) => bail!("the step has no lesson to hint at, yet has a {FILE}"),
        (false, None) => bail!("the step has a lesson, and no {FILE} beside its solution: it needs {LEVELS} hints"),
    }
}

/// Hint `level` of a step that may have none.
pub fn get(hints: Option<&Hints>, level: usize) -> anyhow::Result<&str> {
    match hints {
        Some(hints) => hints.get(level),
        None => bail!("this step has no lesson, so no hints: run it and read its table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(levels: &[&str]) -> anyhow::Result<Hints> {
        Hints::parse(&format!("hints = {levels:?}\n[answer]\ncode = [\"fix()\"]\n"))
    }

    fn meta(lesson: &[&str]) -> StepMeta {
        let text = format!(
            "title = \"t\"\nchapter = \"c\"\nteaches = []\nlesson = {lesson:?}\n[targets]\n[unsolved]\nspans_per_request = 1\n"
        );
        toml::from_str(&text).expect("valid step.toml")
    }

    #[test]
    fn a_lesson_needs_exactly_three_hints() {
        assert!(hints(&["one", "two", "three"]).is_ok());
        for levels in [&["one", "two"][..], &["1", "2", "3", "4"], &[]] {
            let err = hints(levels).unwrap_err().to_string();
            assert!(err.contains("exactly 3"), "{levels:?}: {err}");
        }
        assert_eq!(hints(&["one", " ", "three"]).unwrap_err().to_string(), "`hints`: level 2 is empty");
    }

    #[test]
    fn the_answer_must_be_named_and_never_empty() {
        let levels = "hints = [\"1\", \"2\", \"3\"]\n";
        assert!(Hints::parse(levels).unwrap_err().to_string().contains("answer"));
        let none = format!("{levels}[answer]\ncode = []\n");
        assert!(Hints::parse(&none).unwrap_err().to_string().contains("`answer.code` is empty"));
        let blank = format!("{levels}[answer]\ncode = [\"fix()\"]\nprinted = [\" \"]\n");
        assert!(Hints::parse(&blank).unwrap_err().to_string().contains("empty telltale"));
        let renamed = format!("{levels}[answer]\ncodes = [\"fix()\"]\n");
        assert!(Hints::parse(&renamed).unwrap_err().to_string().contains("codes"));
    }

    #[test]
    fn only_a_step_with_a_lesson_has_hints() {
        let three = hints(&["one", "two", "three"]).unwrap();
        assert!(validate(&meta(&["src/a.rs"]), Some(&three)).is_ok());
        assert!(validate(&meta(&[]), None).is_ok());
        assert!(validate(&meta(&["src/a.rs"]), None).unwrap_err().to_string().contains("no hints.toml"));
        assert!(validate(&meta(&[]), Some(&three)).is_err());
    }

    #[test]
    fn levels_are_one_based() {
        let three = hints(&["one", "two", "three"]).unwrap();
        assert_eq!(get(Some(&three), 1).unwrap(), "one");
        assert_eq!(get(Some(&three), 3).unwrap(), "three");
        assert!(get(Some(&three), 0).is_err());
        assert!(get(Some(&three), 4).is_err());
        assert!(get(None, 1).unwrap_err().to_string().contains("no lesson"));
    }
}
