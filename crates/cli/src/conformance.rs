//! `cargo xtask conformance`: the W3C Trace Context rules measured both
//! ways, into the book. The conformance crate's per-rule tests run against
//! the project's propagator and against OpenTelemetry's alone
//! (`book/src/generated/conformance-rules.md`); with `--w3c-suite`, the
//! official suite runs against the conformance service with each propagator
//! at levels 2 and 1 (`book/src/generated/conformance-suite.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use stitch_components::process;

/// The rule tests, one file per header.
const RULE_FILES: [&str; 2] = ["traceparent", "tracestate"];
const RULES_FILE: &str = "book/src/generated/conformance-rules.md";
const SUITE_FILE: &str = "book/src/generated/conformance-suite.md";
/// `STITCH_CONFORMANCE_PROPAGATOR`'s values, the project's first.
const MODES: [&str; 2] = ["project", "sdk"];
const COLUMNS: &str = "project's propagator | SDK's alone";
/// The suite's `STRICT_LEVEL` and `SPEC_LEVEL`, set alike.
const LEVELS: [u8; 2] = [2, 1];

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The `test/` folder of a git checkout of github.com/w3c/trace-context:
    /// also run the official suite. Without it, the suite's file is left as
    /// it was.
    #[arg(long)]
    pub w3c_suite: Option<PathBuf>,
    /// The Python that runs the suite; it needs `aiohttp`.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    Error,
    Skipped,
}

impl Outcome {
    fn cell(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "**fails**",
            Outcome::Error => "**error**",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Each test of one run, in the order it reported.
type Results = Vec<(String, Outcome)>;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let root = stitch_paths::project_root();
    let mut files = Vec::new();
    for file in RULE_FILES {
        let by_mode = MODES.map(|mode| rule_tests(file, mode));
        let [project, sdk] = by_mode;
        files.push((file, project?, sdk?));
    }
    write(&root.join(RULES_FILE), &render_rules(&files)?)?;
    let project_failures: usize = files
        .iter()
        .map(|(_, project, _)| project.iter().filter(|(_, outcome)| *outcome != Outcome::Pass).count())
        .sum();
    match &args.w3c_suite {
        Some(suite) => write(&root.join(SUITE_FILE), &official_suite(suite, &args.python)?)?,
        None => eprintln!("{SUITE_FILE} left as it was: --w3c-suite DIR runs the official suite again"),
    }
    if project_failures > 0 {
        eprintln!("the project's propagator fails {project_failures} rule tests");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One rule file's tests with `STITCH_CONFORMANCE_PROPAGATOR=mode`.
fn rule_tests(file: &str, mode: &str) -> anyhow::Result<Results> {
    eprintln!("· conformance: tests/{file}.rs against the {mode} propagator");
    let output = process::cargo(&[&"test", &"--package", &"stitch-conformance", &"--no-fail-fast", &"--test", &file])
        .env("STITCH_CONFORMANCE_PROPAGATOR", mode)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .context("running cargo test")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results = libtest_results(&stdout);
    let summary = stdout.lines().find(|line| line.starts_with("test result:"));
    let Some(summary) = summary else {
        bail!("tests/{file}.rs did not run:\n{}", String::from_utf8_lossy(&output.stderr));
    };
    let counted = ["passed", "failed", "ignored"].map(|word| {
        summary
            .split(';')
            .find_map(|part| part.trim().strip_suffix(word)?.trim().rsplit(' ').next()?.parse::<usize>().ok())
    });
    let [Some(passed), Some(failed), Some(ignored)] = counted else { bail!("unreadable summary {summary:?}") };
    if results.len() != passed + failed + ignored || results.is_empty() {
        bail!("tests/{file}.rs: read {} test lines, the summary says {summary:?}", results.len());
    }
    Ok(results)
}

/// `test NAME ... ok|FAILED|ignored`, as libtest prints on stdout.
fn libtest_results(stdout: &str) -> Results {
    stdout
        .lines()
        .filter_map(|line| {
            let (name, status) = line.strip_prefix("test ")?.rsplit_once(" ... ")?;
            let outcome = match status {
                "ok" => Outcome::Pass,
                "FAILED" => Outcome::Fail,
                status if status.starts_with("ignored") => Outcome::Skipped,
                _ => return None,
            };
            Some((name.to_owned(), outcome))
        })
        .collect()
}

/// `level_2_a_new_random_trace_id_sets_the_random_flag` → `Level 2: a new
/// random trace id sets the random flag`.
fn rule_text(test: &str) -> String {
    let words = test.replace('_', " ");
    match words.strip_prefix("level 2 ") {
        Some(rest) => format!("Level 2: {rest}"),
        None => words,
    }
}

fn render_rules(files: &[(&str, Results, Results)]) -> anyhow::Result<String> {
    let mut text = String::from(
        "<!-- Written by `cargo xtask conformance` from the tests' own results; do not edit. -->\n\n\
         <!-- ANCHOR: counts -->\n",
    );
    text.push_str(&format!("| tests | {COLUMNS} |\n| --- | ---: | ---: |\n"));
    for (file, project, sdk) in files {
        let passed = |results: &Results| results.iter().filter(|(_, outcome)| *outcome == Outcome::Pass).count();
        text.push_str(&format!(
            "| `tests/{file}.rs` | {} of {} pass | {} of {} pass |\n",
            passed(project),
            project.len(),
            passed(sdk),
            sdk.len()
        ));
    }
    text.push_str("<!-- ANCHOR_END: counts -->\n");
    for (file, project, sdk) in files {
        let sdk: BTreeMap<&str, Outcome> = sdk.iter().map(|(name, outcome)| (name.as_str(), *outcome)).collect();
        let mut names: Vec<&str> = project.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        if names.len() != sdk.len() || names.iter().any(|name| !sdk.contains_key(name)) {
            bail!("tests/{file}.rs ran other tests against each propagator");
        }
        let project: BTreeMap<&str, Outcome> =
            project.iter().map(|(name, outcome)| (name.as_str(), *outcome)).collect();
        text.push_str(&format!(
            "\n<!-- ANCHOR: {file} -->\n| rule (`tests/{file}.rs`) | {COLUMNS} |\n| --- | --- | --- |\n"
        ));
        for name in names {
            text.push_str(&format!("| {} | {} | {} |\n", rule_text(name), project[name].cell(), sdk[name].cell()));
        }
        text.push_str(&format!("<!-- ANCHOR_END: {file} -->\n"));
    }
    Ok(text)
}

/// Runs the official suite in `suite` against the conformance service, each
/// propagator at each level, and renders what it said.
fn official_suite(suite: &Path, python: &Path) -> anyhow::Result<String> {
    if !suite.join("test.py").is_file() {
        bail!("{} has no test.py: pass the `test/` folder of a w3c/trace-context checkout", suite.display());
    }
    let commit = duct::cmd!("git", "-C", suite, "rev-parse", "--short=7", "HEAD")
        .stdout_capture()
        .stderr_null()
        .read()
        .with_context(|| {
            format!("{} is not in a git checkout: the suite's commit is part of the result", suite.display())
        })?;
    duct::cmd!(python, "-c", "import aiohttp").stdout_null().stderr_null().run().with_context(|| {
        format!("{} cannot import aiohttp: `pip install aiohttp`, or pass --python", python.display())
    })?;
    process::cargo_build(&["stitch-conformance"])?;
    let mut runs: BTreeMap<(u8, &str), Results> = BTreeMap::new();
    for mode in MODES {
        let service = Service::start(mode)?;
        for level in LEVELS {
            eprintln!("· conformance: the official suite at level {level} against the {mode} propagator");
            runs.insert((level, mode), suite_run(suite, python, &service.endpoint(), level)?);
        }
    }
    Ok(render_suite(&commit, &runs))
}

/// The conformance service, stopped when dropped.
struct Service {
    handle: duct::Handle,
    port: u16,
}

impl Service {
    fn start(mode: &str) -> anyhow::Result<Service> {
        let port = process::free_port()?;
        let binary = process::binary("stitch-conformance");
        let handle = duct::cmd!(binary, "--port", port.to_string(), "--propagator", mode)
            .stdout_null()
            .stderr_null()
            .start()
            .context("starting stitch-conformance")?;
        let service = Service { handle, port };
        let listening = process::poll(Duration::from_secs(10), Duration::from_millis(50), || {
            if service.handle.try_wait()?.is_some() {
                bail!("stitch-conformance exited before it listened on 127.0.0.1:{port}");
            }
            anyhow::Ok(std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop))
        })?;
        if listening.is_none() {
            bail!("stitch-conformance did not listen on 127.0.0.1:{port} within 10 s");
        }
        Ok(service)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/test", self.port)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Err(err) = self.handle.kill() {
            eprintln!("stopping stitch-conformance: {err}");
        }
    }
}

/// One run of `test.py`, every test's outcome.
fn suite_run(suite: &Path, python: &Path, endpoint: &str, level: u8) -> anyhow::Result<Results> {
    let harness_port = process::free_port()?;
    let output = duct::cmd!(python, "test.py", endpoint)
        .dir(suite)
        .env("STRICT_LEVEL", level.to_string())
        .env("SPEC_LEVEL", level.to_string())
        .env("HARNESS_PORT", harness_port.to_string())
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .context("running the suite")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let results = unittest_results(&text);
    let ran = text
        .lines()
        .find_map(|line| line.strip_prefix("Ran ")?.split(' ').next()?.parse::<usize>().ok())
        .with_context(|| format!("the suite did not run:\n{text}"))?;
    if results.len() != ran {
        bail!("read {} outcomes, the suite ran {ran} tests:\n{text}", results.len());
    }
    Ok(results)
}

/// unittest at verbosity 2: `test_name (module.Class.test_name)`, then
/// (after the docstring's first line, if any) ` ... ok|FAIL|ERROR|skipped …`.
fn unittest_results(text: &str) -> Results {
    let mut results = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if let Some((name, _)) = line.split_once(" (").filter(|(name, _)| name.starts_with("test_")) {
            current = Some(name);
        }
        let Some((_, status)) = line.rsplit_once(" ... ") else { continue };
        let outcome = match status {
            "ok" => Outcome::Pass,
            "FAIL" => Outcome::Fail,
            "ERROR" => Outcome::Error,
            status if status.starts_with("skipped") => Outcome::Skipped,
            _ => continue,
        };
        if let Some(name) = current.take() {
            results.push((name.to_owned(), outcome));
        }
    }
    results
}

fn render_suite(commit: &str, runs: &BTreeMap<(u8, &str), Results>) -> String {
    let count = |results: &Results| {
        let of = |wanted: Outcome| results.iter().filter(|(_, outcome)| *outcome == wanted).count();
        let mut parts = vec![format!("{} of {} pass", of(Outcome::Pass), results.len())];
        for (outcome, word) in [(Outcome::Fail, "fail"), (Outcome::Error, "error"), (Outcome::Skipped, "skipped")] {
            if of(outcome) > 0 {
                parts.push(format!("{} {word}", of(outcome)));
            }
        }
        parts.join(", ")
    };
    let mut text = format!(
        "<!-- Written by `cargo xtask conformance --w3c-suite DIR`; do not edit. -->\n\n\
         <!-- ANCHOR: counts -->\n\
         The official suite (github.com/w3c/trace-context, `test/` at commit `{commit}`) against the conformance service:\n\n\
         | run | {COLUMNS} |\n| --- | --- | --- |\n"
    );
    for level in LEVELS {
        let cells = MODES.map(|mode| runs.get(&(level, mode)).map_or_else(String::new, count));
        text.push_str(&format!("| `STRICT_LEVEL={level} SPEC_LEVEL={level}` | {} | {} |\n", cells[0], cells[1]));
    }
    text.push_str("<!-- ANCHOR_END: counts -->\n\n<!-- ANCHOR: tests -->\n");
    let header: Vec<String> =
        LEVELS.iter().flat_map(|level| MODES.map(|mode| format!("level {level}, {mode}"))).collect();
    text.push_str(&format!("| test | {} |\n|{}\n", header.join(" | "), " --- |".repeat(header.len() + 1)));
    let outcome = |level: u8, mode: &str, test: &str| {
        runs.get(&(level, mode))
            .and_then(|results| results.iter().find(|(name, _)| name == test))
            .map(|(_, outcome)| *outcome)
    };
    let mut tests: Vec<&str> = runs.values().flatten().map(|(name, _)| name.as_str()).collect();
    tests.sort_unstable();
    tests.dedup();
    let mut shown = 0;
    for test in tests {
        let cells: Vec<Option<Outcome>> =
            LEVELS.iter().flat_map(|level| MODES.map(|mode| outcome(*level, mode, test))).collect();
        if cells.iter().all(|cell| matches!(cell, Some(Outcome::Pass | Outcome::Skipped))) {
            continue;
        }
        shown += 1;
        let cells: Vec<&str> = cells.iter().map(|cell| cell.map_or("", Outcome::cell)).collect();
        text.push_str(&format!("| `{test}` | {} |\n", cells.join(" | ")));
    }
    if shown == 0 {
        text.push_str("| every test passes or is skipped by its level, with both propagators |\n");
    }
    text.push_str("<!-- ANCHOR_END: tests -->\n");
    text
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_read_with_their_outcome() {
        let stdout = "running 3 tests\ntest a_b ... ok\ntest c ... FAILED\ntest d ... ignored, slow\n\nfailures:\n";
        assert_eq!(
            libtest_results(stdout),
            [("a_b".to_owned(), Outcome::Pass), ("c".to_owned(), Outcome::Fail), ("d".to_owned(), Outcome::Skipped)]
        );
    }

    #[test]
    fn unittest_lines_are_read_with_or_without_a_docstring() {
        let text = "test_x (__main__.T.test_x)\nharness sends ... a request ... ok\n\
                    test_y (__main__.T.test_y) ... FAIL\n\
                    test_z (__main__.T.test_z)\nharness sends z ... skipped 'strict'\n\
                    test_w (__main__.T.test_w)\nharness sends w ... ERROR\nRan 4 tests in 0.1s\n";
        assert_eq!(
            unittest_results(text),
            [
                ("test_x".to_owned(), Outcome::Pass),
                ("test_y".to_owned(), Outcome::Fail),
                ("test_z".to_owned(), Outcome::Skipped),
                ("test_w".to_owned(), Outcome::Error),
            ]
        );
    }

    #[test]
    fn a_test_name_reads_as_its_rule() {
        assert_eq!(rule_text("a_trace_id_of_31_digits_is_rejected"), "a trace id of 31 digits is rejected");
        assert_eq!(
            rule_text("level_2_a_new_random_trace_id_sets_the_random_flag"),
            "Level 2: a new random trace id sets the random flag"
        );
    }
}
