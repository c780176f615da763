//! The flows step 5's judge is shown, each with what a correct gate says of
//! it: the fixed flow (pass), each flow broken at a boundary (reject), the
//! log-filter trap (reject: connected, but a hop is missing) and a regression
//! under the 1% limit but above the committed baseline (reject). Each run is
//! recorded once as a JSON file and reused while the flows' sources, the
//! request count and the broker stay the same.

use std::hash::{DefaultHasher, Hasher as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use lineage::{Boundary, ServiceReport};

use stitch_judge::gate;
use stitch_model::{Baseline, CheckRun, ORPHAN_RATE_LIMIT, Step, percent};

use crate::check::{self, CheckOptions, Variant};
use crate::kafka::BrokerKind;
use crate::lesson::LessonCrate;
use crate::step::{self, StepDirs as _};

/// The log filter of the trap in `traps/log-filter`: it drops the spans
/// reqwest-tracing records, so the gateway's client span never exists.
pub const LOG_FILTER_TRAP: &str = "info,reqwest=off";

/// The internal service the regression orphans spans in.
const REGRESSED_SERVICE: &str = "worker";

/// The committed baseline of this checkout.
pub fn baseline_path() -> PathBuf {
    crate::project_root().join(Baseline::PATH)
}

/// One flow the judge is shown.
#[derive(Debug, Clone)]
pub struct GateFlow {
    /// Short name, also its run file's: `fixed`, `step-1-unsolved`, …
    pub name: String,
    /// What is wrong with the flow, as the check's table says it.
    pub wrong: String,
    /// Whether a correct gate lets it pass.
    pub should_pass: bool,
    /// Where its recorded run (a `CheckRun` as JSON) is.
    pub run_file: PathBuf,
    /// Whether this invocation recorded it (false: reused from an earlier one).
    pub recorded_now: bool,
}

/// How to record the flows.
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// Requests per flow.
    pub requests: usize,
    pub kafka: BrokerKind,
    /// Records every flow again, even when runs of the same sources are kept
    /// (the book's numbers come from fresh runs).
    pub record_anew: bool,
}

/// Records (or reuses) every flow, checked against the project's gate
/// (`crate::gate`): a run that does not show what its flow should, say a
/// fixed flow that lost spans on a loaded machine, is an error rather than a
/// row that blames the learner's gate.
pub fn record(options: &FlowOptions) -> anyhow::Result<Vec<GateFlow>> {
    let steps = step::all()?;
    let fixed_step = step::final_flow()?;
    let dir = cache_dir(&steps, options)?;
    if options.record_anew && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let baseline = Baseline::read(&baseline_path())?;
    let mut flows = Vec::new();

    let fixed_crate = LessonCrate::solution(&fixed_step);
    let (fixed, recorded_now) =
        recorded(&dir, "fixed", || run(&fixed_step, &fixed_crate, options, Variant::default(), "gate-fixed"))?;
    flows.push(GateFlow {
        name: "fixed".to_owned(),
        wrong: format!("nothing: {} solved, every boundary propagates", fixed_step.short_name()),
        should_pass: true,
        run_file: dir.join("fixed.json"),
        recorded_now,
    });

    let flow_steps: Vec<&Step> = steps.iter().filter(|step| step.is_flow() && step.has_solution()).collect();
    for (index, broken) in flow_steps.iter().enumerate() {
        let name = format!("{}-unsolved", broken.short_name());
        let label = format!("gate-{name}");
        let shipped = as_shipped(broken)?;
        let (_, recorded_now) = recorded(&dir, &name, || run(broken, &shipped, options, Variant::default(), &label))?;
        // This step's boundary is broken, and so is every one a later step fixes.
        let lost: Vec<String> =
            flow_steps[index..].iter().flat_map(|step| step.meta.teaches.iter().map(ToString::to_string)).collect();
        flows.push(GateFlow {
            wrong: format!("context lost at: {}", lost.join(", ")),
            should_pass: false,
            run_file: dir.join(format!("{name}.json")),
            name,
            recorded_now,
        });
    }

    let (_, recorded_now) = recorded(&dir, "log-filter", || {
        let variant =
            Variant { service_args: vec!["--log".to_owned(), LOG_FILTER_TRAP.to_owned()], ..Variant::default() };
        run(&fixed_step, &fixed_crate, options, variant, "gate-log-filter")
    })?;
    flows.push(GateFlow {
        name: "log-filter".to_owned(),
        wrong: format!("`--log {LOG_FILTER_TRAP}` drops the gateway's client span: one connected trace, a hop missing"),
        should_pass: false,
        run_file: dir.join("log-filter.json"),
        recorded_now,
    });

    // Made from the fixed run, not recorded: a real flow that orphans a few
    // spans in a thousand would take a flow of its own (see the table).
    let (regression, recorded_now) = recorded(&dir, "regression", || regression(&fixed, &baseline))?;
    let row = service_row(&regression, REGRESSED_SERVICE)?;
    flows.push(GateFlow {
        name: "regression (made from fixed)".to_owned(),
        wrong: format!(
            "{REGRESSED_SERVICE} roots outside any request: {} of {} spans ({}), under the {} limit, above the \
             committed {}",
            row.orphans,
            row.spans,
            percent(row.orphan_rate),
            percent(ORPHAN_RATE_LIMIT),
            percent(baseline.services.get(REGRESSED_SERVICE).copied().context("the baseline has no worker")?),
        ),
        should_pass: false,
        run_file: dir.join("regression.json"),
        recorded_now,
    });

    for flow in &flows {
        confirm(flow, &baseline)?;
    }
    Ok(flows)
}

/// The flow `step` ships unsolved: its boundary broken, and every one a
/// later step fixes. Built from crates a learner never edits (the broken
/// baseline, the solutions; see `crates/broken-flows`), so that what the
/// learner has solved since does not change what step 5 is judged on.
pub fn as_shipped(step: &Step) -> anyhow::Result<LessonCrate> {
    let [boundary] = step.meta.teaches.as_slice() else {
        bail!("{} teaches {} boundaries; a flow step teaches one", step.short_name(), step.meta.teaches.len())
    };
    Ok(match boundary {
        // Broken from the first boundary on: the baseline itself.
        Boundary::Http => LessonCrate::other("step-00-broken", "step-00-broken"),
        later => LessonCrate::other(BROKEN_FLOWS, &format!("broken-from-{later}")),
    })
}

/// The package of the flows broken from a later boundary on.
const BROKEN_FLOWS: &str = "stitch-broken-flows";

/// Runs one flow for the judge.
fn run(
    step: &Step,
    lesson: &LessonCrate,
    options: &FlowOptions,
    variant: Variant,
    label: &str,
) -> anyhow::Result<CheckRun> {
    let options = CheckOptions {
        step: step.clone(),
        lesson: lesson.clone(),
        requests: options.requests,
        kafka: options.kafka,
        concurrency: 8,
    };
    let variant = Variant { name: Some(label.to_owned()), ..variant };
    eprintln!("recording {label}: {} on {}, {} requests…", lesson.binary, options.kafka, options.requests);
    check::run_variant(&options, &variant)
}

/// The run saved as `name.json` in `dir`, recorded with `record` when absent.
/// Returns whether it was recorded now.
fn recorded(
    dir: &Path,
    name: &str,
    record: impl FnOnce() -> anyhow::Result<CheckRun>,
) -> anyhow::Result<(CheckRun, bool)> {
    let path = dir.join(format!("{name}.json"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let run = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a recorded run: delete it and run the check again to re-record it", path.display())
            })?;
            Ok((run, false))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let run = record().with_context(|| format!("recording the flow `{name}`"))?;
            // Written whole or not at all: an interrupted check leaves no half file.
            let partial = path.with_extension("json.partial");
            std::fs::write(&partial, serde_json::to_string(&run)?)
                .with_context(|| format!("writing {}", partial.display()))?;
            std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
            Ok((run, true))
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// The fixed run with a few of the worker's spans turned into roots outside
/// any request (a background task that starts traces of its own): every
/// request stays whole, and the worker's orphan rate lands strictly between
/// the committed baseline and the limit.
pub fn regression(fixed: &CheckRun, baseline: &Baseline) -> anyhow::Result<CheckRun> {
    let allowed = baseline.services.get(REGRESSED_SERVICE).copied().context("the baseline has no worker row")?;
    let mut run = fixed.clone();
    run.step = format!("{} regressed", fixed.step);
    let row = run
        .report
        .services
        .iter_mut()
        .find(|row| row.service == REGRESSED_SERVICE)
        .context("the fixed run has no worker row")?;
    // Half the limit: clearly under it, and at least one span.
    let orphans = ((row.spans as f64 * ORPHAN_RATE_LIMIT / 2.0) as u64).max(1);
    row.spans += orphans;
    row.orphans += orphans;
    row.causes.root_in_internal_service += orphans;
    row.orphan_rate = row.orphans as f64 / row.spans as f64;
    if !(row.orphan_rate > allowed && row.orphan_rate < ORPHAN_RATE_LIMIT) {
        bail!(
            "the regression's orphan rate {} is not between the baseline {} and the limit {}: record more requests",
            percent(row.orphan_rate),
            percent(allowed),
            percent(ORPHAN_RATE_LIMIT)
        );
    }
    run.report.spans_received += orphans;
    run.report.spans_settled += orphans;
    run.report.traces_settled += orphans;
    Ok(run)
}

fn service_row<'a>(run: &'a CheckRun, service: &str) -> anyhow::Result<&'a ServiceReport> {
    run.report
        .services
        .iter()
        .find(|row| row.service == service)
        .with_context(|| format!("the run has no {service} row"))
}

/// Fails when a recorded run does not show what its flow should, by the
/// project's gate.
fn confirm(flow: &GateFlow, baseline: &Baseline) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&flow.run_file).with_context(|| format!("reading {}", flow.run_file.display()))?;
    let run: CheckRun = serde_json::from_str(&text).with_context(|| format!("parsing {}", flow.run_file.display()))?;
    let violations = gate::violations(&run, baseline);
    if violations.is_empty() != flow.should_pass {
        bail!(
            "the recorded flow `{}` ({}) does not show what it should: the project's gate (crates/judge/src/gate.rs) \
             says {}. Delete {} and run the check again to re-record it.",
            flow.name,
            flow.run_file.display(),
            if violations.is_empty() { "pass".to_owned() } else { violations.join("; ") },
            flow.run_file.display()
        );
    }
    Ok(())
}

/// Where this invocation's runs are kept: one directory per key, so a
/// change to a flow's source (or the request count, or the broker)
/// records anew instead of judging a stale run.
fn cache_dir(steps: &[Step], options: &FlowOptions) -> anyhow::Result<PathBuf> {
    let root = crate::project_root();
    let mut sources: Vec<PathBuf> = [
        "crates/flow",
        "crates/telemetry",
        "crates/lineage/src",
        "crates/runner/src",
        "crates/components/src",
        "crates/judge/src",
        "crates/model/src",
    ]
    .iter()
    .map(|dir| root.join(dir))
    .collect();
    // The crates the flows are built from; never a learner's.
    sources.push(root.join("crates/broken-flows"));
    for step in steps.iter().filter(|step| step.is_flow()) {
        if step.has_solution() {
            sources.push(step.dir(true));
        } else {
            sources.push(step.dir(false));
        }
    }
    sources.push(root.join("Cargo.lock"));
    // A cache key, not a checksum: a toolchain whose hasher differs only
    // records the flows once more.
    let mut hasher = DefaultHasher::new();
    hasher.write(format!("{} {}", options.requests, options.kafka).as_bytes());
    for source in sources {
        hash_tree(&source, &mut hasher)?;
    }
    Ok(crate::run_dir().join("gate-flows").join(format!("{:016x}", hasher.finish())))
}

/// Feeds every file under `path` (or `path` itself), in name order, to `hasher`.
fn hash_tree(path: &Path, hasher: &mut DefaultHasher) -> anyhow::Result<()> {
    if path.is_file() {
        hasher.write(path.to_string_lossy().as_bytes());
        hasher.write(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    entries.sort();
    for entry in entries {
        hash_tree(&entry, hasher)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lineage::Boundary;

    use super::*;
    use stitch_model::fixtures::{EXPECTED_CHAIN, run, service};

    fn baseline() -> Baseline {
        toml::from_str("[services]\nworker = 0.0\nconsumer = 0.0\n").expect("a valid baseline")
    }

    #[test]
    fn the_regression_fails_the_ratchet_only() {
        let services = vec![
            service("consumer", 50, 0, Boundary::Messaging),
            service("gateway", 100, 0, Boundary::Http),
            service("worker", 150, 0, Boundary::Async),
        ];
        let fixed = run(50, services, [0, 0, 0], &EXPECTED_CHAIN);
        assert_eq!(gate::violations(&fixed, &baseline()), Vec::<String>::new());
        let regressed = regression(&fixed, &baseline()).expect("a regression");
        let violations = gate::violations(&regressed, &baseline());
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].starts_with("worker: orphan rate 0.7% rose above the committed baseline 0%"),
            "{violations:?}"
        );
    }

    #[test]
    fn a_regression_at_the_limit_is_refused() {
        let services = vec![service("worker", 150, 0, Boundary::Async)];
        let fixed = run(50, services, [0, 0, 0], &EXPECTED_CHAIN);
        let strict: Baseline = toml::from_str("[services]\nworker = 0.009\n").expect("a valid baseline");
        let error = regression(&fixed, &strict).unwrap_err().to_string();
        assert!(error.contains("not between the baseline"), "{error}");
    }
}
