//! Whether the committed chapter includes still show what a CI run
//! measured: the stable block of each run must appear in its include, as is.

use std::path::Path;

use stitch_judge::verdict::Verdict;
use stitch_model::{CheckRun, GateCheck};
use stitch_runner::step::Step;

use super::markdown::{label, stable_block, stable_gate_block};
use super::{KAFKA, book_requests, generated_dir};

/// Stale generated files: the stable block of each CI run must appear, as
/// is, in the committed chapter include.
pub fn stale(runs: &[(Step, CheckRun, Verdict)]) -> Vec<String> {
    stale_in(&generated_dir(), runs)
}

/// [`stale`] against the chapter includes in `dir`.
pub(super) fn stale_in(dir: &Path, runs: &[(Step, CheckRun, Verdict)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (step, run, verdict) in runs {
        if run.requests_sent != book_requests(step) || run.kafka != KAFKA.to_string() {
            continue;
        }
        let path = dir.join(format!("{}.md", step.name));
        let shown = path.strip_prefix(stitch_paths::project_root()).unwrap_or(&path).display().to_string();
        match std::fs::read_to_string(&path) {
            Err(err) => problems.push(format!("{shown}: {err}: run `cargo xtask report` and commit")),
            Ok(committed) if !committed.contains(&stable_block(step, run, verdict)) => problems.push(format!(
                "{shown} ({}) no longer matches this run: run `cargo xtask report` and commit",
                label(run)
            )),
            Ok(_) => {}
        }
    }
    problems
}

/// Stale gate tables: the stable block of each gate check CI ran must appear
/// in the committed chapter include.
pub fn stale_gate_checks(checks: &[(Step, GateCheck)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (step, check) in checks {
        if check.requests_per_flow != book_requests(step) || check.kafka != KAFKA.to_string() {
            continue;
        }
        let path = generated_dir().join(format!("{}.md", step.name));
        let shown = path.strip_prefix(stitch_paths::project_root()).unwrap_or(&path).display().to_string();
        match std::fs::read_to_string(&path) {
            Err(err) => {
                problems.push(format!("{shown}: {err}: run `cargo xtask report --step {}` and commit", step.number))
            }
            Ok(committed) if !committed.contains(&stable_gate_block(check)) => problems.push(format!(
                "{shown} ({}) no longer matches this run: run `cargo xtask report --step {}` and commit",
                if check.solution { "solution" } else { "unsolved" },
                step.number
            )),
            Ok(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use lineage::Boundary;
    use stitch_judge::verdict;
    use stitch_model::fixtures::{EXPECTED_CHAIN as CHAIN, STEP_1, run, service, step};

    use super::*;
    use crate::report::markdown::section;
    use crate::report::{HEADER, REQUESTS};

    fn judged(worker_orphans: u64) -> (Step, CheckRun, Verdict) {
        let step = step(1, STEP_1);
        let services = vec![
            service("consumer", 200, 0, Boundary::Messaging),
            service("gateway", 400, 0, Boundary::Http),
            service("worker", 600, worker_orphans, Boundary::Http),
        ];
        let mut run = run(REQUESTS as u64, services, [worker_orphans.min(200), 0, 0], &CHAIN);
        run.sample_dump = Some("one request's spans".to_owned());
        let verdict = verdict::judge(&step, &run);
        (step, run, verdict)
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stitch-stale-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_chapter_include_holding_the_runs_stable_block_is_current() {
        let dir = scratch("current");
        let (step, run, verdict) = judged(0);
        let text = format!("{HEADER}\n{}\n", section(&step, &run, &verdict).unwrap());
        std::fs::write(dir.join(format!("{}.md", step.name)), text).unwrap();
        assert_eq!(stale_in(&dir, &[(step, run, verdict)]), Vec::<String>::new());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_changed_verdict_or_a_missing_include_is_stale() {
        let dir = scratch("stale");
        let (step, run, verdict) = judged(0);
        std::fs::write(dir.join(format!("{}.md", step.name)), stable_block(&step, &run, &verdict)).unwrap();
        let problems = stale_in(&dir, &[judged(200)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].ends_with("(solution) no longer matches this run: run `cargo xtask report` and commit"));
        std::fs::remove_file(dir.join(format!("{}.md", step.name))).unwrap();
        let problems = stale_in(&dir, &[judged(0)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("run `cargo xtask report`"), "{problems:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn runs_the_book_does_not_show_are_not_compared() {
        let dir = scratch("other");
        let (step, mut run, verdict) = judged(200);
        run.requests_sent = 50;
        assert_eq!(stale_in(&dir, &[(step, run, verdict)]), Vec::<String>::new());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
