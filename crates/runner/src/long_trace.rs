//! Step 8's stage: a batch job that outlives the tail sampler's decision
//! window, through step 4's tier.
//!
//! The run's lineage sees every span before sampling, as in every step. A
//! second lineage, started here, receives what tier 2 keeps
//! (`infra/collector/tier2-after-sampling.yaml`): lineage after sampling,
//! where a kept span whose parent was dropped is an orphan. Tier 2's RSS is
//! sampled while the workload runs, for the memory side of the lesson.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::cgroup::MemoryCgroup;
use crate::otelcol::{Metrics, collector_config_dir};
use crate::process::spinner;
use stitch_model::stage::long_trace::{
    CachedLateSpans, CollectorUnderLimit, HardLimit, HardLimitRun, LongTraceData, MemorySummary, Sample, Workload,
};
use stitch_model::{Assertion, Evidence, Order, StageData};

use crate::stage::{Stage, StageEnv};
use crate::tier::{TierOptions, TierStage};

/// How a run of the stage is set up.
#[derive(Debug, Clone)]
pub struct LongTraceOptions {
    pub label: String,
    pub workload: Workload,
    pub decision_wait: Duration,
    /// `num_traces` per tier-2 collector; `None`: sized by step 4's rule
    /// (new traces per second × decision_wait × 2) for the fixed flow.
    pub num_traces: Option<u64>,
    /// Decision cache sizes (sampled, not sampled); 0 turns a cache off.
    pub decision_cache: (u64, u64),
    /// memory_limiter `limit_mib` and `spike_limit_mib` of tier 2.
    pub memory_limit_mib: Option<(u64, u64)>,
    /// How often tier 2's memory is sampled while the workload runs.
    pub sample_every: Duration,
    /// Each tier-2 collector in a memory cgroup with a hard limit, and no
    /// memory_limiter (unless `memory_limit_mib` asks for one).
    pub hard_limit: Option<HardLimit>,
}

impl LongTraceOptions {
    /// `cargo xtask check step-8`: short enough for CI (about a minute per
    /// run). A burst of six 40 s batches of 2017 items (one every 20 ms)
    /// through a tier that decides 3 s after a trace's first span, with tier 2
    /// held to its idle usage plus [`CHECK_MARGIN_MIB`] and no
    /// memory_limiter. Every crate runs with the same tier: a batch that is
    /// one trace outlives the window, and what arrives after its decision is
    /// judged apart from it (its failed items kept as orphans, its trace kept
    /// in part); a batch whose items are traces of their own, linked to it,
    /// fits, and a collector holds at most `num_traces` of them (decided
    /// traces keep their slot), about 2500 spans, within the limit. The
    /// naive fix, a window that covers the batch, is measured by the long
    /// mode, not here: it is a setting of the tier, not of the lesson. The
    /// run's lineage keeps a trace open for the batch's length and 30 s more
    /// ([`LongTraceStage::lineage_max_age`]). No decision cache (the
    /// collector's default): a decision is remembered only while the trace
    /// holds its `num_traces` slot.
    pub fn check() -> LongTraceOptions {
        let workload = Workload {
            batches: 6,
            batch_every: Duration::from_secs(1),
            items: CHECK_ITEMS,
            interval: Duration::from_millis(20),
            // The last ten items of each batch: well after the first
            // decision, so that the batch's first part has nothing to keep
            // it for. Few, so that what tier 2 writes of what it keeps (its
            // file, page cache its cgroup is charged for) stays small.
            fail_from: CHECK_ITEMS - 9,
            orders: None,
        };
        LongTraceOptions {
            label: "check".to_owned(),
            workload,
            decision_wait: Duration::from_secs(3),
            num_traces: None,
            decision_cache: (0, 0),
            memory_limit_mib: None,
            sample_every: Duration::from_secs(1),
            hard_limit: Some(HardLimit { margin_mib: CHECK_MARGIN_MIB, gogc: CHECK_GOGC }),
        }
    }
}

/// Spans of one order of the fixed flow (step 3's `spans_per_request`).
const ORDER_SPANS: u64 = 6;

/// Items per batch in the check. 162 orders of 6 spans and 6 batches of
/// 4 + 2 × 2017 spans make 150 spans per request (`step.toml`).
pub const CHECK_ITEMS: u32 = 2017;
/// The check's room above tier 2's idle usage.
pub const CHECK_MARGIN_MIB: u64 = 14;
/// The check's `GOGC` for tier 2.
pub const CHECK_GOGC: u32 = 25;

/// Samples a slope of bytes per held span needs: ten seconds at the check's
/// one a second. Over three, the collector's own start-up growth under load
/// made the solved flow's slope 8 to 16 KB a span.
const MIN_SLOPE_SAMPLES: usize = 10;

/// Bytes charged per span held: the slope of the cgroup's usage over the
/// spans accepted, in the samples before `until` seconds (the first decision).
pub fn bytes_per_held_span(samples: &[Sample], collector: &str, until: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|sample| sample.collector == collector && sample.t < until)
        .filter_map(|sample| Some((sample.accepted_spans, sample.cgroup_bytes?)))
        .collect();
    if points.len() < MIN_SLOPE_SAMPLES {
        return None;
    }
    let n = points.len() as f64;
    let (mean_x, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance)
}

/// The second lineage, fed by tier 2.
struct After {
    runtime: tokio::runtime::Runtime,
    lineage: lineage::Lineage,
}

/// The long job through the tier, measured before and after sampling.
pub struct LongTraceStage {
    pub options: LongTraceOptions,
    tier: TierStage,
    after: Option<After>,
    batches: Vec<Order>,
    orders: usize,
    samples: Vec<Sample>,
    /// Each tier-2 collector's memory cgroup, its idle usage, and how it
    /// died (seconds into the workload, signal) if it did.
    cgroups: Vec<Limited>,
    /// Why no memory cgroup could be made: the limit's claims are then not
    /// judged, and fail.
    no_cgroup: Option<String>,
    started: Option<Instant>,
}

/// A tier-2 collector in its memory cgroup.
struct Limited {
    collector: String,
    cgroup: MemoryCgroup,
    idle_bytes: u64,
    /// Recorded by whichever hook first sees it dead (`check_alive` too).
    died: std::cell::Cell<Option<(f64, Option<i32>)>>,
}

/// Spans tier 2's receiver refused (its memory limiter), and spans tier 1
/// could not hand on; the names differ between exporters of the metrics.
const REFUSED: [&str; 2] = ["otelcol_receiver_refused_spans", "otelcol_receiver_refused_spans_total"];
const ACCEPTED: [&str; 2] = ["otelcol_receiver_accepted_spans", "otelcol_receiver_accepted_spans_total"];
const SEND_FAILED: [&str; 2] = ["otelcol_exporter_send_failed_spans", "otelcol_exporter_send_failed_spans_total"];
const LATE_SPAN_AGE: &str = "otelcol_processor_tail_sampling_sampling_late_span_age";
const CACHED_RELEASES: &str = "otelcol_processor_tail_sampling_early_releases_from_cache_decision";
const DROPPED_TOO_EARLY: &str = "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early";
const TRACES_ON_MEMORY: &str = "otelcol_processor_tail_sampling_sampling_traces_on_memory";
const NEW_TRACES: &str = "otelcol_processor_tail_sampling_new_trace_id_received";

/// A 10-minute threshold: a batch is long by design, so the `slow` policy
/// (meant for requests) would keep every one for its length alone.
const SLOW_THRESHOLD: Duration = Duration::from_secs(600);

fn sum_any(metrics: &Metrics, names: &[&str]) -> f64 {
    names.iter().map(|name| metrics.sum(name, &[])).sum::<f64>() + 0.0
}

impl LongTraceStage {
    pub fn new(options: LongTraceOptions) -> LongTraceStage {
        let tier = TierStage::new(crate::tier::Lesson::KeepWhatMatters, TierOptions::default());
        LongTraceStage {
            options,
            tier,
            after: None,
            batches: Vec::new(),
            orders: 0,
            samples: Vec::new(),
            cgroups: Vec::new(),
            no_cgroup: None,
            started: None,
        }
    }

    /// Step 8's check.
    pub fn check() -> LongTraceStage {
        LongTraceStage::new(LongTraceOptions::check())
    }

    fn orders_for(&self, env: &StageEnv) -> usize {
        self.options.workload.orders.unwrap_or(env.requests)
    }

    /// `num_traces` by step 4's rule, for the fixed flow's traffic (its
    /// items are traces too) at its PEAK, while every overlapping batch
    /// runs: new traces per second per collector × (decision_wait + the
    /// sampler's 1 s decision tick) × 2. Sized on the average rate instead,
    /// the cap sat within the traffic's fluctuations at the peak, and a
    /// full map evicts the oldest trace undecided (a failed item among them).
    fn sized_num_traces(&self, orders: usize, wait: Duration) -> u64 {
        let workload = &self.options.workload;
        let overlapping = (workload.batch_length().as_secs_f64() / workload.batch_every.as_secs_f64().max(0.001))
            .ceil()
            .clamp(1.0, workload.batches.max(1) as f64);
        let items_per_second = overlapping / workload.interval.as_secs_f64().max(0.001);
        let orders_per_second = orders as f64 / workload.span().as_secs_f64().max(1.0);
        let per_collector = (items_per_second + orders_per_second) / 2.0;
        (per_collector * (wait.as_secs_f64() + 1.0) * 2.0).ceil().max(10.0) as u64
    }

    /// Measures each idle tier-2 collector's usage, then limits each to its
    /// own plus the margin (their usage differs by the page cache each was
    /// first to read).
    fn limit_tier2(&mut self, hard: HardLimit) -> Result<()> {
        // Past start-up's allocations: the collector idles at a level.
        std::thread::sleep(Duration::from_secs(1));
        for limited in &mut self.cgroups {
            limited.idle_bytes = limited.cgroup.usage()?;
            limited.cgroup.set_limit(limited.idle_bytes + hard.margin_mib * 1024 * 1024)?;
        }
        Ok(())
    }

    /// What the kernel did to each tier-2 collector under the hard limit.
    fn hard_limit_run(&self) -> Result<Option<HardLimitRun>> {
        let (Some(hard), Some(first)) = (self.options.hard_limit, self.cgroups.first()) else { return Ok(None) };
        let collectors = self
            .cgroups
            .iter()
            .map(|limited| {
                Ok(CollectorUnderLimit {
                    collector: limited.collector.clone(),
                    idle_bytes: limited.idle_bytes,
                    limit_bytes: limited.cgroup.limit()?,
                    peak_bytes: limited.cgroup.peak()?,
                    oom_kills: limited.cgroup.oom_kills()?,
                    died_at_seconds: limited.died.get().map(|(t, _)| t),
                    exit_signal: limited.died.get().and_then(|(_, signal)| signal),
                    bytes_per_held_span: bytes_per_held_span(
                        &self.samples,
                        &limited.collector,
                        self.tier.options.decision_wait.as_secs_f64(),
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(HardLimitRun {
            cgroup: first.cgroup.version.to_string(),
            margin_mib: hard.margin_mib,
            gogc: hard.gogc,
            collectors,
        }))
    }

    /// Tier-2 collectors that died under their hard limit.
    fn dead(&self) -> Vec<String> {
        self.cgroups
            .iter()
            .filter(|limited| limited.died.get().is_some())
            .map(|limited| limited.collector.clone())
            .collect()
    }

    /// Fails when a process of the tier died, except a tier-2 collector the
    /// kernel killed for its memory: that one is recorded, and the run goes on.
    fn check_tier(&self, started: Instant) -> Result<()> {
        use std::os::unix::process::ExitStatusExt as _;
        for (collector, status) in self.tier.tier2_exits()? {
            let Some(status) = status else { continue };
            let Some(limited) = self.cgroups.iter().find(|limited| limited.collector == collector) else {
                continue;
            };
            if limited.died.get().is_none() && limited.cgroup.oom_kills()? > 0 {
                limited.died.set(Some((started.elapsed().as_secs_f64(), status.signal())));
            }
        }
        self.tier.check_alive_except(&self.dead())
    }

    fn sample(&mut self, started: Instant) -> Result<()> {
        let t = started.elapsed().as_secs_f64();
        let dead = self.dead();
        let scrapes = self.tier.scrape_except(&dead)?;
        for (collector, metrics) in scrapes.into_iter().filter(|(name, _)| name.starts_with("tier2")) {
            let cgroup = self.cgroups.iter().find(|limited| limited.collector == collector);
            let cgroup_bytes = cgroup.map(|limited| limited.cgroup.usage()).transpose()?.map(|bytes| bytes as f64);
            self.samples.push(Sample {
                cgroup_bytes,
                accepted_spans: sum_any(&metrics, &ACCEPTED),
                t,
                collector,
                rss_bytes: metrics.sum("otelcol_process_memory_rss", &[]),
                heap_bytes: metrics.sum("otelcol_process_runtime_heap_alloc_bytes", &[]),
                traces_on_memory: metrics.sum(TRACES_ON_MEMORY, &[]),
                refused_spans: sum_any(&metrics, &REFUSED),
            });
        }
        Ok(())
    }

    /// Every trace of the run's requests, as the run's lineage (before
    /// sampling) holds them.
    fn traces_before(&self, lineage: &lineage::Lineage, orders: &[Order]) -> BTreeMap<String, lineage::TraceView> {
        let mut traces = BTreeMap::new();
        for order in orders {
            for trace in lineage.request_traces(&order.order_id) {
                traces.entry(trace.trace_id.clone()).or_insert(trace);
            }
        }
        traces
    }
}

/// What the run's lineage says about a trace: the spread of its spans'
/// arrivals, which is what the tier experiences.
fn arrival_spread(trace: &lineage::TraceView) -> Duration {
    trace.arrival_range().map_or(Duration::ZERO, |(first, last)| Duration::from_nanos(last - first))
}

const MIB: f64 = 1024.0 * 1024.0;

/// The claim that tier 2 lived through its hard limit, and what the kernel did.
fn survived_assertion(run: &HardLimitRun, lost_spans: u64, lost_traces: usize) -> Assertion {
    let limits: Vec<String> =
        run.collectors.iter().map(|c| format!("{} {:.1} MiB", c.collector, c.limit_bytes as f64 / MIB)).collect();
    let claim = format!(
        "tier 2 survived a hard memory limit of its idle usage + {} MiB ({}: {}), memory_limiter off, GOGC={}",
        run.margin_mib,
        run.cgroup,
        limits.join(", "),
        run.gogc
    );
    let killed: Vec<&CollectorUnderLimit> = run.collectors.iter().filter(|c| c.oom_kills > 0).collect();
    let measured = if killed.is_empty() {
        let peaks: Vec<String> = run
            .collectors
            .iter()
            .map(|c| format!("{} peak {:.0} MiB", c.collector, c.peak_bytes as f64 / MIB))
            .collect();
        format!("no OOM kill; {}", peaks.join(", "))
    } else {
        let kills: Vec<String> = killed
            .iter()
            .map(|c| {
                format!(
                    "{} OOM-killed {} (oom_kill {}, signal {})",
                    c.collector,
                    c.died_at_seconds
                        .map_or_else(|| "after the workload".to_owned(), |t| format!("{t:.0} s into the workload")),
                    c.oom_kills,
                    c.exit_signal.map_or_else(|| "none".to_owned(), |signal| signal.to_string())
                )
            })
            .collect();
        format!("{}; {lost_spans} spans of {lost_traces} traces with a failed span lost", kills.join(", "))
    };
    Assertion::new(claim, measured, killed.is_empty())
}

/// The claim only a hard memory limit can prove, on a machine that gave the
/// check none: failed, with why, so that the step never passes without it.
fn unjudged_limit(why: &str) -> Assertion {
    Assertion::new(
        "tier 2 survived a hard memory limit (its idle usage + a margin, memory_limiter off)",
        format!("NOT JUDGED, no memory cgroup: {why}"),
        false,
    )
}

/// Least-squares slope of `(t seconds, bytes)` in MiB per minute.
pub fn slope_mib_per_minute(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mean_t, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = points.iter().map(|(t, y)| (t - mean_t) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if variance == 0.0 { 0.0 } else { covariance / variance * 60.0 / (1024.0 * 1024.0) }
}

pub fn memory_summary(samples: &[Sample]) -> Vec<MemorySummary> {
    let collectors: BTreeSet<&String> = samples.iter().map(|sample| &sample.collector).collect();
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    collectors
        .into_iter()
        .map(|collector| {
            let mine: Vec<&Sample> = samples.iter().filter(|sample| &sample.collector == collector).collect();
            let points: Vec<(f64, f64)> = mine.iter().map(|sample| (sample.t, sample.rss_bytes)).collect();
            let max = |f: fn(&Sample) -> f64| mine.iter().map(|sample| f(sample)).fold(0.0, f64::max);
            MemorySummary {
                collector: collector.clone(),
                first_rss_mib: mib(mine.first().map_or(0.0, |sample| sample.rss_bytes)),
                last_rss_mib: mib(mine.last().map_or(0.0, |sample| sample.rss_bytes)),
                max_rss_mib: mib(max(|sample| sample.rss_bytes)),
                max_heap_mib: mib(max(|sample| sample.heap_bytes)),
                slope_mib_per_min: slope_mib_per_minute(&points),
                max_traces_on_memory: max(|sample| sample.traces_on_memory),
                refused_spans: max(|sample| sample.refused_spans),
            }
        })
        .collect()
}

impl Stage for LongTraceStage {
    /// A batch owes its 4 spans and 2 per item; every other request is an
    /// order of the fixed flow.
    fn expected_spans(&self, orders: &[Order], _spans_per_request: u64) -> u64 {
        let batches = self.batches.len() as u64;
        let per_batch = 4 + 2 * u64::from(self.options.workload.items);
        batches * per_batch + (orders.len() as u64).saturating_sub(batches) * ORDER_SPANS
    }

    /// A batch is one trace in the unsolved flow: lineage keeps it open for
    /// the whole batch, and 30 s more.
    fn lineage_max_age(&self) -> Duration {
        self.options.workload.batch_length() + Duration::from_secs(30)
    }

    fn baseline_requests(&self, _requests: usize) -> usize {
        // Every order is driven alongside the batches, in `drive`.
        0
    }

    fn start(&mut self, env: &StageEnv) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lineage-after")
            .enable_all()
            .build()
            .context("starting the runtime of the lineage after sampling")?;
        // It settles only when told: what it counts is what tier 2 finally
        // kept, however late, not a snapshot taken mid-batch.
        let settle = self.options.workload.span() + self.options.decision_wait * 4 + Duration::from_secs(120);
        let lineage = runtime.block_on(lineage::Lineage::start(lineage::Config {
            quiet_period: settle,
            max_age: settle,
            ..lineage::Config::ephemeral()
        }))?;
        let endpoint = lineage.grpc_addr().to_string();
        self.after = Some(After { runtime, lineage });

        let orders = self.orders_for(env);
        let wait = self.options.decision_wait;
        let num_traces = self.options.num_traces.unwrap_or_else(|| self.sized_num_traces(orders, wait));
        let mut env_vars = vec![
            ("STITCH_AFTER_SAMPLING".to_owned(), endpoint),
            ("STITCH_SAMPLED_CACHE_SIZE".to_owned(), self.options.decision_cache.0.to_string()),
            ("STITCH_NON_SAMPLED_CACHE_SIZE".to_owned(), self.options.decision_cache.1.to_string()),
        ];
        let mut overlays = vec![
            collector_config_dir().join("tier2-after-sampling.yaml"),
            collector_config_dir().join("tier2-decision-cache.yaml"),
        ];
        if let Some((limit, spike)) = self.options.memory_limit_mib {
            env_vars.push(("STITCH_MEMORY_LIMIT_MIB".to_owned(), limit.to_string()));
            env_vars.push(("STITCH_MEMORY_SPIKE_MIB".to_owned(), spike.to_string()));
        } else if self.options.hard_limit.is_some() {
            overlays.push(collector_config_dir().join("tier2-no-memory-limiter.yaml"));
        }
        if let Some(hard) = self.options.hard_limit {
            env_vars.push(("GOGC".to_owned(), hard.gogc.to_string()));
        }
        let mut cgroups = std::collections::BTreeMap::new();
        if self.options.hard_limit.is_some() {
            for collector in ["tier2-a", "tier2-b"] {
                let cgroup = match MemoryCgroup::create(collector) {
                    Ok(cgroup) => cgroup,
                    Err(err) => {
                        // Everything else is still judged; what only the
                        // limit proves fails, saying why (never skipped).
                        eprintln!("warning: {err:#}\n  so the check runs without its hard memory limit, and fails");
                        self.no_cgroup = Some(format!("{err:#}"));
                        self.cgroups.clear();
                        cgroups.clear();
                        break;
                    }
                };
                cgroups.insert(collector.to_owned(), cgroup.dir().to_owned());
                self.cgroups.push(Limited {
                    collector: collector.to_owned(),
                    cgroup,
                    idle_bytes: 0,
                    died: Default::default(),
                });
            }
        }
        self.tier.options = TierOptions {
            decision_wait: wait,
            num_traces,
            slow_threshold: SLOW_THRESHOLD,
            tier2_overlays: overlays,
            tier2_env: env_vars,
            tier2_cgroups: cgroups,
            ..TierOptions::default()
        };
        self.tier.start(env)
    }

    fn otlp_endpoint(&self) -> Option<String> {
        self.tier.otlp_endpoint()
    }

    fn drive(&mut self, env: &StageEnv, gateway: SocketAddr) -> Result<Vec<Order>> {
        let workload = self.options.workload.clone();
        let orders = self.orders_for(env);
        // Idle with the flow connected and the metrics read once: what the
        // collector needs before it holds anything.
        if let Some(hard) = self.options.hard_limit {
            self.tier.scrape()?;
            self.limit_tier2(hard)?;
        }
        let started = Instant::now();
        self.started = Some(started);
        let runtime = env.runtime.handle().clone();
        let traffic = std::thread::Builder::new()
            .name("long-trace-traffic".to_owned())
            .spawn(move || traffic(&runtime, gateway, &workload, orders))
            .context("starting the traffic thread")?;
        // Until the last batch's last item is done, with a margin for a batch
        // that started late.
        let end = started + self.options.workload.span() + Duration::from_secs(3);
        let progress = spinner(format!("running {} batches and {orders} orders", self.options.workload.batches));
        loop {
            self.check_tier(started)?;
            if let Err(err) = self.sample(started) {
                // A collector killed during the scrape: the kernel takes a
                // moment to finish it, and the kill is recorded then.
                let dead = self.dead().len();
                let deadline = Instant::now() + Duration::from_secs(5);
                while self.dead().len() == dead {
                    if Instant::now() >= deadline {
                        return Err(err);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    self.check_tier(started)?;
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            progress.set_message(format!(
                "running {} batches and {orders} orders: {:.0} s left",
                self.options.workload.batches,
                left.as_secs_f64()
            ));
            if traffic.is_finished() && left.is_zero() {
                break;
            }
            std::thread::sleep(self.options.sample_every.min(left.max(Duration::from_millis(100))));
        }
        progress.finish_and_clear();
        let (batches, orders) = traffic.join().map_err(|_| anyhow::anyhow!("the traffic thread panicked"))??;
        self.orders = orders.len();
        self.batches = batches.clone();
        Ok(batches.into_iter().chain(orders).collect())
    }

    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> Result<Evidence> {
        let lineage = env.lineage;
        let started = self.started.context("the workload never ran")?;
        // A collector may be killed while the others are waited for: then
        // the wait starts again without it.
        loop {
            self.check_tier(started)?;
            let dead = self.dead();
            if dead.len() == self.tier.tier2_exits()?.len() {
                break;
            }
            match self.tier.wait_for_decisions_except(&dead) {
                Ok(()) => break,
                Err(err) => {
                    std::thread::sleep(Duration::from_millis(500));
                    self.check_tier(started)?;
                    if self.dead().len() == dead.len() {
                        return Err(err);
                    }
                }
            }
        }
        let dead = self.dead();
        let after = self.after.as_ref().context("the lineage after sampling is not running")?;
        after.lineage.settle_now();
        let report_after = after.lineage.report();
        let scrapes = self.tier.scrape_except(&dead)?;
        let kept = self.tier.kept_spans()?;
        let options = &self.options;
        let workload = &options.workload;
        let wait = self.tier.options.decision_wait;

        // Before sampling: how long each trace kept arriving at the tier.
        let batch_ids: BTreeSet<&str> = self.batches.iter().map(|batch| batch.order_id.as_str()).collect();
        let batches_before: Vec<lineage::TraceView> =
            self.traces_before(lineage, &self.batches).into_values().collect();
        let all_before = self.traces_before(lineage, orders);
        let longest = all_before.values().map(arrival_spread).max().unwrap_or_default();
        let outliving = all_before.values().filter(|trace| arrival_spread(trace) >= wait).count();
        let report_before = lineage.report();
        let items_expected = workload.batches as u64 * u64::from(workload.items) * 2;

        // After sampling: what tier 2 kept of each batch trace.
        let mut kept_by_trace: BTreeMap<&str, usize> = BTreeMap::new();
        let mut errors_kept = BTreeSet::new();
        for span in kept.iter().flat_map(|(_, spans)| spans) {
            *kept_by_trace.entry(span.trace_id.as_str()).or_default() += 1;
            if span.error && span.order_id.as_deref().is_some_and(|id| batch_ids.contains(id)) {
                errors_kept.insert((span.trace_id.clone(), span.span_id.clone()));
            }
        }
        let mut kept_whole = 0;
        let mut kept_partly = 0;
        for trace in &batches_before {
            match kept_by_trace.get(trace.trace_id.as_str()).copied().unwrap_or(0) {
                0 => {}
                count if count >= trace.spans.len() => kept_whole += 1,
                _ => kept_partly += 1,
            }
        }
        let failing = workload.batches as u64 * workload.failing_items();
        // Every trace with a failed span is the errors policy's to keep:
        // what of it no tier-2 collector exported was lost.
        let (mut lost_spans, mut lost_traces) = (0u64, 0usize);
        for trace in all_before.values().filter(|trace| trace.spans.iter().any(|span| span.span_status == "error")) {
            let kept = kept_by_trace.get(trace.trace_id.as_str()).copied().unwrap_or(0);
            if kept < trace.spans.len() {
                lost_spans += (trace.spans.len() - kept) as u64;
                lost_traces += 1;
            }
        }
        let hard_limit = self.hard_limit_run()?;
        let missing_parent: u64 = report_after.services.iter().map(|service| service.causes.missing_parent).sum();
        let orphans_after = report_after.orphans();

        // The tier's own evidence.
        let tier2: Vec<&(String, Metrics)> = scrapes.iter().filter(|(name, _)| name.starts_with("tier2")).collect();
        // `+ 0.0`: an empty float sum is -0, which prints as "-0".
        let total =
            |name: &str, labels: &[(&str, &str)]| tier2.iter().map(|(_, m)| m.sum(name, labels)).sum::<f64>() + 0.0;
        let late_spans_in_map = total(&format!("{LATE_SPAN_AGE}_count"), &[]);
        let late_age_sum = total(&format!("{LATE_SPAN_AGE}_sum"), &[]);
        let cached_kept = total(CACHED_RELEASES, &[("sampled", "true")]);
        let cached_dropped = total(CACHED_RELEASES, &[("sampled", "false")]);
        let dropped_too_early = total(DROPPED_TOO_EARLY, &[]);
        let new_traces = total(NEW_TRACES, &[]);
        let refused = tier2.iter().map(|(_, metrics)| sum_any(metrics, &REFUSED)).sum::<f64>() + 0.0;
        let send_failed = scrapes
            .iter()
            .filter(|(name, _)| name == "tier1")
            .map(|(_, metrics)| sum_any(metrics, &SEND_FAILED))
            .sum::<f64>()
            + 0.0;
        let memory = memory_summary(&self.samples);

        let mut assertions = vec![
            Assertion::new(
                format!("no trace outlives decision_wait: its spans reach the tier within {wait:?} of the first"),
                format!(
                    "longest {:.1} s; {outliving} of {} traces took {wait:?} or more",
                    longest.as_secs_f64(),
                    all_before.len()
                ),
                outliving == 0,
            ),
            Assertion::new(
                "no late-span orphans after sampling (the lineage behind tier 2)",
                format!("{orphans_after} orphan spans, {missing_parent} of them missing their parent"),
                orphans_after == 0,
            ),
            Assertion::new(
                "every failed item reached the backend: the errors policy saw each one",
                format!("{} of {failing}", errors_kept.len()),
                errors_kept.len() as u64 == failing,
            ),
            Assertion::new(
                "every trace of a batch is kept whole or dropped whole",
                format!("{kept_whole} kept whole, {kept_partly} kept in part, of {}", batches_before.len()),
                kept_partly == 0,
            ),
            Assertion::new(
                "every item is a trace of its own, linked to its batch (lineage: LINKED)",
                format!("{} of {items_expected} item spans linked", report_before.linked()),
                report_before.linked() == items_expected,
            ),
        ];
        // An evicted trace is judged never, or in pieces: said by name here,
        // not left to show as a lost failed item.
        assertions.push(Assertion::new(
            format!(
                "no trace evicted undecided (num_traces {} per collector was never full)",
                self.tier.options.num_traces
            ),
            format!("{dropped_too_early} evicted"),
            dropped_too_early == 0.0,
        ));
        if let Some(why) = &self.no_cgroup {
            assertions.push(unjudged_limit(why));
        }
        if hard_limit.is_some() || self.no_cgroup.is_some() {
            if let Some(run) = &hard_limit {
                assertions.push(survived_assertion(run, lost_spans, lost_traces));
            }
            assertions.push(Assertion::new(
                "nothing lost: every span of a trace with a failed span (the errors policy's to keep) was exported",
                format!("{lost_spans} spans of {lost_traces} such traces lost"),
                lost_spans == 0,
            ));
        }
        let mut notes = vec![
            format!(
                "{} batches of {} items, an item every {:?}, failing from item {} on; {} orders alongside",
                workload.batches, workload.items, workload.interval, workload.fail_from, self.orders
            ),
            format!(
                "tier 2 ×2: decision_wait {wait:?}, num_traces {} each, decision cache {} / {} (sampled / not), slow > {} s{}",
                self.tier.options.num_traces,
                options.decision_cache.0,
                options.decision_cache.1,
                SLOW_THRESHOLD.as_secs(),
                options
                    .memory_limit_mib
                    .map_or_else(String::new, |(limit, spike)| format!(", memory_limiter {limit} MiB (spike {spike})"))
            ),
            format!(
                "spans reaching tier 2 after their trace's decision: {late_spans_in_map} while the trace still held its slot (mean age {:.1} s), {} followed a cached decision ({cached_kept} kept, {cached_dropped} dropped)",
                if late_spans_in_map > 0.0 { late_age_sum / late_spans_in_map } else { 0.0 },
                cached_kept + cached_dropped
            ),
            format!(
                "tier 2: {new_traces} trace ids received (a trace judged again after its decision was forgotten counts twice), {dropped_too_early} evicted undecided"
            ),
            format!(
                "after sampling: {} spans kept, {} connected, {} linked, {orphans_after} orphans",
                report_after.spans_settled,
                report_after.services.iter().map(|service| service.connected).sum::<u64>(),
                report_after.linked()
            ),
        ];
        for row in &memory {
            notes.push(format!(
                "{}: RSS {:.0} → {:.0} MiB (max {:.0}), heap max {:.0} MiB, at most {} traces held, {} spans refused",
                row.collector,
                row.first_rss_mib,
                row.last_rss_mib,
                row.max_rss_mib,
                row.max_heap_mib,
                row.max_traces_on_memory,
                row.refused_spans
            ));
        }
        // The memory limiter says what it did only in its log.
        let mut logs = String::new();
        for name in ["tier2-a", "tier2-b"] {
            let log = env.logs.join("tier").join(format!("{name}.log"));
            logs += &std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
        }
        let (forced_gcs, refusing) = (logs.matches("Forcing a GC").count(), logs.matches("Refusing data").count());
        if options.memory_limit_mib.is_some() {
            notes.push(format!(
                "memory_limiter: {forced_gcs} forced GCs, {refusing} times it started refusing data, {refused} spans refused"
            ));
        }
        if send_failed > 0.0 {
            notes.push(format!("tier 1 could not deliver {send_failed} spans to tier 2"));
        }
        if let Some(run) = &hard_limit {
            for c in &run.collectors {
                notes.push(format!(
                    "{} in a {} memory cgroup: idle {:.1} MiB, limit {:.1} MiB, peak {:.1} MiB{}, oom_kill {}{}",
                    c.collector,
                    run.cgroup,
                    c.idle_bytes as f64 / MIB,
                    c.limit_bytes as f64 / MIB,
                    c.peak_bytes as f64 / MIB,
                    // Only where the first decision came late enough to measure it.
                    c.bytes_per_held_span.map_or_else(String::new, |b| {
                        format!(", {b:.0} bytes per span held before the first decision")
                    }),
                    c.oom_kills,
                    c.died_at_seconds.map_or_else(String::new, |t| format!(", dead {t:.1} s into the workload"))
                ));
            }
            notes.push(format!("lost: {lost_spans} spans of {lost_traces} traces with a failed span"));
        }
        Ok(Evidence {
            assertions,
            notes,
            data: StageData::LongTrace(Box::new(LongTraceData {
                label: options.label.clone(),
                workload: workload.clone(),
                orders: self.orders,
                decision_wait_ms: wait.as_millis() as u64,
                num_traces: self.tier.options.num_traces,
                decision_cache: options.decision_cache,
                memory_limit_mib: options.memory_limit_mib,
                longest_trace_seconds: longest.as_secs_f64(),
                traces_outliving_the_window: outliving,
                traces_before: all_before.len(),
                orphans_after,
                missing_parent_after: missing_parent,
                spans_after: report_after.spans_settled,
                linked_after: report_after.linked(),
                failed_items: failing,
                failed_items_kept: errors_kept.len(),
                batch_traces: batches_before.len(),
                batch_traces_kept_whole: kept_whole,
                batch_traces_kept_in_part: kept_partly,
                linked_before: report_before.linked(),
                late_spans_in_map,
                late_span_age_sum_seconds: late_age_sum,
                late_spans_cached: CachedLateSpans { kept: cached_kept, dropped: cached_dropped },
                dropped_too_early,
                new_trace_ids: new_traces,
                refused_spans: refused,
                limiter_forced_gcs: forced_gcs,
                limiter_started_refusing: refusing,
                tier1_send_failed_spans: send_failed,
                lost_spans,
                lost_traces,
                hard_limit,
                memory,
                samples: self.samples.clone(),
            })),
        })
    }

    fn check_alive(&self) -> Result<()> {
        match self.started {
            Some(started) => self.check_tier(started),
            None => self.tier.check_alive(),
        }
    }

    fn stop(&mut self) {
        self.tier.stop();
        // Dropping a cgroup removes it.
        self.cgroups.clear();
        if let Some(after) = self.after.take() {
            after.runtime.block_on(after.lineage.shutdown());
        }
    }
}

/// The book's long mode: minutes of sustained batches and orders.
pub mod long_mode {
    use super::*;

    /// The files' `decision_wait`, what the fixed flow runs with.
    pub const DECISION_WAIT: Duration = Duration::from_secs(30);
    /// The files' decision caches.
    pub const DECISION_CACHE: (u64, u64) = (100_000, 100_000);
    /// Orders per second alongside the batches.
    pub const ORDERS_PER_SECOND: f64 = 12.0;

    /// Batches of 75 s (300 items, one every 250 ms), a new one every 15 s,
    /// for `minutes`; orders at 12 per second all along.
    pub fn workload(minutes: f64) -> Workload {
        let mut workload = Workload {
            batches: ((minutes * 60.0 / 15.0).round() as usize).max(1),
            batch_every: Duration::from_secs(15),
            items: 300,
            interval: Duration::from_millis(250),
            // The store goes down halfway through each batch.
            fail_from: 151,
            orders: None,
        };
        workload.orders = Some((workload.span().as_secs_f64() * ORDERS_PER_SECOND).round() as usize);
        workload
    }

    /// The naive fix of the unsolved flow: a `decision_wait` that covers the
    /// whole batch, so that no span arrives after its trace's decision.
    pub fn covering_wait(workload: &Workload) -> Duration {
        workload.batch_length() + Duration::from_secs(30)
    }
}

/// Drives the workload against the gateway: the batches and the orders, each
/// at its own time. Returns the batches and the orders the gateway accepted.
fn traffic(
    runtime: &tokio::runtime::Handle,
    gateway: SocketAddr,
    workload: &Workload,
    orders: usize,
) -> Result<(Vec<Order>, Vec<Order>)> {
    runtime.block_on(async {
        let client = crate::gateway::client()?;
        let start = tokio::time::Instant::now();
        let post = |at: Duration, url: String| {
            let client = client.clone();
            async move {
                tokio::time::sleep_until(start + at).await;
                crate::gateway::place(client.post(&url)).await.with_context(|| format!("POST {url}"))
            }
        };
        let batches = (0..workload.batches).map(|index| {
            post(
                workload.batch_every * index as u32,
                format!(
                    "http://{gateway}/batches?items={}&interval_ms={}&fail_from={}",
                    workload.items,
                    workload.interval.as_millis(),
                    workload.fail_from
                ),
            )
        });
        let every = workload.span().as_secs_f64() / orders.max(1) as f64;
        let orders = (0..orders)
            .map(|index| post(Duration::from_secs_f64(every * index as f64), format!("http://{gateway}/orders")));
        let (batches, orders) = futures::join!(futures::future::join_all(batches), futures::future::join_all(orders));
        let batches = batches.into_iter().collect::<Result<Vec<_>>>().context("starting a batch")?;
        let orders = orders.into_iter().collect::<Result<Vec<_>>>().context("an order alongside the batches")?;
        Ok((batches, orders))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_memory_cgroup_the_limit_claim_fails_and_says_why() {
        let claim = unjudged_limit("no cgroup memory controller is mounted here");
        assert!(!claim.passed);
        assert_eq!(claim.measured, "NOT JUDGED, no memory cgroup: no cgroup memory controller is mounted here");
    }

    #[test]
    fn slope_is_in_mib_per_minute() {
        let mib = 1024.0 * 1024.0;
        let rising: Vec<(f64, f64)> = (0..10).map(|i| (i as f64 * 6.0, 100.0 * mib + i as f64 * mib)).collect();
        assert!((slope_mib_per_minute(&rising) - 10.0).abs() < 1e-9);
        assert_eq!(slope_mib_per_minute(&[(0.0, 5.0)]), 0.0);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 7.0 * mib)).collect();
        assert_eq!(slope_mib_per_minute(&flat), 0.0);
    }

    #[test]
    fn bytes_per_held_span_is_the_slope_of_usage_over_spans_before_the_decision() {
        let sample = |t: f64, spans: f64, bytes: f64| Sample {
            t,
            collector: "tier2-a".to_owned(),
            rss_bytes: 0.0,
            heap_bytes: 0.0,
            traces_on_memory: 0.0,
            refused_spans: 0.0,
            cgroup_bytes: Some(bytes),
            accepted_spans: spans,
        };
        // 4 KiB a span until the decision at 12 s; what follows does not count.
        let samples: Vec<Sample> = (0..12)
            .map(|i| sample(f64::from(i), f64::from(i) * 1000.0, f64::from(i) * 4_096_000.0))
            .chain([sample(12.0, 12_000.0, 0.0), sample(13.0, 13_000.0, 0.0)])
            .collect();
        assert_eq!(bytes_per_held_span(&samples, "tier2-a", 12.0), Some(4096.0));
        assert_eq!(bytes_per_held_span(&samples, "tier2-b", 12.0), None);
        // A decision after 3 s leaves too few samples.
        assert_eq!(bytes_per_held_span(&samples, "tier2-a", 3.0), None);
    }

    #[test]
    fn the_check_sizes_num_traces_for_the_fixed_flow() {
        let stage = LongTraceStage::check();
        // At the peak, 6 batches at 50 items per second and 162 orders over
        // 45.34 s: 303.57 new traces per second, 151.79 per collector,
        // × (3 s + 1 s) × 2.
        assert_eq!(stage.options.workload.span(), Duration::from_millis(45_340));
        assert_eq!(stage.sized_num_traces(162, Duration::from_secs(3)), 1215);
    }
}
