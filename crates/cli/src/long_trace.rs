//! `cargo xtask long-trace`: step 8's long mode. Minutes of sustained batches
//! and orders through the tier, unsolved with the files' 30 s (late spans)
//! and with the naive fix (a `decision_wait` that covers the batch), solved
//! with the files' 30 s, each tier-2 collector under the check's hard memory
//! limit (idle usage + a margin, no memory_limiter); then unsolved and
//! solved again with a tight memory_limiter. Writes the book's table and the
//! RSS picture, an OOM kill marked on it, from what was measured.

mod rss_svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use stitch_model::StageData;
use stitch_model::stage::long_trace::{HardLimit, LongTraceData, Sample};
use stitch_runner::long_trace::{CHECK_GOGC, CHECK_MARGIN_MIB, long_mode, slope_mib_per_minute};

use crate::report::{HEADER, KAFKA};
use crate::table::Table;

/// Minutes of workload per run in the book, and under the tight limit.
pub const MINUTES: f64 = 10.0;
pub const TIGHT_MINUTES: f64 = 3.0;
/// tier 2's memory_limiter in the tight runs: a soft limit (limit − spike)
/// of 14 MiB, under the heap the naive fix keeps live (15 MiB after a forced
/// GC, in its 48 MiB run) and over the fixed flow's.
pub const TIGHT_LIMIT_MIB: u64 = 30;
const SPIKE_MIB: u64 = 16;

/// One long run as saved next to the logs, so the book's files can be
/// rewritten without running again (`--render-only`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LongRun {
    label: String,
    solution: bool,
    minutes: f64,
    elapsed_seconds: f64,
    /// What the stage measured; judged again when printed.
    evidence: StageData,
}

impl LongRun {
    /// What step 8's stage measured; an error when the evidence is another stage's.
    fn data(&self) -> anyhow::Result<&LongTraceData> {
        match &self.evidence {
            StageData::LongTrace(data) => Ok(data.as_ref()),
            _ => anyhow::bail!("{}: the saved evidence is not step 8's", self.label),
        }
    }
}

fn saved_dir() -> PathBuf {
    stitch_paths::run_dir().join("long-trace")
}

/// The chapter's table, under `book/src/generated/`, and its picture, under `book/src/images/`.
pub const TABLE: &str = "step-08-long-trace-memory.md";
pub const PICTURE: &str = "long-trace-rss.svg";

fn generated() -> PathBuf {
    stitch_paths::project_root().join("book").join("src").join("generated").join(TABLE)
}

fn picture() -> PathBuf {
    stitch_paths::project_root().join("book").join("src").join("images").join(PICTURE)
}

/// What to run: everything, only the two runs under the tight limit (the
/// others from the saved measurements), or nothing (render the saved ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    All,
    TightOnly,
    None,
}

pub fn run(minutes: f64, tight_minutes: f64, tight_limit_mib: Option<u64>, runs: Runs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(saved_dir())?;
    let runs = match runs {
        Runs::None => load()?,
        _ => measure(minutes, tight_minutes, tight_limit_mib, runs == Runs::TightOnly)?,
    };
    write_book(&runs)?;
    for run in &runs {
        println!("\n── {} ({}), {} min", run.label, if run.solution { "solution" } else { "unsolved" }, run.minutes);
        crate::table::print_evidence(&stitch_judge::stage::judge(&run.evidence));
    }
    println!("\nwrote {} and {}", generated().display(), picture().display());
    Ok(ExitCode::SUCCESS)
}

fn measure(
    minutes: f64,
    tight_minutes: f64,
    tight_limit_mib: Option<u64>,
    tight_only: bool,
) -> anyhow::Result<Vec<LongRun>> {
    let mut runs = Vec::new();
    let one = |label: &str, solution: bool, minutes: f64, wait: Option<Duration>, limit: Option<(u64, u64)>| {
        let workload = long_mode::workload(minutes);
        let wait = wait.unwrap_or_else(|| long_mode::covering_wait(&workload));
        // The runs without a memory_limiter run under the check's hard limit.
        let hard = limit.is_none().then_some(HardLimit { margin_mib: CHECK_MARGIN_MIB, gogc: CHECK_GOGC });
        eprintln!(
            "\nlong-trace {label}: {minutes} min, decision_wait {wait:?}, memory_limiter {limit:?}, hard limit {hard:?}"
        );
        let run = stitch_campaigns::runs::long_trace(label, solution, workload, wait, limit, hard, KAFKA)?;
        let evidence = run.evidence.context("the stage measured nothing")?;
        let run =
            LongRun { label: label.to_owned(), solution, minutes, elapsed_seconds: run.elapsed_seconds, evidence };
        let path = saved_dir().join(format!("{label}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&run)?)
            .with_context(|| format!("writing {}", path.display()))?;
        anyhow::Ok(run)
    };
    let untight = if tight_only {
        load_labels(&UNTIGHT)?
    } else {
        vec![
            one("before-30s", false, minutes, Some(long_mode::DECISION_WAIT), None)?,
            one("before", false, minutes, None, None)?,
            one("after", true, minutes, Some(long_mode::DECISION_WAIT), None)?,
        ]
    };
    let limit = tight_limit_mib.unwrap_or(TIGHT_LIMIT_MIB);
    let tight_before = one("tight-before", false, tight_minutes, None, Some((limit, SPIKE_MIB)))?;
    let tight_after =
        one("tight-after", true, tight_minutes, Some(long_mode::DECISION_WAIT), Some((limit, SPIKE_MIB)))?;
    runs.extend(untight);
    runs.extend([tight_before, tight_after]);
    Ok(runs)
}

/// The runs under the hard limit: unsolved with the files' window, with the
/// naive fix, and solved.
const UNTIGHT: [&str; 3] = ["before-30s", "before", "after"];

fn load() -> anyhow::Result<Vec<LongRun>> {
    load_labels(&["before-30s", "before", "after", "tight-before", "tight-after"])
}

fn load_labels(labels: &[&str]) -> anyhow::Result<Vec<LongRun>> {
    labels
        .iter()
        .map(|label| {
            let path = saved_dir().join(format!("{label}.json"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (run `cargo xtask long-trace` first)", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        })
        .collect()
}

fn wait_seconds(data: &LongTraceData) -> f64 {
    data.decision_wait_ms as f64 / 1000.0
}

/// The slope once the first `decision_wait` has passed: how memory moves
/// once the tier holds as much as it ever will.
fn steady_slope(samples: &[Sample], collector: &str, from: f64) -> f64 {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|sample| sample.collector == collector && sample.t >= from)
        .map(|sample| (sample.t, sample.rss_bytes))
        .collect();
    slope_mib_per_minute(&points)
}

fn write_book(runs: &[LongRun]) -> anyhow::Result<()> {
    let text = book_text(runs)?;
    std::fs::write(generated(), text).with_context(|| format!("writing {}", generated().display()))?;
    let plotted: Vec<&LongRun> = runs.iter().filter(|run| UNTIGHT.contains(&run.label.as_str())).collect();
    let svg = rss_svg::rss_svg(&plotted)?;
    std::fs::write(picture(), svg).with_context(|| format!("writing {}", picture().display()))?;
    Ok(())
}

/// The chapter's generated include: memory per run and collector, then what
/// each run did to lineage after sampling.
fn book_text(runs: &[LongRun]) -> anyhow::Result<String> {
    let mut memory = Table::new(
        &[
            "run",
            "flow",
            "decision_wait",
            "memory limit",
            "tier 2",
            "RSS start → end (max), MiB",
            "slope, MiB/min",
            "slope after the first wait",
            "heap max, MiB",
            "traces held, max",
            "spans refused during the workload",
            "OOM kills (at)",
        ],
        &[false, false, true, true, false, true, true, true, true, true, true, true],
    );
    let mut lineage = Table::new(
        &[
            "run",
            "longest trace, s",
            "late spans at tier 2",
            "orphans after sampling",
            "failed items kept",
            "batch traces kept in part",
            "memory limiter: forced GCs, refusals, spans refused",
            "spans tier 1 could not deliver",
            "spans lost (of traces with a failed span)",
        ],
        &[false, true, true, true, true, true, true, true, true],
    );
    for run in runs {
        let data = run.data()?;
        let wait = wait_seconds(data);
        for row in &data.memory {
            let under_limit =
                data.hard_limit.iter().flat_map(|hard| &hard.collectors).find(|c| c.collector == row.collector);
            let limit = match (under_limit, data.memory_limit_mib) {
                (Some(c), _) => format!("hard {:.0} MiB, no memory_limiter", c.limit_bytes as f64 / MIB),
                (None, Some((limit, _spike))) => format!("memory_limiter {limit} MiB"),
                (None, None) => "memory_limiter 512 MiB".to_owned(),
            };
            memory.row(vec![
                format!("{} ({} min)", run.label, run.minutes),
                (if run.solution { "solution" } else { "unsolved" }).to_owned(),
                format!("{wait} s"),
                limit,
                row.collector.clone(),
                format!("{:.0} → {:.0} ({:.0})", row.first_rss_mib, row.last_rss_mib, row.max_rss_mib),
                format!("{:+.2}", row.slope_mib_per_min),
                format!("{:+.2}", steady_slope(&data.samples, &row.collector, wait)),
                format!("{:.0}", row.max_heap_mib),
                format!("{}", row.max_traces_on_memory),
                format!("{}", row.refused_spans),
                match under_limit {
                    Some(c) => match c.died_at_seconds {
                        Some(t) => format!("{} ({:.1} min)", c.oom_kills, t / 60.0),
                        None => format!("{}", c.oom_kills),
                    },
                    None => "—".to_owned(),
                },
            ]);
        }
        let late = data.late_spans_in_map + data.late_spans_cached.kept + data.late_spans_cached.dropped;
        lineage.row(vec![
            run.label.clone(),
            format!("{:.1}", data.longest_trace_seconds),
            format!("{late}"),
            format!("{}", data.orphans_after),
            format!("{} of {}", data.failed_items_kept, data.failed_items),
            format!("{} of {}", data.batch_traces_kept_in_part, data.batch_traces),
            match data.memory_limit_mib {
                Some(_) => {
                    format!("{}, {}, {:.0}", data.limiter_forced_gcs, data.limiter_started_refusing, data.refused_spans)
                }
                None => "—".to_owned(),
            },
            format!("{:.0}", data.tier1_send_failed_spans),
            format!("{} of {} traces", data.lost_spans, data.lost_traces),
        ]);
    }
    let first = runs.first().context("no long runs to write")?;
    // The prose says how long the tight runs lasted: a book without one
    // would say 0 minutes.
    let tight = runs
        .iter()
        .find(|run| run.label.starts_with("tight"))
        .context("no run under the tight memory limit among the long runs to write")?;
    let workload = &first.data()?.workload;
    Ok(format!(
        "{HEADER}\nMeasured by `cargo xtask long-trace` on {KAFKA}. Per {} min run: {} batches of {} items (one \
         every {} ms, a new batch every {} s), every item from item {} on failing, and {} orders \
         per second alongside; tier-2 memory sampled every 5 s. The tight runs last {} min.\n\n{}\n\n{}\n",
        first.minutes,
        workload.batches,
        workload.items,
        workload.interval.as_millis(),
        workload.batch_every.as_secs(),
        workload.fail_from,
        long_mode::ORDERS_PER_SECOND,
        tight.minutes,
        memory.markdown(),
        lineage.markdown()
    ))
}

const MIB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;
    use stitch_model::stage::long_trace::{CachedLateSpans, CollectorUnderLimit, HardLimitRun};
    use stitch_runner::long_trace::memory_summary;

    fn run(label: &str, solution: bool, rss_mib: impl Fn(f64) -> f64) -> LongRun {
        let samples: Vec<Sample> = ["tier2-a", "tier2-b"]
            .iter()
            .flat_map(|collector| {
                (0..=120).map(|step| {
                    let t = f64::from(step) * 5.0;
                    Sample {
                        t,
                        collector: (*collector).to_owned(),
                        rss_bytes: rss_mib(t) * 1024.0 * 1024.0,
                        heap_bytes: 20.0 * 1024.0 * 1024.0,
                        traces_on_memory: 600.0,
                        refused_spans: 0.0,
                        cgroup_bytes: None,
                        accepted_spans: 0.0,
                    }
                })
            })
            .collect();
        let data = LongTraceData {
            label: label.to_owned(),
            workload: long_mode::workload(10.0),
            orders: 7920,
            decision_wait_ms: 30_000,
            num_traces: 50_000,
            decision_cache: (100_000, 100_000),
            memory_limit_mib: None,
            longest_trace_seconds: 75.2,
            traces_outliving_the_window: 0,
            traces_before: 7960,
            orphans_after: 0,
            missing_parent_after: 0,
            spans_after: 60_000,
            linked_after: 12_000,
            failed_items: 6000,
            failed_items_kept: 6000,
            batch_traces: 40,
            batch_traces_kept_whole: 40,
            batch_traces_kept_in_part: 0,
            linked_before: 12_000,
            late_spans_in_map: 0.0,
            late_span_age_sum_seconds: 0.0,
            late_spans_cached: CachedLateSpans { kept: 0.0, dropped: 0.0 },
            dropped_too_early: 0.0,
            new_trace_ids: 7960.0,
            refused_spans: 0.0,
            limiter_forced_gcs: 0,
            limiter_started_refusing: 0,
            tier1_send_failed_spans: 0.0,
            lost_spans: 0,
            lost_traces: 0,
            hard_limit: (!solution).then(|| HardLimitRun {
                cgroup: "cgroup v1".to_owned(),
                margin_mib: 32,
                gogc: 25,
                collectors: ["tier2-a", "tier2-b"]
                    .iter()
                    .map(|collector| CollectorUnderLimit {
                        collector: (*collector).to_owned(),
                        idle_bytes: 50 << 20,
                        limit_bytes: 82 << 20,
                        peak_bytes: 82 << 20,
                        oom_kills: u64::from(*collector == "tier2-a"),
                        died_at_seconds: (*collector == "tier2-a").then_some(300.0),
                        exit_signal: (*collector == "tier2-a").then_some(9),
                        bytes_per_held_span: None,
                    })
                    .collect(),
            }),
            memory: memory_summary(&samples),
            samples,
            ..stitch_model::fixtures::stages::long_trace()
        };
        LongRun {
            label: label.to_owned(),
            solution,
            minutes: 10.0,
            elapsed_seconds: 700.0,
            evidence: StageData::LongTrace(Box::new(data)),
        }
    }

    #[test]
    fn the_book_shows_every_run_and_collector_from_the_samples() {
        let runs = [run("before", false, |t| 50.0 + t / 10.0), run("after", true, |_| 55.0)];
        // The prose says how long the tight runs lasted: without one, there is no book text.
        let err = book_text(&runs).unwrap_err();
        assert!(err.to_string().contains("no run under the tight memory limit"), "{err}");
        let mut tight = run("tight-after", true, |_| 25.0);
        tight.minutes = 3.0;
        let with_tight = [runs[0].clone(), runs[1].clone(), tight];
        let text = book_text(&with_tight).unwrap();
        assert!(text.contains("The tight runs last 3 min."), "{text}");
        assert!(text.starts_with(HEADER));
        // One memory row per run and collector, one lineage row per run.
        assert_eq!(text.lines().filter(|line| line.starts_with("| before")).count(), 3);
        assert!(text.contains("| 50 → 110 (110) | +6.00 |"), "{text}");
        let svg = rss_svg::rss_svg(&runs.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("tier2-b, solution, wait 30 s"));
        // The unsolved run's tier2-a was killed 5 minutes in: marked once,
        // in the table and on the picture.
        assert!(text.contains("| hard 82 MiB, no memory_limiter | tier2-a |"), "{text}");
        assert!(text.contains("| 1 (5.0 min) |"), "{text}");
        assert_eq!(svg.matches("OOM kill").count(), 1);
    }
}
