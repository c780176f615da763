//! Progress: each `cargo xtask check` records its verdict under
//! `target/stitch/status/`, and `cargo xtask status` reads them back: where
//! the learner stands, what to do next, and which chapter to read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use stitch_runner::step::{self, Step, StepDirs as _};

/// The last verdict of one step's check, as written after each run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub step: String,
    pub passed: bool,
    /// Seconds since the Unix epoch when the check ended.
    pub at: u64,
    /// Wall time of the whole `cargo xtask check`, builds included: the
    /// first run of a step is cold, the next ones warm.
    pub seconds: f64,
    pub failures: Vec<String>,
}

fn dir() -> PathBuf {
    stitch_paths::run_dir().join("status")
}

/// Where a step's verdict is kept: the learner's crate and the solution apart.
fn path(step: &Step, solution: bool) -> PathBuf {
    dir().join(format!("{}{}.json", step.name, if solution { "-solution" } else { "" }))
}

pub fn record(
    step: &Step,
    solution: bool,
    passed: bool,
    failures: &[String],
    took: std::time::Duration,
) -> anyhow::Result<()> {
    let at = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();
    let recorded =
        Recorded { step: step.short_name(), passed, at, seconds: took.as_secs_f64(), failures: failures.to_vec() };
    let path = path(step, solution);
    std::fs::create_dir_all(dir()).with_context(|| format!("creating {}", dir().display()))?;
    std::fs::write(&path, serde_json::to_string_pretty(&recorded)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The learner's last verdict of `step`; `None` when it never ran. A file
/// that exists but does not parse is an error, not "never ran".
fn last(step: &Step) -> anyhow::Result<Option<Recorded>> {
    let path = path(step, false);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Whether a step is behind the learner: the baseline once it ran (it has
/// nothing to fix), any other step once it passed.
fn done(step: &Step, last: Option<&Recorded>) -> bool {
    match last {
        None => false,
        Some(recorded) => recorded.passed || !step.has_solution(),
    }
}

/// A lesson file changed after the verdict was recorded: the verdict may be stale.
fn edited_since(step: &Step, at: u64) -> bool {
    step.meta.lesson.iter().any(|file| {
        std::fs::metadata(step.dir(false).join(file))
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .is_some_and(|modified| modified.as_secs() > at)
    })
}

fn ago(at: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(at, |now| now.as_secs());
    match now.saturating_sub(at) {
        seconds if seconds < 120 => format!("{seconds} s ago"),
        seconds if seconds < 7200 => format!("{} min ago", seconds / 60),
        seconds if seconds < 172_800 => format!("{} h ago", seconds / 3600),
        seconds => format!("{} days ago", seconds / 86_400),
    }
}

/// The first step not done yet, from the recorded verdicts.
fn next(steps: &[(Step, Option<Recorded>)]) -> Option<&Step> {
    steps.iter().find(|(step, last)| !done(step, last.as_ref())).map(|(step, _)| step)
}

/// What to do next, whichever command says it (`status`, or a check that
/// passed): the first step not done, in the book's order, so the two never
/// disagree.
fn next_line(steps: &[(Step, Option<Recorded>)]) -> String {
    match next(steps) {
        Some(step) => todo_line(step),
        None => "next: nothing; every step is done (`cargo xtask status` lists them)".to_owned(),
    }
}

/// Every step with the learner's last verdict.
fn recorded_steps() -> anyhow::Result<Vec<(Step, Option<Recorded>)>> {
    step::all()?.into_iter().map(|step| last(&step).map(|last| (step, last))).collect()
}

/// What to do about `step`: the command, and the chapter to read first.
fn todo_line(step: &Step) -> String {
    format!(
        "next: {} ({}): read {}, then run `cargo xtask check {}`",
        step.short_name(),
        step.meta.title,
        step.meta.chapter,
        step.short_name()
    )
}

pub fn print() -> anyhow::Result<ExitCode> {
    let steps = recorded_steps()?;
    let mut table = crate::table::Table::new(
        &["step", "title", "last check", "took", "chapter"],
        &[false, false, false, true, false],
    );
    for (step, last) in &steps {
        let took = last.as_ref().map_or_else(|| "—".to_owned(), |recorded| format!("{:.0} s", recorded.seconds));
        let verdict = match last {
            None => "not run".to_owned(),
            Some(recorded) => {
                let word = match (recorded.passed, step.has_solution()) {
                    (true, _) => "pass",
                    (false, true) => "FAIL",
                    // The baseline fails by design: running it is the step.
                    (false, false) => "ran (fails by design)",
                };
                let stale = if edited_since(step, recorded.at) { ", lesson edited since" } else { "" };
                format!("{word}, {}{stale}", ago(recorded.at))
            }
        };
        table.row(vec![step.short_name(), step.meta.title.clone(), verdict, took, step.meta.chapter.clone()]);
    }
    println!("\n{}\n", table.render());
    println!("{}", next_line(&steps));
    Ok(ExitCode::SUCCESS)
}

/// The last line of a check: what to do next, after this verdict.
pub fn after_check(step: &Step, solution: bool, passed: bool) -> anyhow::Result<String> {
    if solution {
        return Ok(format!("that was the solution; your own crate: `cargo xtask check {}`", step.short_name()));
    }
    if !passed && step.has_solution() {
        let lesson = step.meta.lesson.iter().map(|file| format!("steps/{}/{file}", step.name)).collect::<Vec<_>>();
        return Ok(format!(
            "next: fix TODO({}) in {}, then run `cargo xtask check {}` again (chapter: {})",
            step.short_name(),
            lesson.join(", "),
            step.short_name(),
            step.meta.chapter
        ));
    }
    // The verdict just recorded is among them: the step that passed is done.
    Ok(next_line(&recorded_steps()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(number: u8) -> Step {
        stitch_runner::step::all().unwrap().into_iter().find(|step| step.number == number).unwrap()
    }

    fn recorded(passed: bool) -> Option<Recorded> {
        Some(Recorded { step: String::new(), passed, at: 0, seconds: 1.0, failures: vec![] })
    }

    #[test]
    fn the_next_step_is_the_first_not_done() {
        // A fresh clone: nothing ran, so the baseline is next.
        let steps = vec![(step(0), None), (step(1), None)];
        assert_eq!(next(&steps).unwrap().number, 0);
        // The baseline is done once it ran, though it fails by design.
        let steps = vec![(step(0), recorded(false)), (step(1), recorded(false)), (step(2), None)];
        assert_eq!(next(&steps).unwrap().number, 1);
        let steps = vec![(step(0), recorded(false)), (step(1), recorded(true))];
        assert!(next(&steps).is_none());
    }

    /// After step 5 passes with step 4 skipped (it builds the collector),
    /// the check and `status` both send the learner back to step 4.
    #[test]
    fn after_a_pass_the_next_step_is_what_status_says() {
        let mut steps: Vec<(Step, Option<Recorded>)> =
            (0..=8).map(|number| (step(number), recorded(number <= 3 || number == 5))).collect();
        steps[4].1 = None;
        let line = next_line(&steps);
        assert!(line.starts_with("next: step-4 (The tail-sampling tier)"), "{line}");
        steps[4].1 = recorded(true);
        assert!(next_line(&steps).starts_with("next: step-6 "), "{}", next_line(&steps));
        for (_, last) in &mut steps {
            *last = recorded(true);
        }
        assert!(next_line(&steps).starts_with("next: nothing"), "{}", next_line(&steps));
    }

    #[test]
    fn a_verdict_round_trips() {
        let verdict = Recorded {
            step: "step-1".into(),
            passed: false,
            at: 7,
            seconds: 42.5,
            failures: vec!["http: 100%".into()],
        };
        let text = serde_json::to_string(&verdict).unwrap();
        assert_eq!(serde_json::from_str::<Recorded>(&text).unwrap(), verdict);
    }
}
