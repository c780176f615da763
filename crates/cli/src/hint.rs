//! `cargo xtask hint step-N [--level K]`: one graded hint at a time, so a
//! learner who is stuck gets the next nudge, not the answer.

use std::process::ExitCode;

use stitch_model::hints::{self, LEVEL_NAMES, LEVELS};
use stitch_runner::step::{self, Step};

pub fn print(query: &str, level: usize) -> anyhow::Result<ExitCode> {
    let step = step::find(query)?;
    let hint = hints::get(&step.meta, level)?;
    println!("{} hint {level} of {LEVELS}, {}:\n", step.short_name(), LEVEL_NAMES[level - 1]);
    println!("  {}\n", hint.replace('\n', "\n  "));
    println!("{}", after(&step, level));
    Ok(ExitCode::SUCCESS)
}

/// What a failed check prints: the first hint, and how to get the next.
pub fn after_failure(step: &Step) -> String {
    match hints::get(&step.meta, 1) {
        Ok(hint) => {
            format!("hint 1 of {LEVELS}, {}:\n  {}\n{}", LEVEL_NAMES[0], hint.replace('\n', "\n  "), after(step, 1))
        }
        Err(_) => String::new(),
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

    #[test]
    fn a_failed_check_shows_only_the_first_hint() {
        let step = step::find("step-1").unwrap();
        let shown = after_failure(&step);
        assert!(shown.starts_with("hint 1 of 3, the concept:\n  "), "{shown}");
        assert!(shown.contains(hints::get(&step.meta, 1).unwrap().lines().next().unwrap()), "{shown}");
        for level in 2..=3 {
            let hint = hints::get(&step.meta, level).unwrap();
            assert!(!shown.contains(hint.lines().next().unwrap()), "level {level} leaked: {shown}");
        }
        assert!(shown.ends_with("cargo xtask hint step-1 --level 2"), "{shown}");
        // The baseline has nothing to hint at.
        assert_eq!(after_failure(&step::find("step-0").unwrap()), "");
    }

    #[test]
    fn the_levels_differ() {
        for step in step::all().unwrap().iter().filter(|step| !step.meta.lesson.is_empty()) {
            let levels: Vec<&str> = (1..=LEVELS).map(|level| hints::get(&step.meta, level).unwrap()).collect();
            assert!(levels[0] != levels[1] && levels[1] != levels[2] && levels[0] != levels[2], "{}", step.name);
        }
    }
}
