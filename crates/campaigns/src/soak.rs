//! The soak: the final flow under a steady load, under faults, and fed
//! malformed trace context, on one broker. Each scenario is a module; this
//! one runs them in order on one started flow and says which claims failed.

pub mod account;
pub mod cases;
pub mod drive;
pub mod faults;
pub mod foreign;
pub mod fuzz;
pub mod load;
pub mod overhead;
pub mod saturation;
pub mod w3c;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use self::drive::Rate;
use self::faults::{Fault, FaultResult};
use self::fuzz::FuzzResult;
use self::load::LoadResult;
use self::overhead::OverheadResult;
use self::saturation::SaturationResult;
use crate::kafka::BrokerKind;

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub kafka: BrokerKind,
    pub load: Rate,
    /// The rate each fault runs under.
    pub fault_load: Rate,
    pub faults: Vec<Fault>,
    /// The overhead's open loop (latency) and the seconds of its closed loop.
    pub overhead_load: Rate,
    /// Callers of the overhead's closed loop (throughput).
    pub overhead_callers: usize,
    /// Seconds at each rate of the saturation climb.
    pub saturation_seconds: f64,
    /// The climb's rates, as multiples of the load's.
    pub saturation_multiples: Vec<f64>,
    pub fuzz_cases: usize,
    pub seed: u64,
}

impl SoakOptions {
    /// 200 requests/s for 60 s, every fault, the climb from 1× to 6×, 10,000 fuzz cases.
    pub fn long(kafka: BrokerKind, seed: u64) -> SoakOptions {
        SoakOptions {
            kafka,
            load: Rate { rps: 200, seconds: 60.0 },
            fault_load: Rate { rps: 100, seconds: 60.0 },
            faults: vec![Fault::KillWorker, Fault::KillConsumer, Fault::RestartLineage, Fault::RestartBroker],
            overhead_load: Rate { rps: 100, seconds: 20.0 },
            overhead_callers: 16,
            saturation_seconds: 10.0,
            saturation_multiples: saturation::MULTIPLES.to_vec(),
            fuzz_cases: 10_000,
            seed,
        }
    }

    /// What CI runs: 100 requests/s for 15 s, the worker kill, the lineage
    /// restart and the broker restart, 2× the load, 2,000 cases.
    pub fn short(kafka: BrokerKind, seed: u64) -> SoakOptions {
        SoakOptions {
            kafka,
            load: Rate { rps: 100, seconds: 15.0 },
            fault_load: Rate { rps: 100, seconds: 15.0 },
            faults: vec![Fault::KillWorker, Fault::RestartLineage, Fault::RestartBroker],
            overhead_load: Rate { rps: 100, seconds: 5.0 },
            overhead_callers: 16,
            saturation_seconds: 5.0,
            saturation_multiples: saturation::SHORT_MULTIPLES.to_vec(),
            fuzz_cases: 2_000,
            seed,
        }
    }
}

/// Everything a soak measured; a scenario that did not run is absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakReport {
    pub kafka: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<SaturationResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<OverheadResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuzz: Option<FuzzResult>,
    /// Services the soak started again between scenarios, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// Seconds from the first request to the last judgement.
    pub elapsed_seconds: f64,
}

/// A seed from the clock and the process id: each run fuzzes afresh, and
/// prints the seed that replays it.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

impl SoakReport {
    /// What CI holds the short soak to: no crash and no broken W3C rule
    /// under the fuzz, no loss a fault does not explain, no orphan under
    /// load. A scenario that did not run is a problem too.
    pub fn ci_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.load {
            Some(load) if load.orphans > 0 => problems.push(format!("load: {} orphan spans", load.orphans)),
            Some(_) => {}
            None => problems.push("the load did not run".to_owned()),
        }
        if self.faults.is_empty() {
            problems.push("no fault ran".to_owned());
        }
        if self.overhead.is_none() {
            problems.push("the overhead did not run".to_owned());
        }
        if self.saturation.is_none() {
            problems.push("the saturation climb did not run".to_owned());
        }
        for fault in self.faults.iter().filter(|fault| !fault.explained) {
            problems.push(unexplained(fault));
        }
        match &self.fuzz {
            Some(fuzz) => {
                if fuzz.crashes > 0 {
                    problems.push(format!("fuzz: {} services crashed (seed {})", fuzz.crashes, fuzz.seed));
                }
                if fuzz.violations > 0 {
                    problems.push(violations(fuzz));
                }
            }
            None => problems.push("the fuzz did not run".to_owned()),
        }
        problems
    }

    /// Every claim of the soak that does not hold, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.restarted.clone();
        if let Some(load) = &self.load {
            if load.failed > 0 {
                problems.push(format!("load: {} of {} requests failed", load.failed, load.requests));
            }
            if load.orphans > 0 {
                problems.push(format!("load: {} orphan spans", load.orphans));
            }
            if load.spans_received != load.spans_expected {
                problems
                    .push(format!("load: {} spans received, {} expected", load.spans_received, load.spans_expected));
            }
            if load.spans_dropped_by_sdk > 0 {
                problems.push(format!("load: {} spans lost at the source (the SDKs)", load.spans_dropped_by_sdk));
            }
        }
        for fault in &self.faults {
            if !fault.explained {
                problems.push(unexplained(fault));
            }
            for crash in &fault.crashed {
                problems.push(format!(
                    "{}: the {} died ({}) {:.1} s after the fault and was started again",
                    fault.fault, crash.role, crash.status, crash.after_s
                ));
            }
            if fault.recovered_s.is_none() {
                problems.push(format!("{}: requests were not whole again before the run ended", fault.fault));
            }
        }
        if let Some(fuzz) = &self.fuzz {
            if fuzz.crashes > 0 {
                problems.push(format!("fuzz: {} services crashed", fuzz.crashes));
            }
            if fuzz.violations > 0 {
                problems.push(violations(fuzz));
            }
        }
        problems
    }
}

fn violations(fuzz: &FuzzResult) -> String {
    format!("fuzz: {} cases broke the W3C rules (seed {})", fuzz.violations, fuzz.seed)
}

fn unexplained(fault: &FaultResult) -> String {
    format!(
        "{}: {} hurt requests outside the in-flight window, {} orphans without a request",
        fault.fault, fault.requests_hurt_outside_window, fault.orphans_without_request
    )
}

/// Runs the soak's scenarios on one started final flow: the load, each
/// fault (on a flow that has not yet been pushed past capacity), the
/// overhead (tracing on and off; its closed loop runs past capacity), the
/// saturation climb, then the fuzz (last: its cases to the worker leave
/// orphans by design, and lineage is reset between scenarios anyway).
/// Before each scenario every service must answer `/healthz`: a consumer
/// that lost its partitions in the last one would make the next measure
/// nothing. Each measured run starts once the last one's backlog drained.
pub fn run(options: &SoakOptions) -> anyhow::Result<SoakReport> {
    options.load.validate()?;
    options.fault_load.validate()?;
    if options.fuzz_cases == 0 {
        anyhow::bail!("--fuzz-cases 0: the fuzz needs at least one case");
    }
    // The fuzz's last part needs a JDK: know before minutes of load.
    foreign::ready()?;
    let step = crate::step::final_flow()?;
    let spans_per_request = step.full_expectation()?.spans_per_request;
    let name = format!("soak-{}", options.kafka.to_string().to_ascii_lowercase());
    crate::check::with_flow(&step, options.kafka, &name, |flow| {
        let started = std::time::Instant::now();
        let load = Some(load::run(flow, options.load, spans_per_request)?);
        let mut fault_results = Vec::new();
        let mut restarted = Vec::new();
        for &fault in &options.faults {
            ready_after(flow, "the scenario before this fault", &mut restarted)?;
            fault_results.push(faults::run(flow, fault, options.fault_load, spans_per_request)?);
        }
        ready_after(flow, "the faults", &mut restarted)?;
        let overhead = Some(overhead::run(flow, options.overhead_load, options.overhead_callers, spans_per_request)?);
        ready_after(flow, "the overhead's closed loop", &mut restarted)?;
        let saturation = Some(saturation::run(
            flow,
            options.load,
            &options.saturation_multiples,
            options.saturation_seconds,
            spans_per_request,
        )?);
        ready_after(flow, "the saturation climb", &mut restarted)?;
        let fuzz = Some(fuzz::run(flow, options.seed, options.fuzz_cases, spans_per_request)?);
        Ok(SoakReport {
            kafka: options.kafka.to_string(),
            load,
            faults: fault_results,
            saturation,
            overhead,
            fuzz,
            restarted,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        })
    })
}

/// How long no span may reach lineage before the flow counts as drained:
/// the services export every `stitch_telemetry::EXPORT_DELAY`.
const DRAINED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest the soak waits for a scenario's backlog to drain.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits until no span has reached lineage for [`DRAINED_AFTER`]: past
/// capacity the consumer lags behind Kafka, and what it still processes
/// would reach the next scenario's fresh lineage as orphans of requests it
/// never saw.
pub(crate) fn drain(flow: &mut crate::check::Flow<'_>, scenario: &str) -> anyhow::Result<()> {
    let services = &flow.services;
    let lineage = &*flow.lineage;
    let polled = crate::process::poll_until_quiet(
        DRAIN_TIMEOUT,
        std::time::Duration::from_millis(200),
        || {
            services.check_alive()?;
            Ok(lineage.report().spans_received)
        },
        |_, quiet| quiet >= DRAINED_AFTER,
    )?;
    if !polled.settled {
        anyhow::bail!("spans still reached lineage {DRAIN_TIMEOUT:?} after {scenario}: its backlog did not drain");
    }
    Ok(())
}

/// Starts again, as a supervisor whose readiness probe failed would, each
/// service that no longer answers `/healthz` after `scenario` (the consumer
/// answers only while it holds a partition), and says so in `restarted`:
/// the next scenario then measures a working flow, and the report keeps
/// what happened.
fn ready_after(flow: &mut crate::check::Flow<'_>, scenario: &str, restarted: &mut Vec<String>) -> anyhow::Result<()> {
    flow.check_alive()?;
    for role in flow.services.down() {
        restarted.push(format!("after {scenario}, the {role} no longer answered /healthz and was started again"));
        flow.services.kill(role)?;
        flow.services.restart(role).with_context(|| format!("starting the {role} again after {scenario}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SoakReport {
        let load = LoadResult {
            rps: 100,
            seconds: 15.0,
            requests: 1500,
            failed: 0,
            spans_expected: 9000,
            spans_received: 9000,
            orphans: 0,
            late_spans: 0,
            incomplete_requests: 0,
            spans_dropped_by_sdk: 0,
            latency_p50_ms: 3.0,
            latency_p99_ms: 9.0,
            completeness_p99_ms: 250.0,
            send_lag_p99_ms: 5.0,
            send_lag_max_ms: 15.0,
            first_failure: None,
        };
        let fault = FaultResult {
            fault: Fault::KillWorker.name(),
            requests: 1500,
            failed: 14,
            orphans: 11,
            spans_lost: 32,
            spans_extra: 0,
            late_spans: 0,
            requests_hurt: 25,
            requests_hurt_outside_window: 0,
            orphans_without_request: 0,
            completeness_p99_ms: 400.0,
            completeness_max_ms: 900.0,
            explained: true,
            down_s: 0.2,
            recovered_s: Some(0.3),
            requests_forgotten: 0,
            crashed: Vec::new(),
            spans_lost_by_sdk: None,
        };
        let fuzz = FuzzResult {
            seed: 42,
            cases: 2000,
            crashes: 0,
            rejected: 1388,
            continued: 282,
            continued_unsampled: 257,
            handled: 2000,
            errors: 0,
            violations: 0,
            valid_not_continued: 0,
            edges: Vec::new(),
            spans_expected: 8400,
            spans_received: 7490,
            spans_refused_by_lineage: Default::default(),
            refused_statuses: Default::default(),
            violations_by_kind: Default::default(),
            examples: Vec::new(),
        };
        SoakReport {
            kafka: "tansu".to_owned(),
            load: Some(load),
            faults: vec![fault],
            saturation: Some(SaturationResult {
                seconds: 5.0,
                steps: Vec::new(),
                first_loss_rps: None,
                spans_dropped_by_sdk: 0,
                orphans_at_2x: 0,
            }),
            overhead: Some(OverheadResult {
                rate: Rate { rps: 100, seconds: 5.0 },
                callers: 16,
                on: overhead::OverheadSide {
                    latency_p50_ms: 3.0,
                    latency_p99_ms: 9.0,
                    throughput_rps: 300.0,
                    failed: 0,
                    spans_dropped_by_sdk: Some(0),
                },
                off: overhead::OverheadSide {
                    latency_p50_ms: 3.0,
                    latency_p99_ms: 9.0,
                    throughput_rps: 300.0,
                    failed: 0,
                    spans_dropped_by_sdk: None,
                },
                latency_p50_ratio: 1.0,
                latency_p99_ratio: 1.0,
                throughput_ratio: 1.0,
            }),
            fuzz: Some(fuzz),
            restarted: Vec::new(),
            elapsed_seconds: 40.0,
        }
    }

    #[test]
    fn ci_holds_the_short_soak_to_its_four_claims() {
        assert_eq!(report().ci_problems(), Vec::<String>::new());
        assert_eq!(report().problems(), Vec::<String>::new(), "every claim holds: the soak ends green");

        let mut broke_rules = report();
        broke_rules.fuzz.as_mut().unwrap().violations = 3;
        assert_eq!(broke_rules.ci_problems(), ["fuzz: 3 cases broke the W3C rules (seed 42)"]);
        assert_eq!(broke_rules.problems(), ["fuzz: 3 cases broke the W3C rules (seed 42)"]);

        let mut orphaned = report();
        orphaned.load.as_mut().unwrap().orphans = 3;
        assert_eq!(orphaned.ci_problems(), ["load: 3 orphan spans"]);

        let mut unexplained = report();
        unexplained.faults[0].explained = false;
        unexplained.faults[0].requests_hurt_outside_window = 2;
        assert_eq!(unexplained.ci_problems().len(), 1);

        let mut crashed = report();
        crashed.fuzz.as_mut().unwrap().crashes = 1;
        assert_eq!(crashed.ci_problems(), ["fuzz: 1 services crashed (seed 42)"]);
    }

    #[test]
    fn a_service_that_died_in_a_fault_is_a_claim_that_failed() {
        let mut crashed = report();
        crashed.faults[0].crashed.push(faults::Crash {
            role: stitch_flow::Role::Consumer,
            status: "signal: 11 (SIGSEGV)".to_owned(),
            after_s: 0.3,
        });
        let problems = crashed.problems();
        assert!(
            problems.iter().any(|problem| problem.contains("the consumer died (signal: 11 (SIGSEGV))")),
            "{problems:?}"
        );
        assert_eq!(crashed.ci_problems(), Vec::<String>::new(), "the losses are explained: CI holds to those");
        let json = serde_json::to_string(&crashed).unwrap();
        assert!(json.contains("\"crashed\":[{\"role\":\"consumer\""), "{json}");
    }

    #[test]
    fn a_scenario_that_did_not_run_fails_ci() {
        let mut missing = report();
        missing.fuzz = None;
        missing.faults.clear();
        missing.saturation = None;
        assert_eq!(missing.ci_problems(), ["no fault ran", "the saturation climb did not run", "the fuzz did not run"]);
    }

    #[test]
    fn a_scenario_that_did_not_run_is_absent_from_the_json() {
        let mut partial = report();
        partial.fuzz = None;
        partial.faults.clear();
        let json = serde_json::to_string(&partial).unwrap();
        assert!(json.contains("\"load\"") && !json.contains("\"fuzz\"") && !json.contains("\"faults\""), "{json}");
    }
}
