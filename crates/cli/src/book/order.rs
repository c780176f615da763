//! The course's order, checked: a chapter poses its exercise before it shows
//! the answer. Code included from `solutions/` may appear only after the
//! chapter's exercise heading (`## The exercise`), and only inside a folded
//! `<details>` block, so a learner who reads straight down meets the problem,
//! the concepts and the command before any line of the fix. (What else
//! gives an answer away, in prose or in a crate, is the answer scan's to
//! find: `answer_scan.rs`.)

use std::path::Path;

use super::{Problem, directives};

/// A heading that opens a chapter's exercise: `## The exercise`, `### Exercise`.
fn is_exercise_heading(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with('#')
        && trimmed
            .trim_start_matches('#')
            .trim()
            .to_ascii_lowercase()
            .trim_start_matches("the ")
            .starts_with("exercise")
}

/// For each line (0-based), whether it is inside a `<details>` block, and
/// the 1-based line of the first exercise heading outside code fences.
pub(crate) fn layout(text: &str) -> (Vec<bool>, Option<usize>) {
    let mut depth = 0usize;
    let mut fence: Option<&str> = None;
    let mut exercise = None;
    let mut folded = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(marker) = ["```", "~~~"].into_iter().find(|marker| trimmed.starts_with(marker)) {
            fence = match fence {
                None => Some(marker),
                Some(open) if open == marker => None,
                open => open,
            };
        } else if fence.is_none() {
            depth += line.matches("<details").count();
            if exercise.is_none() && is_exercise_heading(line) {
                exercise = Some(index + 1);
            }
        }
        folded.push(depth > 0);
        if fence.is_none() {
            depth = depth.saturating_sub(line.matches("</details>").count());
        }
    }
    (folded, exercise)
}

/// Problems of one Markdown file: solution code shown too early or unfolded.
pub fn check(file: &Path, text: &str) -> Vec<Problem> {
    let (folded, exercise) = layout(text);
    let mut problems = Vec::new();
    for directive in directives(text) {
        if !matches!(directive.kind, "include" | "rustdoc_include" | "playground" | "playpen") {
            continue;
        }
        let path = directive.target.split_once(':').map_or(directive.target, |(path, _)| path);
        let mut problem = |message: String| {
            problems.push(Problem { file: file.to_path_buf(), line: directive.line, message });
        };
        if !path.split('/').any(|part| part == "solutions") {
            continue;
        }
        match exercise {
            None => problem(format!(
                "`{}` shows solution code, but the chapter has no exercise heading (`## The exercise`) to put it after",
                directive.target
            )),
            Some(heading) if directive.line < heading => problem(format!(
                "`{}` shows solution code before the exercise (line {heading}): move it after, in a <details> block",
                directive.target
            )),
            Some(_) if !folded.get(directive.line - 1).copied().unwrap_or(false) => problem(format!(
                "`{}` shows solution code outside a <details> block: fold it, so the answer is a choice",
                directive.target
            )),
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, String)> {
        check(Path::new("chapter.md"), text).into_iter().map(|problem| (problem.line, problem.message)).collect()
    }

    const FIX: &str = "{{#include ../../solutions/step-01-http/src/http.rs:client}}";

    #[test]
    fn the_answer_folded_after_the_exercise_passes() {
        let chapter = format!(
            "# Step 1\n\n## What breaks\n\n```rust\n{{{{#include ../../steps/step-01-http/src/http.rs}}}}\n```\n\n\
             ## The exercise\n\nRun `cargo xtask check step-1`.\n\n<details>\n<summary>The solution</summary>\n\n\
             ```rust,ignore\n{FIX}\n```\n\n</details>\n\n\
             {{{{#include ../../steps/step-01-http/step.toml:judged}}}}\n"
        );
        assert_eq!(lines(&chapter), vec![]);
    }

    #[test]
    fn the_answer_before_the_exercise_fails_with_its_line() {
        let chapter = format!("# Step 1\n\n## The fix\n\n```rust,ignore\n{FIX}\n```\n\n## The exercise\n\nRun it.\n");
        let found = lines(&chapter);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 6);
        assert!(found[0].1.contains("before the exercise (line 9)"), "{found:?}");

        // Folding does not excuse showing it first.
        let folded = format!("# Step 1\n\n<details>\n\n{FIX}\n\n</details>\n\n## The exercise\n");
        assert_eq!(lines(&folded).len(), 1);
    }

    #[test]
    fn the_answer_unfolded_after_the_exercise_fails() {
        let chapter =
            format!("# Step 1\n\n## The exercise\n\n<details>\nhints\n</details>\n\n```rust,ignore\n{FIX}\n```\n");
        let found = lines(&chapter);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 10);
        assert!(found[0].1.contains("outside a <details> block"), "{found:?}");
    }

    #[test]
    fn no_exercise_heading_fails() {
        assert!(lines(&format!("# Primer\n\n{FIX}\n"))[0].1.contains("no exercise heading"));
    }

    #[test]
    fn a_heading_in_a_code_block_is_not_the_exercise() {
        let chapter = format!("# Step 1\n\n```text\n## The exercise\n```\n\n<details>\n\n{FIX}\n\n</details>\n");
        assert!(lines(&chapter)[0].1.contains("no exercise heading"));
    }
}
