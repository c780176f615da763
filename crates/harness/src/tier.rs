//! Step 4's stage: a tail-sampling tier on the real OpenTelemetry Collector.
//!
//! services → tier 1 (every span to lineage, unsampled; each trace routed by
//! trace id to one of two tier-2 collectors) → tier 2 (tail_sampling) →
//! Jaeger, plus one file per tier-2 collector saying which kept what. All the
//! configuration comes from `infra/collector/` and `infra/jaeger/`, the files
//! `compose.yaml` mounts too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::otelcol::{self, Metrics, OtelProcess, collector_config_dir};
use crate::process::{free_port, poll_until_quiet, spinner};
use crate::stage::{Assertion, Evidence, Order, Stage, StageEnv};
use crate::stages::StageData;

/// How the step's check sets the tier up. Everything else is in the files.
#[derive(Debug, Clone)]
pub struct TierOptions {
    /// `decision_wait`: 30 s in the files, shorter in checks so they end sooner.
    pub decision_wait: Duration,
    /// `num_traces`, the cap on traces held at once per tier-2 collector.
    pub num_traces: u64,
    /// The latency policy's threshold.
    pub slow_threshold: Duration,
    /// How much slower the injected slow request is made.
    pub slow_delay: Duration,
    /// Spans one request makes in the flow that runs.
    pub spans_per_request: usize,
    /// Extra `--config` files layered over tier 2's (e.g. a second exporter).
    pub tier2_overlays: Vec<PathBuf>,
    /// Extra environment for the tier-2 collectors.
    pub tier2_env: Vec<(String, String)>,
    /// The memory cgroup (its directory) a tier-2 collector starts in, by
    /// name (`tier2-a`, `tier2-b`); a collector not named starts in none.
    pub tier2_cgroups: BTreeMap<String, PathBuf>,
}

impl Default for TierOptions {
    fn default() -> TierOptions {
        TierOptions {
            // Longer than the slow request plus the queueing a loaded
            // 2-core machine adds, so its last span arrives before the decision.
            decision_wait: Duration::from_secs(10),
            num_traces: 50_000,
            // Above what baseline traffic takes here, even with a backed-up
            // producer queue (seconds, when everything shares two cores).
            slow_threshold: Duration::from_millis(4_000),
            slow_delay: Duration::from_millis(5_000),
            spans_per_request: 6,
            tier2_overlays: Vec::new(),
            tier2_env: Vec::new(),
            tier2_cgroups: BTreeMap::new(),
        }
    }
}

/// What the run is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lesson {
    /// The fixed flow: the tier must keep the error and the slow trace whole
    /// and about 1% of the rest.
    KeepWhatMatters,
    /// The broken flow (step 0): nothing the tier keeps is a whole request.
    CannotRepair,
}

/// A tier-2 collector: its process, its OTLP port, its file of kept spans.
type Tier2 = (OtelProcess, u16, PathBuf);

/// The tier's processes, started in [`Stage::start`].
struct Running {
    jaeger: OtelProcess,
    jaeger_http: u16,
    tier2: Vec<Tier2>,
    tier1: OtelProcess,
    tier1_grpc: u16,
}

/// The tail-sampling tier as a stage of a check.
pub struct TierStage {
    pub options: TierOptions,
    lesson: Lesson,
    running: Option<Running>,
    error_order: Option<String>,
    slow_order: Option<String>,
}

/// The attribute the flow puts the order id in (`stitch_flow::BUSINESS_KEY`).
const BUSINESS_KEY: &str = "order.id";

/// Probability the baseline policy keeps a trace.
pub const BASELINE_RATIO: f64 = 0.01;
/// Two-sided z for the kept-share tolerance: a correct tier fails it about
/// once in a thousand runs.
const Z_999: f64 = 3.29;

/// The counts of kept baseline traces a correct tier produces, out of
/// `baseline` traces each kept with [`BASELINE_RATIO`]: the binomial mean
/// ± [`Z_999`] standard deviations, whole traces inside it.
pub fn baseline_tolerance(baseline: usize) -> (usize, usize) {
    let n = baseline as f64;
    let mean = n * BASELINE_RATIO;
    let spread = Z_999 * (n * BASELINE_RATIO * (1.0 - BASELINE_RATIO)).sqrt();
    ((mean - spread).max(0.0).ceil() as usize, (mean + spread).floor() as usize)
}

impl TierStage {
    pub fn new(lesson: Lesson, options: TierOptions) -> TierStage {
        TierStage { options, lesson, running: None, error_order: None, slow_order: None }
    }

    fn running(&self) -> Result<&Running> {
        self.running.as_ref().context("the tier is not running")
    }

    /// Scrapes every collector of the tier: tier 1 first, then tier 2's.
    pub fn scrape(&self) -> Result<Vec<(String, Metrics)>> {
        self.scrape_except(&[])
    }

    /// [`TierStage::scrape`] without the tier-2 collectors in `dead`.
    pub fn scrape_except(&self, dead: &[String]) -> Result<Vec<(String, Metrics)>> {
        let running = self.running()?;
        let mut all = vec![(running.tier1.name.clone(), running.tier1.metrics()?)];
        for (collector, _, _) in running.tier2.iter().filter(|(collector, _, _)| !dead.contains(&collector.name)) {
            all.push((collector.name.clone(), collector.metrics()?));
        }
        Ok(all)
    }

    /// How each tier-2 collector ended, by name; `None` while it runs.
    pub fn tier2_exits(&self) -> Result<Vec<(String, Option<std::process::ExitStatus>)>> {
        self.running()?
            .tier2
            .iter()
            .map(|(collector, _, _)| Ok((collector.name.clone(), collector.exit_status()?)))
            .collect()
    }

    /// [`Stage::check_alive`] without the tier-2 collectors in `dead`.
    pub fn check_alive_except(&self, dead: &[String]) -> Result<()> {
        let Some(running) = &self.running else { return Ok(()) };
        running.jaeger.check_alive()?;
        running.tier1.check_alive()?;
        running
            .tier2
            .iter()
            .filter(|(collector, _, _)| !dead.contains(&collector.name))
            .try_for_each(|(process, _, _)| process.check_alive())
    }

    /// Jaeger's API base URL.
    pub fn jaeger_url(&self) -> Result<String> {
        Ok(format!("http://127.0.0.1:{}", self.running()?.jaeger_http))
    }

    /// Waits until every trace tier 2 received has been decided and nothing
    /// more arrives, or `decision_wait` plus a margin has passed.
    pub fn wait_for_decisions(&self) -> Result<()> {
        self.wait_for_decisions_except(&[])
    }

    /// [`TierStage::wait_for_decisions`] of the tier-2 collectors not in `dead`.
    pub fn wait_for_decisions_except(&self, dead: &[String]) -> Result<()> {
        let running = self.running()?;
        let waiting = spinner("waiting for tier 2's sampling decisions");
        let polled = poll_until_quiet(
            self.options.decision_wait * 2 + Duration::from_secs(15),
            Duration::from_millis(250),
            || {
                let (mut decided, mut received) = (0.0, 0.0);
                for (collector, _, _) in running.tier2.iter().filter(|(c, _, _)| !dead.contains(&c.name)) {
                    collector.check_alive()?;
                    let metrics = collector.metrics()?;
                    received += metrics.sum("otelcol_processor_tail_sampling_new_trace_id_received", &[]);
                    decided += metrics.sum("otelcol_processor_tail_sampling_global_count_traces_sampled", &[]);
                    decided += metrics.sum("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early", &[]);
                }
                waiting.set_message(format!("waiting for tier 2's sampling decisions: {decided}/{received} traces"));
                Ok((decided, received))
            },
            |&(decided, received), quiet| received > 0.0 && decided >= received && quiet >= Duration::from_secs(1),
        );
        waiting.finish_and_clear();
        let polled = polled?;
        if !polled.settled {
            let (decided, received) = polled.value;
            bail!("tier 2 decided {decided} of {received} traces before the deadline");
        }
        // What was kept still crosses tier 2's batch processor and Jaeger's.
        std::thread::sleep(Duration::from_millis(1_500));
        Ok(())
    }

    /// Every span in every tier-2 collector's file of kept spans, by collector.
    pub fn kept_spans(&self) -> Result<Vec<(String, Vec<KeptSpan>)>> {
        let running = self.running()?;
        let mut all = Vec::new();
        for (collector, _, file) in &running.tier2 {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut spans = Vec::new();
            let lines = text.lines().count();
            for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
                let value: Value = match serde_json::from_str(line) {
                    Ok(value) => value,
                    // A collector killed mid-write (an OOM kill) leaves its
                    // last line cut short: it never exported that batch.
                    Err(_) if number + 1 == lines && collector.exit_status()?.is_some() => break,
                    Err(err) => {
                        return Err(err)
                            .with_context(|| format!("{} line {}: not OTLP JSON", file.display(), number + 1));
                    }
                };
                spans.extend(otlp_json_spans(&value));
            }
            all.push((collector.name.clone(), spans));
        }
        Ok(all)
    }

    fn measure_kept(&self, lineage: &lineage::Lineage, orders: &[Order]) -> Result<Evidence> {
        self.wait_for_decisions()?;
        let jaeger = self.jaeger_url()?;
        let scrapes = self.scrape()?;
        let kept_by_collector = self.kept_spans()?;
        let options = &self.options;
        let mut assertions = Vec::new();
        let mut notes = vec![format!(
            "tier 2 ×{}: decision_wait {:?}, num_traces {} each, policies: errors, slow (> {} ms), baseline {}%",
            kept_by_collector.len(),
            options.decision_wait,
            options.num_traces,
            options.slow_threshold.as_millis(),
            BASELINE_RATIO * 100.0
        )];

        // Which tier-2 collector kept each trace id.
        let mut keepers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (collector, spans) in &kept_by_collector {
            for span in spans {
                keepers.entry(span.trace_id.clone()).or_default().insert(collector.clone());
            }
        }

        // Every request, read back from Jaeger by the trace id the gateway answered.
        let special: BTreeSet<&str> =
            [self.error_order.as_deref(), self.slow_order.as_deref()].into_iter().flatten().collect();
        // Baseline traces over the threshold are the `slow` policy's to keep:
        // lineage, which saw every span, says which took that long.
        let threshold_nanos = options.slow_threshold.as_nanos() as u64;
        let over_threshold = |order: &Order| {
            lineage
                .trace(&order.trace_id)
                .is_some_and(|trace| trace.end_unix_nanos.saturating_sub(trace.start_unix_nanos) > threshold_nanos)
        };
        let mut baseline_kept = 0usize;
        let mut baseline_total = 0usize;
        let mut slow_baseline = 0usize;
        let mut slow_baseline_kept = 0usize;
        let mut kept_whole = 0usize;
        let mut in_jaeger = BTreeMap::new();
        let reading = spinner("reading the requests back from Jaeger");
        for order in orders {
            let trace = jaeger_trace(&jaeger, &order.trace_id)?;
            if let Some(spans) = &trace
                && spans.len() == options.spans_per_request
                && spans.iter().all(|s| s.trace_id == order.trace_id)
            {
                kept_whole += 1;
            }
            if special.contains(order.order_id.as_str()) {
                // judged below, one by one
            } else if over_threshold(order) {
                slow_baseline += 1;
                slow_baseline_kept += usize::from(trace.is_some());
            } else {
                baseline_total += 1;
                baseline_kept += usize::from(trace.is_some());
            }
            in_jaeger.insert(order.order_id.clone(), trace);
        }
        reading.finish_and_clear();
        let kept_total = in_jaeger.values().filter(|trace| trace.is_some()).count();

        for (label, order_id, policy, others) in
            [("error", &self.error_order, "errors", 0), ("slow", &self.slow_order, "slow", slow_baseline)]
        {
            let Some(order_id) = order_id else { continue };
            let order = orders.iter().find(|order| &order.order_id == order_id);
            let spans = in_jaeger.get(order_id).cloned().flatten().unwrap_or_default();
            let whole = order.is_some_and(|order| {
                spans.len() == options.spans_per_request && spans.iter().all(|span| span.trace_id == order.trace_id)
            });
            assertions.push(Assertion::new(
                format!(
                    "the injected {label} trace is in Jaeger, whole ({} spans, one trace id)",
                    options.spans_per_request
                ),
                format!("{} spans", spans.len()),
                whole,
            ));
            // The policy's own verdict, independent of the 1% that keeps
            // anything now and then: only it proves the tier saw the signal.
            let fired = scrapes
                .iter()
                .map(|(_, metrics)| {
                    metrics.sum(
                        "otelcol_processor_tail_sampling_count_traces_sampled",
                        &[("policy", policy), ("sampled", "true")],
                    ) as u64
                })
                .sum::<u64>();
            let expected = 1 + others as u64;
            let claim = if others == 0 {
                format!("the `{policy}` policy kept exactly the injected {label} trace")
            } else {
                format!(
                    "the `{policy}` policy kept the injected {label} trace and the {others} baseline traces over the threshold"
                )
            };
            assertions.push(Assertion::new(claim, format!("{fired} traces"), fired == expected));
        }

        let n = baseline_total as f64;
        let (low, high) = baseline_tolerance(baseline_total);
        assertions.push(Assertion::new(
            format!("baseline traces kept: {}% within a binomial tolerance [{low}, {high}]", BASELINE_RATIO * 100.0),
            format!(
                "{baseline_kept} of {baseline_total} ({:.2}%), {} dropped",
                100.0 * baseline_kept as f64 / n.max(1.0),
                baseline_total - baseline_kept
            ),
            (low..=high).contains(&baseline_kept),
        ));
        if slow_baseline > 0 {
            notes.push(format!(
                "{slow_baseline} baseline traces took longer than {} ms (a loaded machine queues the producer); \
                 {slow_baseline_kept} of them are in Jaeger",
                options.slow_threshold.as_millis()
            ));
        }
        assertions.push(Assertion::new(
            "every trace in Jaeger is whole",
            format!("{kept_whole} of {kept_total}"),
            kept_whole == kept_total,
        ));

        let split: Vec<_> = keepers.iter().filter(|(_, collectors)| collectors.len() > 1).collect();
        let kept_ids: BTreeSet<&String> =
            orders.iter().filter(|order| in_jaeger[&order.order_id].is_some()).map(|order| &order.trace_id).collect();
        let unaccounted = kept_ids.iter().filter(|id| !keepers.contains_key(**id)).count();
        assertions.push(Assertion::new(
            "every kept trace was kept by exactly one tier-2 collector",
            format!("{} split across collectors, {unaccounted} in no collector's file", split.len()),
            split.is_empty() && unaccounted == 0,
        ));

        let dropped_early = scrapes
            .iter()
            .map(|(_, metrics)| {
                metrics.sum("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early", &[]) as u64
            })
            .sum::<u64>();
        assertions.push(Assertion::new(
            "no trace evicted undecided (the num_traces cap was never hit)",
            format!("{dropped_early} evicted"),
            dropped_early == 0,
        ));

        let routing = routing_summary(&scrapes, &kept_by_collector);
        let received: Vec<f64> = routing.iter().map(|row| row.traces_received).collect();
        assertions.push(Assertion::new(
            "the load-balancing exporter spread the traces over both tier-2 collectors",
            received.iter().map(|count| format!("{count}")).collect::<Vec<_>>().join(" / "),
            received.len() == 2 && received.iter().all(|&count| count > 0.0),
        ));
        for row in &routing {
            notes.push(format!(
                "{}: {} traces received, {} kept ({} spans), RSS {:.0} MiB",
                row.collector,
                row.traces_received,
                row.traces_kept,
                row.spans_kept,
                row.rss_bytes / (1024.0 * 1024.0)
            ));
        }
        let names: BTreeMap<String, String> = self
            .running()?
            .tier2
            .iter()
            .map(|(process, port, _)| (format!("127.0.0.1:{port}"), process.name.clone()))
            .collect();
        notes.extend(backend_outcomes(&scrapes, &names));
        Ok(Evidence {
            assertions,
            notes,
            data: StageData::Tier(TierData {
                decision_wait_ms: options.decision_wait.as_millis() as u64,
                num_traces: options.num_traces,
                baseline_total,
                baseline_kept,
                slow_baseline,
                slow_baseline_kept,
                baseline_tolerance: (low, high),
                kept_total,
                kept_whole,
                dropped_too_early: dropped_early,
                routing,
            }),
        })
    }

    fn measure_cannot_repair(&self, orders: &[Order]) -> Result<Evidence> {
        self.wait_for_decisions()?;
        let jaeger = self.jaeger_url()?;
        let scrapes = self.scrape()?;
        let kept_by_collector = self.kept_spans()?;
        // Kept spans regrouped by business key: the fragments of each request
        // that the tier kept, each its own trace id.
        let mut fragments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut kept_ids = BTreeSet::new();
        let mut services_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (_, spans) in &kept_by_collector {
            for span in spans {
                kept_ids.insert(span.trace_id.clone());
                services_of.entry(span.trace_id.clone()).or_default().insert(span.service.clone());
                if let Some(order) = &span.order_id {
                    fragments.entry(order.clone()).or_default().insert(span.trace_id.clone());
                }
            }
        }
        let requests = orders.len();
        let touched = orders.iter().filter(|order| fragments.contains_key(&order.order_id)).count();
        let per_request = self.options.spans_per_request;
        let mut whole = 0usize;
        for order in orders {
            if let Some(spans) = jaeger_trace(&jaeger, &order.trace_id)? {
                whole += usize::from(spans.len() == per_request);
            }
        }
        let mut by_service: BTreeMap<String, usize> = BTreeMap::new();
        for services in services_of.values() {
            for service in services {
                *by_service.entry(service.clone()).or_default() += 1;
            }
        }
        let mut in_jaeger = 0usize;
        for id in &kept_ids {
            in_jaeger += usize::from(jaeger_trace(&jaeger, id)?.is_some());
        }
        let error_fragments = self.error_order.as_ref().map_or(0, |id| fragments.get(id).map_or(0, BTreeSet::len));
        // The failed span itself, kept by the `errors` policy on its own trace id.
        let error_span_kept = self.error_order.as_ref().is_some_and(|id| {
            kept_by_collector
                .iter()
                .flat_map(|(_, spans)| spans)
                .any(|span| span.error && span.order_id.as_ref() == Some(id))
        });
        let mut assertions = vec![
            Assertion::new("no request reaches the backend whole", format!("{whole} of {requests} whole"), whole == 0),
            Assertion::new(
                "what the tier kept are fragments, each sampled on its own trace id",
                format!("{} fragments of {touched} requests", kept_ids.len()),
                !kept_ids.is_empty(),
            ),
            Assertion::new(
                "Jaeger holds every fragment the tier kept",
                format!("{in_jaeger} of {}", kept_ids.len()),
                in_jaeger == kept_ids.len(),
            ),
        ];
        if self.error_order.is_some() {
            let error_whole = orders
                .iter()
                .find(|order| self.error_order.as_ref() == Some(&order.order_id))
                .map(|order| jaeger_trace(&jaeger, &order.trace_id))
                .transpose()?
                .flatten()
                .is_some_and(|spans| spans.len() == per_request);
            assertions.push(Assertion::new(
                "the injected error keeps its own fragment, never the request",
                format!(
                    "failed span kept: {error_span_kept}; {error_fragments} fragment(s) of that order kept; whole: {error_whole}"
                ),
                error_span_kept && !error_whole,
            ));
        }
        let mut notes = vec![format!(
            "the broken flow through the same tier: {requests} requests, {} fragments kept from {touched} requests",
            kept_ids.len()
        )];
        for (service, count) in &by_service {
            notes.push(format!("kept fragments with {service} spans: {count}"));
        }
        let routing = routing_summary(&scrapes, &kept_by_collector);
        Ok(Evidence {
            assertions,
            notes,
            data: StageData::SamplingCannotRepair(CannotRepairData {
                requests,
                requests_whole_in_backend: whole,
                requests_with_a_kept_fragment: touched,
                fragments_kept: kept_ids.len(),
                fragments_kept_by_service: by_service,
                error_request_fragments_kept: error_fragments,
                routing,
            }),
        })
    }
}

impl Stage for TierStage {
    fn start(&mut self, env: &StageEnv) -> Result<()> {
        let collector = otelcol::install_collector()?;
        let jaeger_binary = otelcol::install_jaeger()?;
        let starting = spinner("starting Jaeger and the collector tier (tier 1, tier 2 ×2)");
        let dir = env.logs.join("tier");
        std::fs::create_dir_all(&dir)?;
        let (jaeger_grpc, jaeger_http, jaeger_query_grpc) = (free_port()?, free_port()?, free_port()?);
        let jaeger = OtelProcess::start(
            "jaeger",
            &jaeger_binary,
            &[crate::project_root().join("infra").join("jaeger").join("config.yaml")],
            &[
                ("STITCH_OTLP_GRPC", format!("127.0.0.1:{jaeger_grpc}")),
                ("STITCH_QUERY_HTTP", format!("127.0.0.1:{jaeger_http}")),
                ("STITCH_QUERY_GRPC", format!("127.0.0.1:{jaeger_query_grpc}")),
            ],
            jaeger_http,
            &dir.join("jaeger.log"),
        );
        let jaeger = match jaeger {
            Ok(jaeger) => jaeger,
            Err(err) => {
                starting.finish_and_clear();
                return Err(err);
            }
        };
        // From here on, `stop` cleans up whatever started.
        let mut tier2: Vec<Tier2> = Vec::new();
        let mut started = || -> Result<(Vec<Tier2>, OtelProcess, u16)> {
            for name in ["tier2-a", "tier2-b"] {
                let port = free_port()?;
                let file = dir.join(format!("{name}-kept.jsonl"));
                let _ = std::fs::remove_file(&file);
                let mut configs = vec![collector_config_dir().join("tier2.yaml")];
                configs.extend(self.options.tier2_overlays.iter().cloned());
                let mut vars = vec![
                    ("STITCH_OTLP_GRPC", format!("127.0.0.1:{port}")),
                    ("STITCH_BACKEND", format!("127.0.0.1:{jaeger_grpc}")),
                    ("STITCH_KEPT_FILE", file.display().to_string()),
                    ("STITCH_COLLECTOR_NAME", name.to_owned()),
                    ("STITCH_DECISION_WAIT", format!("{}ms", self.options.decision_wait.as_millis())),
                    ("STITCH_NUM_TRACES", self.options.num_traces.to_string()),
                    ("STITCH_SLOW_MS", self.options.slow_threshold.as_millis().to_string()),
                ];
                for (key, value) in &self.options.tier2_env {
                    vars.push((key.as_str(), value.clone()));
                }
                let log = dir.join(format!("{name}.log"));
                let process = match self.options.tier2_cgroups.get(name) {
                    Some(cgroup) => {
                        let join = crate::cgroup::join_on_exec(cgroup)?;
                        OtelProcess::start_with(name, &collector, &configs, &vars, port, &log, |command| {
                            command.before_spawn(join)
                        })?
                    }
                    None => OtelProcess::start(name, &collector, &configs, &vars, port, &log)?,
                };
                tier2.push((process, port, file));
            }
            let (grpc, http) = (free_port()?, free_port()?);
            let lineage = env.lineage_otlp.trim_start_matches("http://").to_owned();
            let tier1 = OtelProcess::start(
                "tier1",
                &collector,
                &[collector_config_dir().join("tier1.yaml")],
                &[
                    ("STITCH_OTLP_GRPC", format!("127.0.0.1:{grpc}")),
                    ("STITCH_OTLP_HTTP", format!("127.0.0.1:{http}")),
                    ("STITCH_LINEAGE", lineage),
                    ("STITCH_TIER2_A", format!("127.0.0.1:{}", tier2[0].1)),
                    ("STITCH_TIER2_B", format!("127.0.0.1:{}", tier2[1].1)),
                ],
                grpc,
                &dir.join("tier1.log"),
            )?;
            Ok((std::mem::take(&mut tier2), tier1, grpc))
        };
        let result = started();
        starting.finish_and_clear();
        match result {
            Ok((tier2, tier1, tier1_grpc)) => {
                self.running = Some(Running { jaeger, jaeger_http, tier2, tier1, tier1_grpc });
                Ok(())
            }
            Err(err) => {
                let mut jaeger = jaeger;
                jaeger.stop();
                for (mut process, _, _) in tier2 {
                    process.stop();
                }
                Err(err)
            }
        }
    }

    fn otlp_endpoint(&self) -> Option<String> {
        self.running.as_ref().map(|running| format!("http://127.0.0.1:{}", running.tier1_grpc))
    }

    fn drive(&mut self, _env: &StageEnv, gateway: SocketAddr) -> Result<Vec<Order>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let delay = self.options.slow_delay.as_millis();
        let (error, slow) = runtime.block_on(async {
            let client = crate::gateway::client()?;
            let order = |query: String| crate::gateway::place(client.post(format!("http://{gateway}/orders?{query}")));
            anyhow::Ok(tokio::join!(order("fail=true".to_owned()), order(format!("delay_ms={delay}"))))
        })?;
        let (error, slow) = (error.context("the injected error request")?, slow.context("the slow request")?);
        self.error_order = Some(error.order_id.clone());
        self.slow_order = Some(slow.order_id.clone());
        // The slow request's spans are still on their way: give them the delay.
        std::thread::sleep(self.options.slow_delay + Duration::from_millis(500));
        Ok(vec![error, slow])
    }

    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> Result<Evidence> {
        match self.lesson {
            Lesson::KeepWhatMatters => self.measure_kept(env.lineage, orders),
            Lesson::CannotRepair => self.measure_cannot_repair(orders),
        }
    }

    fn check_alive(&self) -> Result<()> {
        self.check_alive_except(&[])
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            // Upstream first, so nothing is left sending to a stopped peer.
            running.tier1.stop();
            for (process, _, _) in &mut running.tier2 {
                process.stop();
            }
            running.jaeger.stop();
        }
    }
}

/// One span of OTLP JSON (Jaeger's API, the file exporter), as far as the
/// checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub order_id: Option<String>,
    pub error: bool,
}

/// Every span in an OTLP JSON document (`{"resourceSpans": [...]}`), at any depth.
pub fn otlp_json_spans(value: &Value) -> Vec<KeptSpan> {
    let mut spans = Vec::new();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(object) if object.contains_key("resourceSpans") => {
                for resource_spans in object["resourceSpans"].as_array().into_iter().flatten() {
                    let service = attribute(&resource_spans["resource"]["attributes"], "service.name")
                        .unwrap_or_else(|| "unknown".to_owned());
                    let scopes = resource_spans["scopeSpans"].as_array().into_iter().flatten();
                    for span in scopes.flat_map(|scope| scope["spans"].as_array().into_iter().flatten()) {
                        let id = |key: &str| span[key].as_str().filter(|id| !id.is_empty()).map(normalise_id);
                        let Some(trace_id) = id("traceId") else { continue };
                        spans.push(KeptSpan {
                            trace_id,
                            span_id: id("spanId").unwrap_or_default(),
                            parent_span_id: id("parentSpanId"),
                            service: service.clone(),
                            order_id: attribute(&span["attributes"], BUSINESS_KEY),
                            error: matches!(&span["status"]["code"], Value::Number(code) if code.as_u64() == Some(2))
                                || span["status"]["code"].as_str() == Some("STATUS_CODE_ERROR"),
                        });
                    }
                }
            }
            Value::Object(object) => pending.extend(object.values()),
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    spans
}

/// Trace and span ids as lineage prints them: lowercase hex. OTLP JSON has
/// hex; a base64 id (protobuf's JSON mapping) is converted.
fn normalise_id(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_hexdigit()) {
        return id.to_ascii_lowercase();
    }
    base64_decode(id).map_or_else(|| id.to_owned(), |bytes| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&c| c == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

fn attribute(attributes: &Value, key: &str) -> Option<String> {
    attributes.as_array()?.iter().find(|attribute| attribute["key"] == key).and_then(|attribute| {
        let value = &attribute["value"];
        value["stringValue"].as_str().map(str::to_owned).or_else(|| value.as_str().map(str::to_owned))
    })
}

/// One trace from Jaeger's API, or `None` when Jaeger does not have it.
pub fn jaeger_trace(base: &str, trace_id: &str) -> Result<Option<Vec<KeptSpan>>> {
    let (status, body) = crate::process::http_get_status(&format!("{base}/api/v3/traces/{trace_id}"))?;
    match status {
        404 => Ok(None),
        200 => {
            let value: Value = serde_json::from_str(&body).context("Jaeger answered something that is not JSON")?;
            let spans = otlp_json_spans(&value);
            Ok((!spans.is_empty()).then_some(spans))
        }
        other => bail!("Jaeger answered {other} for trace {trace_id}: {}", body.chars().take(300).collect::<String>()),
    }
}

/// What step 4's tier measured: what it kept of the fixed flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierData {
    pub decision_wait_ms: u64,
    pub num_traces: u64,
    /// Traces of the baseline traffic under the slow threshold, and how many
    /// of them are in Jaeger.
    pub baseline_total: usize,
    pub baseline_kept: usize,
    /// Baseline traces over the slow threshold (the `slow` policy's to keep).
    pub slow_baseline: usize,
    pub slow_baseline_kept: usize,
    /// The binomial tolerance `baseline_kept` must fall in.
    pub baseline_tolerance: (usize, usize),
    /// Requests in Jaeger, and how many of them whole.
    pub kept_total: usize,
    pub kept_whole: usize,
    pub dropped_too_early: u64,
    pub routing: Vec<RoutingRow>,
}

/// What the broken flow looked like after the same tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CannotRepairData {
    pub requests: usize,
    pub requests_whole_in_backend: usize,
    pub requests_with_a_kept_fragment: usize,
    pub fragments_kept: usize,
    /// Kept fragments with at least one span of the service.
    pub fragments_kept_by_service: BTreeMap<String, usize>,
    pub error_request_fragments_kept: usize,
    pub routing: Vec<RoutingRow>,
}

/// Per tier-2 collector: what it received and kept, from its metrics and file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutingRow {
    pub collector: String,
    pub traces_received: f64,
    pub traces_kept: usize,
    pub spans_kept: usize,
    pub rss_bytes: f64,
}

fn routing_summary(scrapes: &[(String, Metrics)], kept: &[(String, Vec<KeptSpan>)]) -> Vec<RoutingRow> {
    kept.iter()
        .map(|(collector, spans)| {
            let metrics = scrapes.iter().find(|(name, _)| name == collector).map(|(_, metrics)| metrics);
            let traces: BTreeSet<&String> = spans.iter().map(|span| &span.trace_id).collect();
            RoutingRow {
                collector: collector.clone(),
                traces_received: metrics
                    .map_or(0.0, |m| m.sum("otelcol_processor_tail_sampling_new_trace_id_received", &[])),
                traces_kept: traces.len(),
                spans_kept: spans.len(),
                rss_bytes: metrics.map_or(0.0, |m| m.sum("otelcol_process_memory_rss", &[])),
            }
        })
        .collect()
}

/// Tier 1's load-balancer outcome per backend, as report lines.
fn backend_outcomes(scrapes: &[(String, Metrics)], names: &BTreeMap<String, String>) -> Vec<String> {
    let Some((_, tier1)) = scrapes.iter().find(|(name, _)| name == "tier1") else { return Vec::new() };
    let mut by_endpoint: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (labels, value) in tier1.series("otelcol_loadbalancer_backend_outcome", &[]) {
        let endpoint = labels.get("endpoint").cloned().unwrap_or_else(|| "?".to_owned());
        let entry = by_endpoint.entry(endpoint).or_default();
        if labels.get("success").is_some_and(|success| success == "true") {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    by_endpoint
        .into_iter()
        .map(|(endpoint, (ok, failed))| {
            let name = names.get(&endpoint).map_or(endpoint.as_str(), String::as_str);
            format!("tier 1 → {name}: {ok} exports ok, {failed} failed")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_baseline_tolerance_is_binomial_around_one_percent() {
        // 2000 traces: mean 20, σ = √(2000 × 0.01 × 0.99) = 4.45, ± 3.29 σ = 14.6.
        let (low, high) = baseline_tolerance(2000);
        assert_eq!((low, high), (6, 34));
        assert!((low..=high).contains(&20), "a correct tier keeps about 20");
        assert!(!(low..=high).contains(&0), "a tier that drops the baseline fails");
        assert!(!(low..=high).contains(&200), "a tier that keeps 10% fails");
        // Too few traces to expect any: keeping none passes.
        assert_eq!(baseline_tolerance(0), (0, 0));
    }

    #[test]
    fn reads_spans_from_otlp_json_with_hex_or_base64_ids() {
        let document = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "consumer"}}]},
            "scopeSpans": [{"spans": [
                {"traceId": "0AF7651916CD43DD8448EB211C80319C", "spanId": "b7ad6b7169203331",
                 "parentSpanId": "", "status": {"code": 2},
                 "attributes": [{"key": "order.id", "value": {"stringValue": "ord-1"}}]},
                {"traceId": "CvdlGRbNQ92ESOshHIAxnA==", "spanId": "t61rcWkgMzE=", "status": {}}
            ]}]
        }]});
        let spans = otlp_json_spans(&document);
        assert_eq!(spans.len(), 2);
        assert!(spans.iter().all(|span| span.trace_id == "0af7651916cd43dd8448eb211c80319c"));
        let first = spans.iter().find(|span| span.order_id.is_some()).expect("the span with an order");
        assert_eq!(first.service, "consumer");
        assert_eq!(first.parent_span_id, None);
        assert!(first.error);
        let second = spans.iter().find(|span| span.order_id.is_none()).expect("the span without an order");
        assert_eq!(second.span_id, "b7ad6b7169203331");
        assert!(!second.error);
    }
}
