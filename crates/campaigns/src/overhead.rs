//! What tracing costs the services themselves: the gateway and the worker
//! pinned to one core, everything else (lineage, the broker, the consumer,
//! the load) to the others, and rounds that alternate tracing on and off
//! (on, off, on, off, …) on the same processes' binary, so that a drift of
//! the machine falls on both sides alike. Each round reads the two
//! services' CPU time from `/proc` around an open-loop load, and the
//! gateway's latency; the summary gives each figure's spread over the
//! rounds. Then, optionally, the soak's saturation climb, several times, on
//! the same pinned flow.
//!
//! With `cuts`, the rounds cycle through tracing on, off, and on with each
//! cut of "What tracing costs" undone (`--tracing two-processors`,
//! `--tracing default-layer`): what each cut saves, measured on one binary.

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use stitch_telemetry::Tracing;

use crate::check::wait_for_spans;
use crate::proc_stat::{cpu_seconds, pin};
use crate::soak::drive::{Rate, millis, open_loop, percentile, progress};
use crate::soak::overhead::SWITCHED;
use crate::soak::saturation::{self, SaturationResult};
use stitch_flow::Role;
use stitch_runner::flow::{Flow, Profile};

/// What an overhead run does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverheadOptions {
    pub kafka: String,
    pub profile: Profile,
    /// The open loop of each round.
    pub rate: Rate,
    /// Rounds in all, a whole number of cycles (on, off; or with `cuts`,
    /// on, off, and each cut undone).
    pub rounds: usize,
    /// Whether the cycle includes each cut undone.
    #[serde(default)]
    pub cuts: bool,
    /// Seconds of unmeasured load after each restart: connections, pools
    /// and the exporter's channel are made before the clock starts.
    pub warmup_seconds: f64,
    /// Saturation climbs after the rounds (0: none).
    pub climbs: usize,
    /// The rate the climbs start from (the soak's load).
    pub climb_load: Rate,
    pub climb_seconds: f64,
    /// The CPU the gateway and the worker run on; everything else runs on `others`.
    pub services_core: usize,
    pub others: String,
}

/// CPU time of one service over one round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceCpu {
    pub role: String,
    /// User + system CPU time, per accepted request, in microseconds.
    pub cpu_us_per_request: f64,
    /// Spans this service exported in the round (tracing on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans_exported: Option<u64>,
}

/// One round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Round {
    pub tracing: String,
    pub requests: usize,
    pub failed: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub services: Vec<ServiceCpu>,
    /// Spans the SDKs dropped or failed to export (tracing on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans_lost_by_sdk: Option<u64>,
}

impl Round {
    fn is(&self, tracing: Tracing) -> bool {
        self.tracing == tracing.name()
    }

    pub fn cpu_us(&self, role: &str) -> Option<f64> {
        self.services.iter().find(|s| s.role == role).map(|s| s.cpu_us_per_request)
    }

    /// Both services' CPU per request.
    pub fn cpu_us_total(&self) -> f64 {
        self.services.iter().map(|s| s.cpu_us_per_request).sum()
    }
}

/// Min, median and max over the rounds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if !n.is_multiple_of(2) { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Spread { min: values[0], median, max: values[n - 1] })
    }
}

/// One side's figures over its rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub latency_p50_ms: Spread,
    pub latency_p99_ms: Spread,
    pub gateway_cpu_us: Spread,
    pub worker_cpu_us: Spread,
    pub cpu_us: Spread,
}

/// On over off, per pair of neighbouring rounds (on, then off).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratios {
    pub latency_p50: Spread,
    pub latency_p99: Spread,
    pub cpu: Spread,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverheadReport {
    pub options: OverheadOptions,
    pub rounds: Vec<Round>,
    pub on: Side,
    pub off: Side,
    pub ratios: Ratios,
    /// What one exported span costs the service that made it: the median
    /// CPU per request with tracing on less the one with it off, over the
    /// spans each request exported. Per role, then both together.
    pub cpu_us_per_span: Vec<(String, f64)>,
    /// Spans per request the gateway and the worker exported, together.
    pub spans_per_request: f64,
    /// Each cut undone against tracing on as the services run it (with
    /// `cuts`; empty without).
    #[serde(default)]
    pub cuts: Vec<CutFigure>,
    pub climbs: Vec<SaturationResult>,
    pub elapsed_seconds: f64,
    /// The machine's 1-minute load average before and after the run.
    pub load_average: (f64, f64),
}

/// One cut undone, over its rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CutFigure {
    /// The `--tracing` value that undoes the cut.
    pub undone: String,
    /// Both services' CPU per request with the cut undone.
    pub cpu_us: Spread,
    pub latency_p50_ms: Spread,
    /// Its median CPU per request less tracing on's: what the cut saves.
    pub saved_us_per_request: f64,
    /// The same over the spans each request exports.
    pub saved_us_per_span: f64,
}

/// The variants a run's rounds cycle through, in order.
pub fn cycle(cuts: bool) -> &'static [Tracing] {
    if cuts {
        &[Tracing::On, Tracing::Off, Tracing::TwoProcessors, Tracing::DefaultLayer]
    } else {
        &[Tracing::On, Tracing::Off]
    }
}

/// Runs the rounds (and climbs) on a freshly started final flow.
pub fn run(options: &OverheadOptions) -> anyhow::Result<OverheadReport> {
    let cycle = cycle(options.cuts);
    if options.rounds < cycle.len() || !options.rounds.is_multiple_of(cycle.len()) {
        bail!(
            "--rounds {}: a multiple of {}, at least {} (as many rounds of each: {})",
            options.rounds,
            cycle.len(),
            cycle.len(),
            cycle.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
        );
    }
    options.rate.validate()?;
    let kafka = options.kafka.parse().map_err(|err| anyhow::anyhow!("--kafka {}: {err}", options.kafka))?;
    let step = crate::step::final_flow()?;
    let spans_per_request = step.full_expectation()?.spans_per_request;
    stitch_runner::flow::with_flow_built(&step, kafka, "overhead", options.profile, |flow| {
        let started = std::time::Instant::now();
        let load_before = crate::proc_stat::load_average()?;
        let _pinned = pin_flow(flow, options.services_core, &options.others)?;
        let mut rounds = Vec::new();
        for index in 0..options.rounds {
            let tracing = cycle[index % cycle.len()];
            // The flow starts with tracing on: round 0 needs no restart.
            if index > 0 {
                flow.services.restart_with_tracing(&SWITCHED, tracing)?;
                pin_services(flow, options.services_core)?;
            }
            eprintln!("· round {} of {}: tracing {}", index + 1, options.rounds, tracing.name());
            rounds.push(round(flow, options, tracing, spans_per_request)?);
        }
        flow.services.restart_with_tracing(&SWITCHED, Tracing::On)?;
        pin_services(flow, options.services_core)?;
        let mut climbs = Vec::new();
        for climb in 0..options.climbs {
            eprintln!("· saturation climb {} of {}", climb + 1, options.climbs);
            climbs.push(saturation::run(
                flow,
                options.climb_load,
                &saturation::MULTIPLES,
                options.climb_seconds,
                spans_per_request,
            )?);
            ready(flow)?;
        }
        let mut report = summarise(options, rounds, climbs, started.elapsed().as_secs_f64())?;
        report.load_average = (load_before, crate::proc_stat::load_average()?);
        Ok(report)
    })
}

/// The harness (lineage runs in it, and the load), the broker and the
/// consumer on `others`; the gateway and the worker on `services_core`.
///
/// The harness stays pinned while the returned value lives.
pub fn pin_flow(
    flow: &mut Flow<'_>,
    services_core: usize,
    others: &str,
) -> anyhow::Result<crate::proc_stat::PinnedSelf> {
    let pinned = crate::proc_stat::PinnedSelf::to(others)?;
    pin(flow.broker.pid(), others)?;
    for pid in flow.services.pids(Role::Consumer) {
        pin(pid, others)?;
    }
    pin_services(flow, services_core)?;
    Ok(pinned)
}

fn pin_services(flow: &mut Flow<'_>, services_core: usize) -> anyhow::Result<()> {
    for role in SWITCHED {
        for pid in flow.services.pids(role) {
            pin(pid, &services_core.to_string())?;
        }
    }
    Ok(())
}

/// Unmeasured load at `rps` for `seconds`, until lineage's count stops moving: the
/// connections, pools and the exporter's channel exist before a clock starts.
pub fn warm_up(flow: &mut Flow<'_>, rps: u32, seconds: f64) -> anyhow::Result<()> {
    let warmup = Rate { rps, seconds: seconds.max(1.0) };
    flow.runtime.block_on(open_loop(flow.services.gateway(), warmup, indicatif::ProgressBar::hidden()))?;
    let services = &flow.services;
    wait_for_spans(flow.lineage, 0, || services.check_alive())?;
    Ok(())
}

/// One service's process: exactly one pid.
fn pid_of(flow: &Flow<'_>, role: Role) -> anyhow::Result<u32> {
    match flow.services.pids(role).as_slice() {
        [pid] => Ok(*pid),
        pids => bail!("{role} runs as {} processes, expected one", pids.len()),
    }
}

fn cpu_of(flow: &Flow<'_>) -> anyhow::Result<Vec<f64>> {
    SWITCHED.iter().map(|role| cpu_seconds(pid_of(flow, *role)?)).collect()
}

/// Spans each switched service exported so far.
fn exported(flow: &Flow<'_>) -> anyhow::Result<Vec<u64>> {
    let counts = flow.services.export_counts()?;
    SWITCHED
        .iter()
        .map(|role| {
            counts
                .iter()
                .find(|c| c.role == *role)
                .map(|c| c.counts.exported)
                .with_context(|| format!("no span counters from {role}"))
        })
        .collect()
}

fn round(
    flow: &mut Flow<'_>,
    options: &OverheadOptions,
    tracing: Tracing,
    spans_per_request: u64,
) -> anyhow::Result<Round> {
    let gateway = flow.services.gateway();
    warm_up(flow, options.rate.rps, options.warmup_seconds)?;
    flow.lineage.reset();

    let cpu_before = cpu_of(flow)?;
    let exported_before = if tracing.exports() { Some(exported(flow)?) } else { None };
    let lost_before = flow.services.export_counts()?;
    let bar = progress(format!("tracing {}", tracing.name()), options.rate.requests());
    let sent = flow.runtime.block_on(open_loop(gateway, options.rate, bar.clone()))?;
    bar.finish_and_clear();
    let latencies: Vec<f64> = sent.iter().filter(|s| s.outcome.is_ok()).map(|s| millis(s.latency)).collect();
    let accepted = latencies.len();
    if accepted == 0 {
        bail!("no request of the round was accepted");
    }
    // The deferred work, the publish and the last export happen after the
    // answers: the round's CPU is read once its spans have all arrived.
    drain(flow, tracing, accepted as u64, spans_per_request)?;
    let cpu_after = cpu_of(flow)?;
    let exported_after = if tracing.exports() { Some(exported(flow)?) } else { None };
    flow.check_alive()?;
    let services = SWITCHED
        .iter()
        .enumerate()
        .map(|(i, role)| ServiceCpu {
            role: role.name().to_owned(),
            cpu_us_per_request: round_to((cpu_after[i] - cpu_before[i]) * 1e6 / accepted as f64, 1),
            spans_exported: match (&exported_before, &exported_after) {
                (Some(before), Some(after)) => Some(after[i] - before[i]),
                _ => None,
            },
        })
        .collect();
    let spans_lost_by_sdk = if tracing.exports() {
        Some(crate::sdk_export::lost_between(&lost_before, &flow.services.export_counts()?)?)
    } else {
        None
    };
    Ok(Round {
        tracing: tracing.name().to_owned(),
        requests: sent.len(),
        failed: sent.len() - accepted,
        latency_p50_ms: percentile(&latencies, 0.50).expect("accepted > 0"),
        latency_p99_ms: percentile(&latencies, 0.99).expect("accepted > 0"),
        services,
        spans_lost_by_sdk,
    })
}

/// Waits until the round's spans reached lineage: all of them with tracing
/// on, the consumer's one per request with it off (`requests` 0: until quiet).
fn drain(flow: &mut Flow<'_>, tracing: Tracing, requests: u64, spans_per_request: u64) -> anyhow::Result<()> {
    let spans = if tracing.exports() { requests * spans_per_request } else { requests };
    let services = &flow.services;
    wait_for_spans(flow.lineage, spans, || services.check_alive())?;
    Ok(())
}

/// Every service answers `/healthz` after a climb pushed it past capacity.
fn ready(flow: &mut Flow<'_>) -> anyhow::Result<()> {
    let down = flow.services.down();
    if !down.is_empty() {
        bail!(
            "after the climb, {} no longer answer",
            down.iter().map(|role| role.name()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

fn side(rounds: &[&Round]) -> anyhow::Result<Side> {
    let spread = |values: Vec<f64>, what: &str| Spread::of(values).with_context(|| format!("no {what} measured"));
    Ok(Side {
        latency_p50_ms: spread(rounds.iter().map(|r| r.latency_p50_ms).collect(), "p50")?,
        latency_p99_ms: spread(rounds.iter().map(|r| r.latency_p99_ms).collect(), "p99")?,
        gateway_cpu_us: spread(rounds.iter().filter_map(|r| r.cpu_us("gateway")).collect(), "gateway CPU")?,
        worker_cpu_us: spread(rounds.iter().filter_map(|r| r.cpu_us("worker")).collect(), "worker CPU")?,
        cpu_us: spread(rounds.iter().map(|r| r.cpu_us_total()).collect(), "CPU")?,
    })
}

fn summarise(
    options: &OverheadOptions,
    rounds: Vec<Round>,
    climbs: Vec<SaturationResult>,
    elapsed_seconds: f64,
) -> anyhow::Result<OverheadReport> {
    let on_rounds: Vec<&Round> = rounds.iter().filter(|r| r.is(Tracing::On)).collect();
    let off_rounds: Vec<&Round> = rounds.iter().filter(|r| r.is(Tracing::Off)).collect();
    let on = side(&on_rounds)?;
    let off = side(&off_rounds)?;
    let pairs: Vec<(&Round, &Round)> = on_rounds.iter().copied().zip(off_rounds.iter().copied()).collect();
    let ratio = |f: &dyn Fn(&Round) -> f64, what: &str| {
        Spread::of(pairs.iter().map(|(on, off)| f(on) / f(off))).with_context(|| format!("no {what} ratio"))
    };
    let ratios = Ratios {
        latency_p50: ratio(&|r| r.latency_p50_ms, "p50")?,
        latency_p99: ratio(&|r| r.latency_p99_ms, "p99")?,
        cpu: ratio(&|r| r.cpu_us_total(), "CPU")?,
    };
    let spans_of = |role: &str| {
        Spread::of(on_rounds.iter().filter_map(|r| {
            let service = r.services.iter().find(|s| s.role == role)?;
            Some(service.spans_exported? as f64 / (r.requests - r.failed) as f64)
        }))
        .map(|s| s.median)
    };
    let (gateway_spans, worker_spans) = (
        spans_of("gateway").context("no spans exported by the gateway")?,
        spans_of("worker").context("no spans exported by the worker")?,
    );
    let per_span = |extra: f64, spans: f64| round_to(extra / spans, 2);
    let cpu_us_per_span = vec![
        ("gateway".to_owned(), per_span(on.gateway_cpu_us.median - off.gateway_cpu_us.median, gateway_spans)),
        ("worker".to_owned(), per_span(on.worker_cpu_us.median - off.worker_cpu_us.median, worker_spans)),
        ("both".to_owned(), per_span(on.cpu_us.median - off.cpu_us.median, gateway_spans + worker_spans)),
    ];
    let spans_per_request = gateway_spans + worker_spans;
    let mut cuts = Vec::new();
    for undone in cycle(options.cuts).iter().filter(|t| !matches!(t, Tracing::On | Tracing::Off)) {
        let undone_rounds: Vec<&Round> = rounds.iter().filter(|r| r.is(*undone)).collect();
        let figures = side(&undone_rounds).with_context(|| format!("tracing {}", undone.name()))?;
        let saved = figures.cpu_us.median - on.cpu_us.median;
        cuts.push(CutFigure {
            undone: undone.name().to_owned(),
            cpu_us: figures.cpu_us,
            latency_p50_ms: figures.latency_p50_ms,
            saved_us_per_request: round_to(saved, 1),
            saved_us_per_span: per_span(saved, spans_per_request),
        });
    }
    Ok(OverheadReport {
        options: options.clone(),
        rounds,
        on,
        off,
        ratios,
        cpu_us_per_span,
        spans_per_request: round_to(spans_per_request, 2),
        cuts,
        climbs,
        elapsed_seconds,
        load_average: (0.0, 0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(tracing: &str, p50: f64, gateway: f64, worker: f64) -> Round {
        let exported = |n| (tracing == "on").then_some(n);
        Round {
            tracing: tracing.to_owned(),
            requests: 100,
            failed: 0,
            latency_p50_ms: p50,
            latency_p99_ms: p50 * 3.0,
            services: vec![
                ServiceCpu { role: "gateway".into(), cpu_us_per_request: gateway, spans_exported: exported(200) },
                ServiceCpu { role: "worker".into(), cpu_us_per_request: worker, spans_exported: exported(300) },
            ],
            spans_lost_by_sdk: exported(0),
        }
    }

    fn options() -> OverheadOptions {
        OverheadOptions {
            kafka: "tansu".into(),
            profile: Profile::Release,
            rate: Rate { rps: 100, seconds: 5.0 },
            rounds: 4,
            cuts: false,
            warmup_seconds: 1.0,
            climbs: 0,
            climb_load: Rate { rps: 200, seconds: 10.0 },
            climb_seconds: 10.0,
            services_core: 1,
            others: "0".into(),
        }
    }

    #[test]
    fn a_span_costs_the_extra_cpu_over_the_spans_exported() {
        let rounds = vec![
            round("on", 1.1, 120.0, 160.0),
            round("off", 1.0, 100.0, 130.0),
            round("on", 1.3, 130.0, 170.0),
            round("off", 1.2, 110.0, 140.0),
        ];
        let report = summarise(&options(), rounds, vec![], 1.0).unwrap();
        assert_eq!(report.on.gateway_cpu_us.median, 125.0);
        assert_eq!(report.off.gateway_cpu_us.median, 105.0);
        // 20 µs more per request over 2 spans per request; the worker 30 over 3.
        assert_eq!(report.cpu_us_per_span[0], ("gateway".to_owned(), 10.0));
        assert_eq!(report.cpu_us_per_span[1], ("worker".to_owned(), 10.0));
        assert_eq!(report.spans_per_request, 5.0);
        // Pairs (1.1/1.0, 1.3/1.2).
        assert!((report.ratios.latency_p50.min - 1.3 / 1.2).abs() < 1e-9);
        assert!((report.ratios.latency_p50.max - 1.1).abs() < 1e-9);
    }

    #[test]
    fn a_cut_saves_its_median_over_tracing_on() {
        let rounds = vec![
            round("on", 1.1, 120.0, 160.0),
            round("off", 1.0, 100.0, 130.0),
            round("two-processors", 1.2, 130.0, 175.0),
            round("default-layer", 1.3, 125.0, 170.0),
            round("on", 1.1, 124.0, 160.0),
            round("off", 1.0, 100.0, 130.0),
            round("two-processors", 1.2, 134.0, 175.0),
            round("default-layer", 1.3, 125.0, 180.0),
        ];
        let report = summarise(&OverheadOptions { rounds: 8, cuts: true, ..options() }, rounds, vec![], 1.0).unwrap();
        assert_eq!(report.on.cpu_us.median, 282.0);
        let names: Vec<&str> = report.cuts.iter().map(|c| c.undone.as_str()).collect();
        assert_eq!(names, ["two-processors", "default-layer"]);
        // (305 + 309) / 2 − 282 = 25 µs per request, over 5 spans.
        assert_eq!(report.cuts[0].saved_us_per_request, 25.0);
        assert_eq!(report.cuts[0].saved_us_per_span, 5.0);
        assert_eq!(report.cuts[1].saved_us_per_request, 18.0);
        // The on/off figures count only on and off rounds.
        assert_eq!(report.off.cpu_us.median, 230.0);
    }

    #[test]
    fn a_cut_with_no_round_of_its_own_is_an_error() {
        let rounds = vec![round("on", 1.1, 120.0, 160.0), round("off", 1.0, 100.0, 130.0)];
        let err = summarise(&OverheadOptions { rounds: 4, cuts: true, ..options() }, rounds, vec![], 1.0).unwrap_err();
        assert!(format!("{err:#}").contains("two-processors"), "{err:#}");
    }

    #[test]
    fn spreads_are_min_median_max() {
        assert_eq!(Spread::of([3.0, 1.0, 2.0]), Some(Spread { min: 1.0, median: 2.0, max: 3.0 }));
        assert_eq!(Spread::of([4.0, 1.0]), Some(Spread { min: 1.0, median: 2.5, max: 4.0 }));
        assert_eq!(Spread::of([]), None);
        assert_eq!(Spread::of([f64::NAN, 2.0]), Some(Spread { min: 2.0, median: 2.0, max: 2.0 }));
    }

    #[test]
    fn odd_or_too_few_rounds_are_refused() {
        for rounds in [0, 1, 3] {
            let err = run(&OverheadOptions { rounds, ..options() }).unwrap_err().to_string();
            assert!(err.contains("--rounds"), "{err}");
        }
        for rounds in [2, 6] {
            let err = run(&OverheadOptions { rounds, cuts: true, ..options() }).unwrap_err().to_string();
            assert!(err.contains("a multiple of 4"), "{err}");
        }
    }
}
