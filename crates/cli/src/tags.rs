//! `cargo xtask tags`: a local `workshop` branch with one tagged commit per
//! step start and solution, for teaching with `git checkout step-02-start`.
//!
//! It works in a temporary worktree, so the current checkout is untouched.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use stitch_runner::step::{self, Step};

pub const BRANCH: &str = "workshop";

fn git(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = duct::cmd("git", args)
        .dir(repo)
        // Commits need an author even where git has none configured.
        .env("GIT_AUTHOR_NAME", "Stitch")
        .env("GIT_AUTHOR_EMAIL", "stitch@localhost")
        .env("GIT_COMMITTER_NAME", "Stitch")
        .env("GIT_COMMITTER_EMAIL", "stitch@localhost")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !output.status.success() {
        bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Builds the branch and tags in `repo` from its HEAD; returns the tag names.
pub fn build(repo: &Path, steps: &[Step]) -> anyhow::Result<Vec<String>> {
    let worktree = std::env::temp_dir().join(format!("stitch-tags-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&worktree);
    git(repo, &["worktree", "add", "--quiet", "--detach", &worktree.to_string_lossy(), "HEAD"])?;
    let built = tag_steps(&worktree, steps);
    let _ = git(repo, &["worktree", "remove", "--force", &worktree.to_string_lossy()]);
    built
}

fn tag_steps(worktree: &Path, steps: &[Step]) -> anyhow::Result<Vec<String>> {
    let mut tags = Vec::new();
    for step in steps {
        let start = format!("step-{:02}-start", step.number);
        git(worktree, &["tag", "--force", &start])?;
        tags.push(start);
        if !step.has_solution() {
            continue;
        }
        // The learner's crate, solved: the solution's lesson files in place.
        for file in &step.meta.lesson {
            let relative = |tree: &str| format!("{tree}/{}/{file}", step.name);
            let solved = std::fs::read(worktree.join(relative("solutions")))
                .with_context(|| format!("reading the solution of {}", relative("steps")))?;
            std::fs::write(worktree.join(relative("steps")), solved)?;
            git(worktree, &["add", &relative("steps")])?;
        }
        git(worktree, &["commit", "--quiet", "-m", &format!("{}: solved", step.name)])?;
        let solution = format!("step-{:02}-solution", step.number);
        git(worktree, &["tag", "--force", &solution])?;
        tags.push(solution);
    }
    git(worktree, &["branch", "--force", BRANCH, "HEAD"])?;
    Ok(tags)
}

pub fn run() -> anyhow::Result<ExitCode> {
    let root = stitch_paths::project_root();
    let tags = build(&root, &step::all()?)?;
    println!("branch `{BRANCH}` with tags: {}", tags.join(", "));
    println!("teach with e.g. `git checkout step-02-start`; `git checkout step-02-solution` shows the fix");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_solution_tag_holds_the_solved_lesson() {
        let root = stitch_paths::project_root();
        let clone = std::env::temp_dir().join(format!("stitch-tags-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&clone);
        git(&root, &["clone", "--quiet", &root.to_string_lossy(), &clone.to_string_lossy()]).expect("clone");
        let steps = step::all().expect("steps");
        let tags = build(&clone, &steps).expect("tags build");
        for step in steps.iter().filter(|step| step.has_solution()) {
            assert!(tags.contains(&format!("step-{:02}-solution", step.number)));
            for file in &step.meta.lesson {
                let path = format!("steps/{}/{file}", step.name);
                let start = git(&clone, &["show", &format!("step-{:02}-start:{path}", step.number)]).expect("start");
                let solved =
                    git(&clone, &["show", &format!("step-{:02}-solution:{path}", step.number)]).expect("solved");
                let solution =
                    git(&clone, &["show", &format!("HEAD:solutions/{}/{file}", step.name)]).expect("solution");
                assert!(start.contains(&format!("TODO({})", step.short_name())), "{path} at the start has its TODO");
                assert_eq!(solved, solution, "{path} at the solution tag is the solution's file");
            }
        }
        assert!(git(&clone, &["status", "--porcelain"]).expect("status").is_empty(), "the checkout is untouched");
        let _ = std::fs::remove_dir_all(&clone);
    }
}
