//! `cargo xtask agenda`: each step's check timed on this machine, for the
//! instructors' agenda (`book/src/generated/agenda.md`). A step is checked
//! twice: first right after its crate was cleaned, so the check builds it as
//! a learner's first check after an edit does, then again, warm. The
//! components a staged step starts (the collector, Jaeger, Envoy, the page)
//! must already be fetched: `cargo xtask deps` and one `cargo xtask ci`
//! do that, and the README says what the very first fetch costs.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use stitch_harness::process;
use stitch_harness::step::{self, Step};

use crate::report::HEADER;
use crate::table::Table;

/// The agenda's measured part, under `book/src/`.
const FILE: &str = "generated/agenda.md";

/// One step's two checks.
struct Timed {
    step: Step,
    first_s: f64,
    again_s: f64,
    passed: bool,
}

pub fn run() -> anyhow::Result<ExitCode> {
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let mut timed = Vec::new();
    for step in step::all()? {
        // The baseline has no solution: its own check is the one to time.
        let solution = step.has_solution();
        let package = step.package(solution);
        eprintln!("agenda: {} ({package})…", step.short_name());
        process::cargo(&[&"clean", &"--quiet", &"-p", &package])
            .run()
            .with_context(|| format!("cleaning {package}"))?;
        if step.meta.judge.is_some() {
            // The gate's recorded flows are part of a first check too.
            let flows = stitch_harness::run_dir().join("gate-flows");
            if flows.exists() {
                std::fs::remove_dir_all(&flows).with_context(|| format!("removing {}", flows.display()))?;
            }
        }
        let mut args = vec!["check".to_owned(), step.short_name()];
        if solution {
            args.push("--solution".to_owned());
        }
        let check = || -> anyhow::Result<(f64, bool)> {
            let started = Instant::now();
            let output = duct::cmd(&xtask, &args).stdout_null().stderr_null().unchecked().run()?;
            Ok((started.elapsed().as_secs_f64(), output.status.success()))
        };
        let (first_s, first_passed) = check()?;
        let (again_s, again_passed) = check()?;
        // The baseline is meant to fail; every solution must pass.
        let passed = first_passed && again_passed;
        if solution && !passed {
            anyhow::bail!("{}'s check failed: run `cargo xtask check {} --solution`", step.short_name(), step.number);
        }
        eprintln!("agenda: {}: {first_s:.0} s, then {again_s:.0} s", step.short_name());
        timed.push(Timed { step, first_s, again_s, passed });
    }
    let path = stitch_harness::project_root().join("book").join("src").join(FILE);
    std::fs::write(&path, markdown(&timed)?).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn markdown(timed: &[Timed]) -> anyhow::Result<String> {
    let mut table = Table::new(
        &["step", "checked", "first check (builds the step)", "again (warm)", "verdict"],
        &[false, false, true, true, false],
    );
    for step in timed {
        table.row(vec![
            step.step.short_name(),
            format!(
                "`cargo xtask check {}{}`",
                step.step.number,
                if step.step.has_solution() { " --solution" } else { "" }
            ),
            format!("{:.0} s", step.first_s),
            format!("{:.0} s", step.again_s),
            if step.passed { "pass".to_owned() } else { "fails, as the baseline must".to_owned() },
        ]);
    }
    let cores = std::thread::available_parallelism().context("counting this machine's cores")?;
    Ok(format!(
        "{HEADER}\nMeasured by `cargo xtask agenda` on a {cores}-core machine, with the workspace and every component \
         already built.\n\n{}\n",
        table.markdown()
    ))
}
