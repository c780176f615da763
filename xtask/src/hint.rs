//! `cargo xtask hint step-N [--level K]`: one graded hint at a time, so a
//! learner who is stuck gets the next nudge, not the answer.

use std::process::ExitCode;

use stitch_harness::hints::{self, LEVEL_NAMES, LEVELS};
use stitch_harness::step::{self, Step};

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
            format!("hint 1 of {LEVELS} ({}): {}\n{}", LEVEL_NAMES[0], hint.replace('\n', "\n  "), after(step, 1))
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
