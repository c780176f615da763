//! Step 4's stage: a tail-sampling tier on the real OpenTelemetry Collector.
//!
//! services → tier 1 (every span to lineage, unsampled; each trace routed by
//! trace id to one of two tier-2 collectors) → tier 2 (tail_sampling) →
//! Jaeger, plus one file per tier-2 collector saying which kept what. All the
//! configuration comes from `infra/collector/` and `infra/jaeger/`, the files
//! `compose.yaml` mounts too.

mod jaeger;
mod measure;
mod otlp_json;
mod sampling;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

pub use self::jaeger::jaeger_trace;
pub use self::otlp_json::{file_line_spans, jaeger_spans};
pub use self::sampling::{FILE_NAME as SAMPLING_FILE, LearnerSampling};
use crate::otelcol::{self, Metrics, OtelProcess, collector_config_dir};
use crate::process::{free_port, poll_until_quiet, spinner};
pub use stitch_model::stage::tier::{CannotRepairData, KeptSpan, RoutingRow, TierData};
use stitch_model::{Order, StageData};

use crate::stage::{Stage, StageEnv};

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
    /// Tier 2's policies, `name (type)`, as the check describes them
    /// (empty: tier2.yaml's placeholder, which keeps 1% at random).
    pub policies: Vec<String>,
    /// The threshold tier 2's `slow` policy runs with, as its settings say
    /// with the check's variables; `None` when no latency policy is `slow`.
    pub slow_policy_threshold: Option<Duration>,
    /// Whether that threshold follows `${env:STITCH_SLOW_MS}`.
    pub slow_policy_threshold_from_variable: bool,
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
            slow_threshold: stitch_model::sampling::CHECK_SLOW_THRESHOLD,
            slow_delay: stitch_model::sampling::CHECK_SLOW_DELAY,
            spans_per_request: 6,
            tier2_overlays: Vec::new(),
            tier2_env: Vec::new(),
            tier2_cgroups: BTreeMap::new(),
            policies: Vec::new(),
            slow_policy_threshold: None,
            slow_policy_threshold_from_variable: false,
        }
    }
}

impl TierOptions {
    /// The check's options with step 4's solved settings: their policies,
    /// with `decision_wait` and `num_traces` from these options
    /// (`infra/collector/tier2-sizes-from-env.yaml` layered after them).
    pub fn solved() -> Result<TierOptions> {
        let sampling = LearnerSampling::solved()?;
        let check = TierOptions::default();
        Ok(TierOptions {
            decision_wait: check.decision_wait,
            num_traces: check.num_traces,
            tier2_overlays: vec![sampling.path.clone(), collector_config_dir().join("tier2-sizes-from-env.yaml")],
            ..TierOptions::with_learner_sampling(&sampling)
        })
    }

    /// The check's options with a learner's `sampling.yaml` layered last:
    /// its `decision_wait`, `num_traces` and policies are the tier's.
    pub fn with_learner_sampling(sampling: &LearnerSampling) -> TierOptions {
        TierOptions {
            decision_wait: sampling.decision_wait,
            num_traces: sampling.num_traces,
            tier2_overlays: vec![sampling.path.clone()],
            policies: sampling.policies.clone(),
            slow_policy_threshold: sampling.slow_threshold_ms.map(Duration::from_millis),
            slow_policy_threshold_from_variable: sampling.slow_threshold_from_variable,
            ..TierOptions::default()
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
        // A tier that evicts traces undecided (a full `num_traces`) never
        // accounts for all it received: once it has evicted, a count that
        // stays still for longer than a decision takes is its last.
        let evicted_settle = self.options.decision_wait + Duration::from_secs(2);
        let polled = poll_until_quiet(
            self.options.decision_wait * 2 + Duration::from_secs(15),
            Duration::from_millis(250),
            || {
                let (mut decided, mut received, mut evicted) = (0.0, 0.0, 0.0);
                for (collector, _, _) in running.tier2.iter().filter(|(c, _, _)| !dead.contains(&c.name)) {
                    collector.check_alive()?;
                    let metrics = collector.metrics()?;
                    received += metrics.events("otelcol_processor_tail_sampling_new_trace_id_received", &[]);
                    decided += metrics.events("otelcol_processor_tail_sampling_global_count_traces_sampled", &[]);
                    evicted += metrics.events("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early", &[]);
                }
                waiting.set_message(format!(
                    "waiting for tier 2's sampling decisions: {decided} decided + {evicted} evicted / {received} traces"
                ));
                Ok((decided + evicted, received, evicted))
            },
            |&(done, received, evicted), quiet| {
                received > 0.0
                    && ((done >= received && quiet >= Duration::from_secs(1))
                        || (evicted > 0.0 && quiet >= evicted_settle))
            },
        );
        waiting.finish_and_clear();
        let polled = polled?;
        if !polled.settled {
            let (done, received, _) = polled.value;
            bail!("tier 2 decided {done} of {received} traces before the deadline");
        }
        // What was kept still crosses tier 2's batch processor and Jaeger's.
        std::thread::sleep(Duration::from_millis(1_500));
        Ok(())
    }

    /// Every span in every tier-2 collector's file of kept spans, by
    /// collector. The file exporter creates its file at start: a missing
    /// one is an error, not a collector that kept nothing.
    pub fn kept_spans(&self) -> Result<Vec<(String, Vec<KeptSpan>)>> {
        let running = self.running()?;
        let mut all = Vec::new();
        for (collector, _, file) in &running.tier2 {
            let died = collector.exit_status()?.is_some();
            all.push((collector.name.clone(), read_kept_file(file, &collector.name, died)?));
        }
        Ok(all)
    }
}

/// The spans in one tier-2 collector's file of kept spans (`collector`'s,
/// which `died` or still runs). A missing file is an error: the exporter
/// creates it at start, so none means the run is not what it seems.
pub fn read_kept_file(file: &std::path::Path, collector: &str, died: bool) -> Result<Vec<KeptSpan>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading {}, {collector}'s file of kept spans", file.display()))?;
    let mut spans = Vec::new();
    let lines = text.lines().count();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        match file_line_spans(line) {
            Ok(kept) => spans.extend(kept),
            // A collector killed mid-write (an OOM kill) leaves its last
            // line cut short: it never exported that batch.
            Err(_) if number + 1 == lines && died => break,
            Err(err) => return Err(err).with_context(|| format!("{} line {}", file.display(), number + 1)),
        }
    }
    Ok(spans)
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
                    (stitch_model::sampling::SLOW_MS_VARIABLE, self.options.slow_threshold.as_millis().to_string()),
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

    fn drive(&mut self, env: &StageEnv, gateway: SocketAddr) -> Result<Vec<Order>> {
        let delay = self.options.slow_delay.as_millis();
        let (error, slow) = env.runtime.block_on(async {
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

    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> Result<StageData> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = include_str!("../testdata/tier2-kept.jsonl");

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stitch-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_missing_file_of_kept_spans_is_an_error_not_nothing_kept() {
        let missing = std::env::temp_dir().join("stitch-no-such-dir").join("tier2-a-kept.jsonl");
        let error = read_kept_file(&missing, "tier2-a", false).unwrap_err();
        assert!(format!("{error:#}").contains("tier2-a's file of kept spans"), "{error:#}");
        // An empty file is a collector that kept nothing.
        assert_eq!(read_kept_file(&file("empty.jsonl", ""), "tier2-a", false).unwrap(), []);
    }

    #[test]
    fn a_last_line_cut_short_is_dropped_only_when_its_collector_died() {
        let cut = file("cut.jsonl", &format!("{}{}", LINE, &LINE[..40]));
        assert_eq!(read_kept_file(&cut, "tier2-a", true).unwrap(), file_line_spans(LINE.trim()).unwrap());
        let error = read_kept_file(&cut, "tier2-a", false).unwrap_err();
        assert!(format!("{error:#}").contains("cut.jsonl line 2"), "{error:#}");
    }
}
