//! The soak: the final flow under a steady load, under faults, and fed
//! malformed trace context, on one broker. Each scenario is a module; this
//! one runs them in order on one started flow and says which claims failed.

pub mod account;
pub mod cases;
pub mod drive;
pub mod faults;
pub mod fuzz;
pub mod load;
pub mod w3c;

use serde::{Deserialize, Serialize};

use self::drive::Rate;
use self::faults::{Fault, FaultResult};
use self::fuzz::FuzzResult;
use self::load::LoadResult;
use crate::kafka::BrokerKind;

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub kafka: BrokerKind,
    pub load: Rate,
    /// The rate each fault runs under.
    pub fault_load: Rate,
    pub faults: Vec<Fault>,
    pub fuzz_cases: usize,
    pub seed: u64,
}

impl SoakOptions {
    /// 200 requests/s for 60 s, both faults, 10,000 fuzz cases.
    pub fn long(kafka: BrokerKind, seed: u64) -> SoakOptions {
        SoakOptions {
            kafka,
            load: Rate { rps: 200, seconds: 60.0 },
            fault_load: Rate { rps: 100, seconds: 60.0 },
            faults: vec![Fault::KillWorker, Fault::KillConsumer],
            fuzz_cases: 10_000,
            seed,
        }
    }

    /// What CI runs: 100 requests/s for 15 s, the worker fault, 2,000 cases.
    pub fn short(kafka: BrokerKind, seed: u64) -> SoakOptions {
        SoakOptions {
            kafka,
            load: Rate { rps: 100, seconds: 15.0 },
            fault_load: Rate { rps: 100, seconds: 15.0 },
            faults: vec![Fault::KillWorker],
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
    pub fuzz: Option<FuzzResult>,
    /// Seconds from the first request to the last judgement.
    pub elapsed_seconds: f64,
}

impl SoakReport {
    /// The soak's claims that do not hold, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
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
        }
        for fault in &self.faults {
            if !fault.explained {
                problems.push(format!(
                    "{}: {} hurt requests outside the in-flight window, {} orphans without a request",
                    fault.fault, fault.requests_hurt_outside_window, fault.orphans_without_request
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
                problems.push(format!("fuzz: {} cases broke the W3C rules (seed {})", fuzz.violations, fuzz.seed));
            }
        }
        problems
    }
}

/// Runs the soak's scenarios on one started final flow: the load, each
/// fault, then the fuzz (last: its cases to the worker leave orphans by
/// design, and lineage is reset between scenarios anyway).
pub fn run(options: &SoakOptions) -> anyhow::Result<SoakReport> {
    options.load.validate()?;
    options.fault_load.validate()?;
    if options.fuzz_cases == 0 {
        anyhow::bail!("--fuzz-cases 0: the fuzz needs at least one case");
    }
    let step = crate::step::final_flow()?;
    let spans_per_request = step.expectation(true).spans_per_request;
    let name = format!("soak-{}", options.kafka.to_string().to_ascii_lowercase());
    crate::check::with_flow(&step, options.kafka, &name, |flow| {
        let started = std::time::Instant::now();
        let load = Some(load::run(flow, options.load, spans_per_request)?);
        let mut fault_results = Vec::new();
        for &fault in &options.faults {
            fault_results.push(faults::run(flow, fault, options.fault_load, spans_per_request)?);
        }
        let fuzz = Some(fuzz::run(flow, options.seed, options.fuzz_cases, spans_per_request)?);
        Ok(SoakReport {
            kafka: options.kafka.to_string(),
            load,
            faults: fault_results,
            fuzz,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        })
    })
}
