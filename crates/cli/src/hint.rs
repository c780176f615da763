//! `cargo xtask hint step-N [--level K]`: one graded hint at a time, so a
//! learner who is stuck gets the next nudge, not the answer. The hints live
//! beside the solution (`solutions/step-NN-name/hints.toml`), out of the
//! files a chapter sends the learner to.

use std::process::ExitCode;

use anyhow::Context as _;
use stitch_model::hints::{self, Hints, LEVEL_NAMES, LEVELS};
use stitch_runner::step::{self, Step, StepDirs as _};

/// A step's hints, read and checked: `None` for a step without a lesson.
/// A step with a lesson and no hints file, or a file that does not parse,
/// is an error.
pub fn read(step: &Step) -> anyhow::Result<Option<Hints>> {
    let path = step.dir(true).join(hints::FILE);
    let hints = match std::fs::read_to_string(&path) {
        Ok(text) => Some(Hints::parse(&text).with_context(|| format!("in {}", path.display()))?),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    hints::validate(&step.meta, hints.as_ref()).with_context(|| format!("{}: {}", step.name, path.display()))?;
    Ok(hints)
}

pub fn print(query: &str, level: usize) -> anyhow::Result<ExitCode> {
    let step = step::find(query)?;
    let hints = read(&step)?;
    let hint = hints::get(hints.as_ref(), level)?;
    println!("{} hint {level} of {LEVELS}, {}:\n", step.short_name(), LEVEL_NAMES[level - 1]);
    println!("  {}\n", hint.replace('\n', "\n  "));
    println!("{}", after(&step, level));
    Ok(ExitCode::SUCCESS)
}

/// What a failed check prints: how to ask for the first hint, not the hint.
/// A hint is read when the learner chooses to, and only through
/// `cargo xtask hint`.
pub fn after_failure(step: &Step) -> String {
    match read(step) {
        Ok(Some(_)) => {
            format!("stuck? a first hint (1 of {LEVELS}, {}): cargo xtask hint {}", LEVEL_NAMES[0], step.short_name())
        }
        Ok(None) => String::new(),
        // The check's verdict stands; the hints that could not be read say why.
        Err(err) => format!("no hint: {err:#}"),
    }
}

/// The line under a hint: where the next level is, or where the answer is.
fn after(step: &Step, level: usize) -> String {
    if level < LEVELS {
        format!("stuck? the next hint: cargo xtask hint {} --level {}", step.short_name(), level + 1)
    } else {
        format!("that was the last hint; the solution: cargo xtask diff {}", step.short_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(step: &Step, level: usize) -> String {
        read(step).unwrap().unwrap().get(level).unwrap().to_owned()
    }

    #[test]
    fn a_failed_check_says_how_to_ask_for_a_hint_and_shows_none() {
        let step = step::find("step-1").unwrap();
        let shown = after_failure(&step);
        assert_eq!(shown, "stuck? a first hint (1 of 3, the concept): cargo xtask hint step-1");
        for any in 1..=3 {
            let hint = level(&step, any);
            assert!(!shown.contains(hint.lines().next().unwrap()), "level {any} shown unasked: {shown}");
        }
        // The baseline has nothing to hint at.
        assert_eq!(after_failure(&step::find("step-0").unwrap()), "");
    }

    #[test]
    fn every_step_with_a_lesson_has_three_different_hints_beside_its_solution() {
        for step in step::all().unwrap() {
            let Some(hints) = read(&step).unwrap() else {
                assert!(step.meta.lesson.is_empty(), "{}", step.name);
                continue;
            };
            let levels: Vec<&str> = (1..=LEVELS).map(|level| hints.get(level).unwrap()).collect();
            assert!(levels[0] != levels[1] && levels[1] != levels[2] && levels[0] != levels[2], "{}", step.name);
        }
    }
}
