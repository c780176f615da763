//! `cargo xtask agenda`: each step's check timed on this machine, for the
//! instructors' agenda (`book/src/generated/agenda.md`). A step is checked
//! twice: first right after its crate was cleaned, so the check builds it as
//! a learner's first check after an edit does, then again, warm. The
//! components a staged step starts (the collector, Jaeger, Envoy, the page)
//! must already be fetched: `cargo xtask deps` does that, and the README
//! says what the very first fetch costs. The same numbers go, as data, into
//! `generated/agenda.toml`, from which `cargo xtask facts` plans the day
//! (`schedule.rs`). The machine's load average, before and after, is part of
//! the record: a loaded machine's times are not a quiet one's.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use stitch_components::process;
use stitch_runner::step::{self, Step};

use crate::table::Table;

/// The agenda's measured part, under `book/src/`.
const FILE: &str = "generated/agenda.md";
/// The same, as data, under `book/src/`.
pub const DATA: &str = "generated/agenda.toml";

/// One step's two checks.
struct Timed {
    step: Step,
    first_s: f64,
    again_s: f64,
    passed: bool,
}

/// What `cargo xtask agenda` measured, as `generated/agenda.toml` keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    pub cores: usize,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages, when the run started and ended.
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    pub steps: Vec<MeasuredStep>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredStep {
    /// `step-4`.
    pub step: String,
    /// Seconds of the check right after the step's crate was cleaned.
    pub first_s: f64,
    /// Seconds of the next check, warm.
    pub again_s: f64,
}

/// The committed measurement, or why there is none.
pub fn measured() -> anyhow::Result<Measured> {
    let path = stitch_paths::project_root().join("book").join("src").join(DATA);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}: `cargo xtask agenda` measures it", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}: `cargo xtask agenda` writes it anew", path.display()))
}

/// The load averages now.
fn load() -> anyhow::Result<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    let mut numbers = text.split_whitespace().map(|field| field.parse::<f64>());
    let mut next = || -> anyhow::Result<f64> { Ok(numbers.next().context("/proc/loadavg is short")??) };
    Ok([next()?, next()?, next()?])
}

pub fn run() -> anyhow::Result<ExitCode> {
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let load_before = load()?;
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
            let flows = stitch_paths::run_dir().join("gate-flows");
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
    let cores = std::thread::available_parallelism().context("counting this machine's cores")?.get();
    let measured = Measured {
        cores,
        load_before,
        load_after: load()?,
        steps: timed
            .iter()
            .map(|timed| MeasuredStep { step: timed.step.short_name(), first_s: timed.first_s, again_s: timed.again_s })
            .collect(),
    };
    let src = stitch_paths::project_root().join("book").join("src");
    let data = format!(
        "# Generated by `cargo xtask agenda` from real runs: do not edit. `cargo xtask facts` plans the day from it.\n{}",
        toml::to_string(&measured)?
    );
    for (file, text) in [(FILE, markdown(&timed, &measured)), (DATA, data)] {
        let path = src.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    // The schedule is planned from these times: write it anew.
    crate::facts::write()?;
    Ok(ExitCode::SUCCESS)
}

fn markdown(timed: &[Timed], measured: &Measured) -> String {
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
            format!("{:.1} s", step.first_s),
            format!("{:.1} s", step.again_s),
            if step.passed { "pass".to_owned() } else { "fails, as the baseline must".to_owned() },
        ]);
    }
    format!(
        "<!-- generated by `cargo xtask agenda` from real runs: do not edit -->\nMeasured by `cargo xtask agenda` on a {}-core machine, with the workspace and every component \
         already built; its load average (1 minute) was {:.1} when the run started and {:.1} when it ended{}.\n\n{}\n",
        measured.cores,
        measured.load_before[0],
        measured.load_after[0],
        if measured.load_before[0].max(measured.load_after[0]) > measured.cores as f64 / 2.0 {
            ": other work shared the machine, so a quiet machine's checks are faster"
        } else {
            ""
        },
        table.markdown()
    )
}
