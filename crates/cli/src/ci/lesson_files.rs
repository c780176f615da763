//! The file half of `cargo xtask ci`'s step proofs, which needs no run: each
//! solution differs from its step only in the lesson files.

use std::collections::BTreeSet;
use std::path::Path;

use stitch_runner::step::{Step, StepDirs as _};

/// Every file of the step but its lesson is the same in the solution (up to
/// the package name); the lesson differs and only the step has its TODO.
pub(crate) fn lesson_only(step: &Step) -> Vec<String> {
    let mut problems = Vec::new();
    let (unsolved, solved) = (step.dir(false), step.dir(true));
    let files = match (list_files(&unsolved), list_files(&solved)) {
        (Ok(a), Ok(b)) => a.union(&b).cloned().collect::<BTreeSet<_>>(),
        (Err(err), _) | (_, Err(err)) => return vec![format!("{err:#}")],
    };
    let package = step.package(false);
    let normalise = |text: String| {
        text.replace(&format!("{package}-solution"), &package)
            .replace(&format!("{}_solution", package.replace('-', "_")), &package.replace('-', "_"))
            .replace(" (solved).", ".")
    };
    let todo = format!("TODO({})", step.short_name());
    for file in files {
        if file == "step.toml" {
            continue;
        }
        // The hints live beside the solution only, out of the learner's crate.
        if file == stitch_model::hints::FILE {
            if unsolved.join(&file).exists() {
                problems.push(format!("{file} is in the step: it belongs beside the solution only"));
            }
            continue;
        }
        // The named wrong fixes live beside the solution only: mistakes.toml,
        // and a whole variant of lesson files per wrong fix.
        if file == "mistakes.toml" || file.starts_with("mistakes/") {
            let lesson =
                file.strip_prefix("mistakes/").and_then(|variant| variant.split_once('/')).map(|(_, lesson)| lesson);
            if unsolved.join(&file).exists() {
                problems.push(format!("{file}: the wrong fixes belong to the solution, not the step"));
            } else if file != "mistakes.toml"
                && !lesson.is_some_and(|lesson| step.meta.lesson.iter().any(|file| file == lesson))
            {
                problems.push(format!("{file}: a wrong fix is mistakes/NAME/ and a lesson file"));
            }
            continue;
        }
        // Absent on one side is a finding; unreadable is a problem of its own.
        let read = |dir: &Path| match std::fs::read_to_string(dir.join(&file)) {
            Ok(text) => Ok(Some(normalise(text))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("{}: {err}", dir.join(&file).display())),
        };
        let (a, b) = match (read(&unsolved), read(&solved)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(err), _) | (_, Err(err)) => {
                problems.push(err);
                continue;
            }
        };
        let is_lesson = step.meta.lesson.contains(&file);
        match (a, b) {
            (Some(a), Some(b)) if is_lesson => {
                if a == b {
                    problems.push(format!("{file}: the solution does not change the lesson"));
                }
                if !a.contains(&todo) {
                    problems.push(format!("{file}: the step has no {todo} marker"));
                }
                // The book shows a lesson whole; anchors belong to the solutions.
                if a.contains("ANCHOR") {
                    problems.push(format!("{file}: the lesson carries ANCHOR markers (keep them in the solution)"));
                }
                // A placeholder that only silences a warning hints at the answer.
                if a.lines().any(|line| line.trim_start().starts_with("let _ = ")) {
                    problems.push(format!("{file}: the lesson has a placeholder line (`let _ = …;`)"));
                }
                if b.contains("TODO(") {
                    problems.push(format!("{file}: the solution still has a TODO marker"));
                }
            }
            (Some(a), Some(b)) if a != b => problems.push(format!("{file} differs, but it is not a lesson file")),
            (Some(_), Some(_)) => {}
            (None, _) => problems.push(format!("{file} exists only in the solution")),
            (_, None) => problems.push(format!("{file} exists only in the step")),
        }
    }
    problems
}

fn list_files(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    use anyhow::Context as _;
    let mut files = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                files.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_solution_changes_only_its_lesson() {
        for step in stitch_runner::step::all().unwrap().iter().filter(|step| step.has_solution()) {
            assert_eq!(super::lesson_only(step), Vec::<String>::new(), "{}", step.name);
        }
    }
}
