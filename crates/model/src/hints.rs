//! A step's graded hints: three levels, each one closer to the answer, so a
//! learner who is stuck asks for the next one instead of reading the fix.

use anyhow::bail;

use crate::step::StepMeta;

/// How many hints a step with a lesson has: 1 names the concept, 2 the API
/// and where it goes, 3 points at the exact code.
pub const LEVELS: usize = 3;

/// What each level gives, as `cargo xtask hint` announces it.
pub const LEVEL_NAMES: [&str; LEVELS] = ["the concept", "the API, and where it goes", "the exact code"];

/// A step with a lesson has exactly [`LEVELS`] hints, none of them empty; a
/// step without one (the baseline) has none, since there is nothing to hint at.
pub fn validate(meta: &StepMeta) -> anyhow::Result<()> {
    match (meta.lesson.is_empty(), meta.hints.len()) {
        (true, 0) => {}
        (true, count) => bail!("`hints`: {count} given, but the step has no lesson to hint at"),
        (false, LEVELS) => {}
        (false, count) => bail!("`hints`: {count} given; a step with a lesson needs exactly {LEVELS}, level 1 first"),
    }
    if let Some(level) = meta.hints.iter().position(|hint| hint.trim().is_empty()) {
        bail!("`hints`: level {} is empty", level + 1);
    }
    Ok(())
}

/// Hint `level` (1-based) of a step, or why there is none.
pub fn get(meta: &StepMeta, level: usize) -> anyhow::Result<&str> {
    if meta.hints.is_empty() {
        bail!("this step has no lesson, so no hints: run it and read its table");
    }
    match level.checked_sub(1).and_then(|index| meta.hints.get(index)) {
        Some(hint) => Ok(hint.trim()),
        None => bail!("no hint level {level}: levels go from 1 to {}", meta.hints.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(lesson: &[&str], hints: &[&str]) -> StepMeta {
        let text = format!(
            "title = \"t\"\nchapter = \"c\"\nteaches = []\nlesson = {lesson:?}\nhints = {hints:?}\n\
             [targets]\n[unsolved]\nspans_per_request = 1\n"
        );
        toml::from_str(&text).expect("valid step.toml")
    }

    #[test]
    fn a_lesson_needs_exactly_three_hints() {
        assert!(validate(&meta(&["src/a.rs"], &["one", "two", "three"])).is_ok());
        for hints in [&["one", "two"][..], &["1", "2", "3", "4"], &[]] {
            let err = validate(&meta(&["src/a.rs"], hints)).unwrap_err().to_string();
            assert!(err.contains("exactly 3"), "{hints:?}: {err}");
        }
        let err = validate(&meta(&["src/a.rs"], &["one", " ", "three"])).unwrap_err().to_string();
        assert_eq!(err, "`hints`: level 2 is empty");
    }

    #[test]
    fn the_baseline_has_none() {
        assert!(validate(&meta(&[], &[])).is_ok());
        assert!(validate(&meta(&[], &["one"])).is_err());
    }

    #[test]
    fn levels_are_one_based() {
        let meta = meta(&["src/a.rs"], &["one", "two", "three"]);
        assert_eq!(get(&meta, 1).unwrap(), "one");
        assert_eq!(get(&meta, 3).unwrap(), "three");
        assert!(get(&meta, 0).is_err());
        assert!(get(&meta, 4).is_err());
    }
}
