//! Step 8's stage: a batch job that outlives the tail sampler's decision
//! window, through step 4's tier.
//!
//! The run's lineage sees every span before sampling, as in every step. A
//! second lineage, started here, receives what tier 2 keeps
//! (`infra/collector/tier2-after-sampling.yaml`): lineage after sampling,
//! where a kept span whose parent was dropped is an orphan. Tier 2's RSS is
//! sampled while the workload runs, for the memory side of the lesson.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::cgroup::MemoryCgroup;
use crate::otelcol::collector_config_dir;
use crate::process::spinner;
use stitch_model::stage::long_trace::{CollectorUnderLimit, HardLimit, HardLimitRun, Sample, Workload};
use stitch_model::{Order, StageData};

use crate::stage::{Stage, StageEnv};
use crate::tier::{TierOptions, TierStage};

mod measure;
mod memory;

pub use self::memory::{bytes_per_held_span, memory_summary, slope_mib_per_minute};

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
    /// Why no memory cgroup could be made: what only the limit proves is
    /// then not judged, and fails.
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

/// A 10-minute threshold: a batch is long by design, so the `slow` policy
/// (meant for requests) would keep every one for its length alone.
pub const SLOW_THRESHOLD: Duration = Duration::from_secs(600);

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
        // Step 4's solved policies, whoever's crate runs: the lesson here is
        // the long trace, not the sampling.
        let solved = TierOptions::solved()?;
        let mut overlays = solved.tier2_overlays.clone();
        overlays.extend([
            collector_config_dir().join("tier2-after-sampling.yaml"),
            collector_config_dir().join("tier2-decision-cache.yaml"),
        ]);
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
            ..solved
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

    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> Result<StageData> {
        self.measure_run(env, orders)
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
    fn the_check_sizes_num_traces_for_the_fixed_flow() {
        let stage = LongTraceStage::check();
        // At the peak, 6 batches at 50 items per second and 162 orders over
        // 45.34 s: 303.57 new traces per second, 151.79 per collector,
        // × (3 s + 1 s) × 2.
        assert_eq!(stage.options.workload.span(), Duration::from_millis(45_340));
        assert_eq!(stage.sized_num_traces(162, Duration::from_secs(3)), 1215);
    }
}
