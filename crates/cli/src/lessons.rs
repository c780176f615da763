//! The check judges the code it runs, not a flag: the learner's crate with
//! the solution's lesson files in place passes, each wrong fix the course
//! names fails with its own message, and step 5 judges the same after a
//! learner solved steps 1–3. `cargo xtask ci` proves all three;
//! `cargo xtask mistakes` writes what the check answers each wrong fix into
//! the instructors' page.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use stitch_components::kafka::BrokerKind;
use stitch_model::Step;
use stitch_model::mistakes::Mistake;
use stitch_runner::check::{self, CheckOptions};
use stitch_runner::gate_judge::{self, GateCheckOptions};
use stitch_runner::lesson::{self, LessonCrate};
use stitch_runner::step::StepDirs as _;

/// What the check said of one crate.
pub struct Judged {
    pub passed: bool,
    pub failures: Vec<String>,
}

/// Runs `step`'s check on `lesson`, as `cargo xtask check` does.
pub fn judge(step: &Step, lesson: LessonCrate, kafka: BrokerKind, requests: usize) -> anyhow::Result<Judged> {
    if step.meta.judge.is_some() {
        let options = GateCheckOptions { step: step.clone(), lesson, requests, kafka, record_anew: false };
        let check = gate_judge::run(&options)?;
        return Ok(Judged { passed: check.passed(), failures: check.failures() });
    }
    let run = check::run(&CheckOptions { step: step.clone(), lesson, requests, kafka, concurrency: 8 })?;
    let verdict = stitch_judge::verdict::judge(step, &run);
    Ok(Judged { passed: verdict.passed, failures: verdict.failures })
}

/// One proof: its name and what was wrong (nothing when it holds).
pub type Proven = (String, Vec<String>);

/// The learner's crate of `step` with the solution's lesson files copied
/// over it passes, as the solution does.
pub fn solved_copy_passes(step: &Step, kafka: BrokerKind, requests: usize) -> Proven {
    let name = format!("{}: the learner's crate with the solution's lesson passes on {kafka}", step.short_name());
    eprintln!("\n── {name}");
    let problems = match LessonCrate::copy_of_learner(step, "solved", &lesson::solution_lesson(step))
        .and_then(|copy| judge(step, copy, kafka, requests))
    {
        Ok(judged) if judged.passed => Vec::new(),
        Ok(judged) => judged.failures,
        Err(err) => vec![format!("the check failed: {err:#}")],
    };
    (name, problems)
}

/// Each wrong fix of `step` the course names fails, with its message.
pub fn mistakes_fail(step: &Step, kafka: BrokerKind, requests: usize) -> Vec<Proven> {
    let mistakes = match lesson::mistakes(step) {
        Ok(mistakes) => mistakes,
        Err(err) => return vec![(format!("{}: its wrong fixes", step.short_name()), vec![format!("{err:#}")])],
    };
    mistakes
        .into_iter()
        .map(|(mistake, files)| {
            let name = format!("{} wrong fix `{}` fails: “{}”", step.short_name(), mistake.name, mistake.says);
            eprintln!("\n── {name}");
            let problems = match run_mistake(step, &mistake, &files, kafka, requests) {
                Ok((judged, said)) => match (judged.passed, said) {
                    (true, _) => vec![format!("the check passed {}: {}", mistake.name, mistake.what)],
                    (false, Some(_)) => Vec::new(),
                    (false, None) => vec![format!(
                        "the check failed without saying “{}”; it said: {}",
                        mistake.says,
                        judged.failures.join(" | ")
                    )],
                },
                Err(err) => vec![format!("the check did not run: {err:#}")],
            };
            (name, problems)
        })
        .collect()
}

/// Judges one wrong fix; with what the check said of it, when it said it.
fn run_mistake(
    step: &Step,
    mistake: &Mistake,
    files: &[(String, PathBuf)],
    kafka: BrokerKind,
    requests: usize,
) -> anyhow::Result<(Judged, Option<String>)> {
    let copy = LessonCrate::copy_of_learner(step, &mistake.name, files)?;
    let judged = judge(step, copy, kafka, requests)?;
    let said = judged.failures.iter().find(|failure| failure.contains(&mistake.says)).cloned();
    Ok((judged, said))
}

/// A learner who works in order: steps 1–3 solved in the learner's own
/// crates, then step 5. Step 5's check fails its shipped lesson, and passes
/// once the learner's own crate holds the solution's, judged on the same
/// flows. The lesson files are written in place and restored after, so the
/// tree must hold them as committed.
pub fn in_order(steps: &[Step], kafka: BrokerKind) -> Proven {
    let name = "a learner in order (steps 1–3 solved, then step 5): step 5 fails unsolved, passes solved".to_owned();
    eprintln!("\n── {name}");
    let problems = (|| -> anyhow::Result<Vec<String>> {
        let gate = steps.iter().find(|step| step.meta.judge.is_some()).context("no judged step")?;
        let solved = |step: &Step| -> Vec<(PathBuf, PathBuf)> {
            step.meta.lesson.iter().map(|file| (step.dir(false).join(file), step.dir(true).join(file))).collect()
        };
        let flow: Vec<(PathBuf, PathBuf)> =
            steps.iter().filter(|step| step.is_flow() && step.has_solution()).flat_map(solved).collect();
        let requests = gate.default_requests();
        let mut problems = Vec::new();
        let _steps_1_to_3 = InPlace::write(&flow)?;
        if judge(gate, LessonCrate::learner(gate), kafka, requests)?.passed {
            problems.push("with steps 1–3 solved, the shipped step 5 passed".to_owned());
        }
        let _step_5 = InPlace::write(&solved(gate))?;
        let judged = judge(gate, LessonCrate::learner(gate), kafka, requests)?;
        problems
            .extend(judged.failures.into_iter().map(|failure| format!("solved in place, step 5 failed: {failure}")));
        Ok(problems)
    })()
    .unwrap_or_else(|err| vec![format!("{err:#}")]);
    (name, problems)
}

/// Files written over the working tree, put back as they were when dropped.
struct InPlace {
    saved: Vec<(PathBuf, Vec<u8>)>,
}

impl InPlace {
    /// Copies each `(target, source)` over its target, once the targets are
    /// as committed (a learner's edits are never overwritten).
    fn write(files: &[(PathBuf, PathBuf)]) -> anyhow::Result<InPlace> {
        let targets: Vec<&Path> = files.iter().map(|(target, _)| target.as_path()).collect();
        let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref(), "--quiet".as_ref(), "HEAD".as_ref(), "--".as_ref()];
        args.extend(targets.iter().map(|target| target.as_os_str()));
        let status = duct::cmd("git", &args)
            .dir(stitch_paths::project_root())
            .unchecked()
            .run()
            .context("running git diff (the proof needs the checkout's git)")?
            .status;
        if !status.success() {
            bail!("lesson files differ from the commit: commit or stash them before this proof");
        }
        let mut saved = Vec::new();
        for (target, source) in files {
            saved.push((
                target.clone(),
                std::fs::read(target).with_context(|| format!("reading {}", target.display()))?,
            ));
            std::fs::copy(source, target)
                .with_context(|| format!("copying {} over {}", source.display(), target.display()))?;
        }
        Ok(InPlace { saved })
    }
}

impl Drop for InPlace {
    fn drop(&mut self) {
        for (target, contents) in &self.saved {
            if let Err(err) = std::fs::write(target, contents) {
                eprintln!(
                    "error: could not restore {}: {err}; `git checkout -- {}` restores it",
                    target.display(),
                    target.display()
                );
            }
        }
    }
}

/// A flow step's lesson as shipped is the broken baseline's code, comments
/// and blank lines aside: the flows step 5 is judged on are built from the
/// baseline (`crates/broken-flows`), so they are what the steps ship.
pub fn shipped_is_baseline(step: &Step, baseline: &Step) -> Vec<String> {
    let code = |path: &Path| -> anyhow::Result<Vec<String>> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default().trim().to_owned())
            .filter(|line| !line.is_empty())
            .collect())
    };
    step.meta
        .lesson
        .iter()
        .filter_map(|file| {
            let (shipped, broken) = (step.dir(false).join(file), baseline.dir(false).join(file));
            match (code(&shipped), code(&broken)) {
                (Ok(shipped_code), Ok(broken_code)) if shipped_code == broken_code => None,
                (Ok(_), Ok(_)) => Some(format!(
                    "{} is not the baseline's {} with comments: the flow step 5 records for {} is built from the \
                     baseline (crates/broken-flows) and would not be what the step ships",
                    shipped.display(),
                    broken.display(),
                    step.short_name()
                )),
                (Err(err), _) | (_, Err(err)) => Some(format!("{err:#}")),
            }
        })
        .collect()
}

/// `cargo xtask mistakes`: every named wrong fix of `only` (or of every
/// step) through its check, one row each: what it is, where the course
/// names it, and the line of the check's answer that names it. With
/// `write`, the table goes into the instructors' page's generated file.
pub fn command(only: Option<&str>, kafka: BrokerKind, write: bool) -> anyhow::Result<std::process::ExitCode> {
    let steps = match only {
        Some(query) => vec![stitch_runner::step::find(query)?],
        None => stitch_runner::step::all()?,
    };
    let mut table = crate::table::Table::new(
        &["step", "wrong fix", "named in", "the check answers"],
        &[false, false, false, false],
    );
    let mut wrong = 0;
    for step in &steps {
        let requests = if step.is_flow() { stitch_model::step::DEFAULT_REQUESTS } else { step.default_requests() };
        for (mistake, files) in lesson::mistakes(step)? {
            eprintln!("\n── {} `{}`: {}", step.short_name(), mistake.name, mistake.what);
            let (judged, said) = run_mistake(step, &mistake, &files, kafka, requests)?;
            let answer = match (judged.passed, said) {
                (false, Some(line)) => anonymise(&line),
                (true, _) => {
                    wrong += 1;
                    "PASSED: the check lets it through".to_owned()
                }
                (false, None) => {
                    wrong += 1;
                    format!("FAILED without naming it: {}", judged.failures.join(" | "))
                }
            };
            table.row(vec![
                step.short_name(),
                format!("`{}`: {}", mistake.name, mistake.what),
                mistake.named_in,
                answer,
            ]);
        }
    }
    println!("\n{}", table.render());
    if write {
        let path = stitch_paths::project_root().join("book/src/generated/mistakes.md");
        let text = format!(
            "<!-- Written by `cargo xtask mistakes --write` from solutions/*/mistakes.toml and a run of each, on {kafka}. -->\n\n{}\n",
            table.markdown()
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    Ok(if wrong == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

/// A failure line without what is one run's own: order ids
/// (`ord-3f2a9c1e-000007`), trace contexts and the ports of loopback
/// origins, so that the table reads the same from run to run.
fn anonymise(line: &str) -> String {
    static RUN_OWN: std::sync::LazyLock<[(regex::Regex, &str); 3]> = std::sync::LazyLock::new(|| {
        let regex = |pattern: &str| regex::Regex::new(pattern).expect("a valid pattern");
        [
            (regex(r"\bord-[0-9a-f]+(-[0-9]+)?"), "ord-…"),
            (regex(r"\b00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\b"), "00-…"),
            (regex(r"(localhost|127\.0\.0\.1):[0-9]+"), "$1:…"),
        ]
    });
    RUN_OWN.iter().fold(line.to_owned(), |text, (pattern, with)| pattern.replace_all(&text, *with).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_order_ids_are_left_out() {
        assert_eq!(
            anonymise("in 200 of 200 requests (e.g. ord-1b66ef12-000008) the worker"),
            "in 200 of 200 requests (e.g. ord-…) the worker"
        );
        assert_eq!(
            anonymise("carry a traceparent (e.g. `00-d3d580ecf6e62df2b7977da26dedc2fe-f047623476028484-03`)"),
            "carry a traceparent (e.g. `00-…`)"
        );
        assert_eq!(
            anonymise("to a look-alike origin http://api.partner.localhost:31550 and http://127.0.0.1:33277 (200/200)"),
            "to a look-alike origin http://api.partner.localhost:… and http://127.0.0.1:… (200/200)"
        );
        assert_eq!(anonymise("nothing to hide"), "nothing to hide");
    }
}
