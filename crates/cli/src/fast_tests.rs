//! The fast tests of the propagation steps (`tests/` in a step's crate: the
//! boundary in-process, in seconds). Unsolved they fail by design, so the
//! workspace test run leaves those crates out, and `cargo xtask ci` proves
//! instead that each fails unsolved, pointing at its chapter, and passes
//! solved.

use anyhow::Context as _;
use stitch_components::process;
use stitch_runner::step::{Step, StepDirs as _};

/// The steps whose crate carries fast tests.
pub(crate) fn steps_with_tests(steps: &[Step]) -> Vec<&Step> {
    steps.iter().filter(|step| step.has_solution() && step.dir(false).join("tests").is_dir()).collect()
}

/// Arguments of `cargo test --workspace` without the unsolved crates whose
/// fast tests fail by design.
pub(crate) fn workspace_test_args(steps: &[Step]) -> Vec<String> {
    let mut args: Vec<String> = ["test", "--workspace", "--no-fail-fast"].map(String::from).to_vec();
    for step in steps_with_tests(steps) {
        args.extend(["--exclude".to_owned(), step.package(false)]);
    }
    args
}

/// What is wrong with `step`'s fast tests: they must fail unsolved, naming the
/// chapter, and pass solved.
pub(crate) fn prove(step: &Step) -> Vec<String> {
    let mut problems = Vec::new();
    let (unsolved, solved) = (step.package(false), step.package(true));
    match cargo_test(&unsolved) {
        Ok((true, _)) => problems.push(format!("`cargo test -p {unsolved}` passes: the fast tests teach nothing")),
        Ok((false, output)) if !output.contains("test result: FAILED") => problems
            .push(format!("`cargo test -p {unsolved}` fails before any test runs:\n{}", process::tail(&output, 20))),
        Ok((false, output)) if !output.contains(&step.meta.chapter) => {
            problems.push(format!("`cargo test -p {unsolved}` fails without pointing at {}", step.meta.chapter))
        }
        Ok((false, _)) => {}
        Err(err) => problems.push(format!("{err:#}")),
    }
    match cargo_test(&solved) {
        Ok((true, _)) => {}
        Ok((false, output)) => {
            problems.push(format!("`cargo test -p {solved}` fails:\n{}", process::tail(&output, 20)))
        }
        Err(err) => problems.push(format!("{err:#}")),
    }
    problems
}

/// Runs `cargo test -p package`: whether it passed, and its output.
fn cargo_test(package: &str) -> anyhow::Result<(bool, String)> {
    let output = process::cargo(&[&"test", &"--package", &package])
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .with_context(|| format!("running cargo test -p {package}"))?;
    Ok((output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned()))
}

#[cfg(test)]
mod tests {
    use stitch_runner::step::StepDirs as _;

    #[test]
    fn the_workspace_test_run_leaves_out_exactly_the_unsolved_crates_with_fast_tests() {
        let steps = stitch_runner::step::all().unwrap();
        let with_tests = super::steps_with_tests(&steps);
        assert!(!with_tests.is_empty(), "no step has fast tests");
        let args = super::workspace_test_args(&steps);
        let excluded: Vec<&str> =
            args.windows(2).filter(|pair| pair[0] == "--exclude").map(|pair| pair[1].as_str()).collect();
        let expected: Vec<String> = with_tests.iter().map(|step| step.package(false)).collect();
        assert_eq!(excluded, expected);
        for step in with_tests {
            assert!(step.dir(true).join("tests").is_dir(), "{}: the solution has no tests/", step.name);
        }
    }
}
