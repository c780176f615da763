//! A service killed mid-run under load and started again: what it costs in
//! requests and spans, whether every loss belongs to a request in flight at
//! the kill, and how long until requests come through whole again.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use stitch_flow::Role;

use super::account::order_spans;
use super::drive::{Rate, open_loop, progress};
use crate::check::{Flow, wait_for_spans};
use crate::kafka::{FLOW_PARTITIONS, FLOW_TOPIC, wait_for_topic};

/// A request counts as in flight at the kill when it was sent at most this
/// long before it: the services export every 200 ms
/// (`stitch_telemetry::EXPORT_DELAY`), so a SIGKILL loses what the last
/// 200 ms produced plus a batch being sent; 1 s covers both with room.
pub const IN_FLIGHT_BEFORE_KILL: Duration = Duration::from_secs(1);

/// Which part of the flow stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Fault {
    /// The worker, SIGKILLed and restarted.
    KillWorker,
    /// The consumer, SIGKILLed and restarted: Kafka redelivers what it had
    /// processed but not committed.
    KillConsumer,
    /// Lineage, the spans' receiver, restarted: its ports close for
    /// [`LINEAGE_DOWN`] and it forgets everything it held. The services'
    /// exports fail meanwhile, and their SDKs count the spans.
    RestartLineage,
    /// The Kafka broker stopped (SIGTERM) and started again on its port and
    /// its data: both brokers come back with the orders topic (its id
    /// unchanged), its messages and the group's committed offsets.
    RestartBroker,
}

/// How long the receiver stays down in [`Fault::RestartLineage`].
pub const LINEAGE_DOWN: Duration = Duration::from_secs(2);

/// How long after a restarted broker is back the soak watches the services
/// and, as a supervisor would, starts again one that died: the clients
/// reconnect within a second, and what the broker's comeback does to them
/// shows then.
pub const SUPERVISE_AFTER_BROKER: Duration = Duration::from_secs(5);

/// A service that died during a fault and was started again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    pub role: Role,
    /// How the process ended, as the OS says (`signal: 11 (SIGSEGV)`).
    pub status: String,
    /// Seconds from the fault to the death being seen.
    pub after_s: f64,
}

/// When the fault's part was back, and what died on the way.
struct Struck {
    back_at: Instant,
    crashed: Vec<Crash>,
}

impl Fault {
    pub fn name(self) -> String {
        match self {
            Fault::KillWorker => "worker SIGKILL + restart".to_owned(),
            Fault::KillConsumer => "consumer SIGKILL + restart".to_owned(),
            Fault::RestartLineage => format!("lineage restart ({} s down)", LINEAGE_DOWN.as_secs_f64()),
            Fault::RestartBroker => "broker restart".to_owned(),
        }
    }

    /// Stops what the fault stops and starts it again.
    fn strike(self, flow: &mut Flow<'_>) -> anyhow::Result<Struck> {
        let struck_at = Instant::now();
        match self {
            Fault::KillWorker => flow.services.kill(Role::Worker).and_then(|()| flow.services.restart(Role::Worker))?,
            Fault::KillConsumer => {
                flow.services.kill(Role::Consumer).and_then(|()| flow.services.restart(Role::Consumer))?
            }
            Fault::RestartLineage => flow.runtime.block_on(flow.lineage.restart(LINEAGE_DOWN))?,
            Fault::RestartBroker => {
                flow.broker.restart()?;
                // Nothing creates it again: a broker that lost it fails here.
                wait_for_topic(flow.broker.bootstrap(), FLOW_TOPIC, FLOW_PARTITIONS)
                    .context("the restarted broker without the orders topic")?;
                return supervise(flow, struck_at, SUPERVISE_AFTER_BROKER);
            }
        }
        Ok(Struck { back_at: Instant::now(), crashed: Vec::new() })
    }
}

/// Watches the services for `watch` and starts again any that died; the
/// fault is over once the last of them is back (or at once, when none died).
fn supervise(flow: &mut Flow<'_>, struck_at: Instant, watch: Duration) -> anyhow::Result<Struck> {
    let mut back_at = Instant::now();
    let until = back_at + watch;
    let mut crashed = Vec::new();
    while Instant::now() < until {
        for (role, status) in flow.services.exited()? {
            crashed.push(Crash { role, status: status.to_string(), after_s: struck_at.elapsed().as_secs_f64() });
            flow.services.restart(role).with_context(|| format!("starting the {role} again after it died"))?;
            back_at = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Struck { back_at, crashed })
}

/// What one fault cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultResult {
    pub fault: String,
    pub requests: usize,
    /// Requests the gateway did not accept.
    pub failed: usize,
    /// Orphan spans, from lineage's report.
    pub orphans: u64,
    /// Spans the accepted requests' shape promises that never arrived.
    pub spans_lost: u64,
    /// Spans beyond the shape (work done twice).
    pub spans_extra: u64,
    /// Spans that reached lineage after their trace had settled.
    pub late_spans: u64,
    /// Requests (accepted or not) that are not whole.
    pub requests_hurt: usize,
    /// Of those, requests sent outside the in-flight window.
    pub requests_hurt_outside_window: usize,
    /// Orphans lineage reports that no accepted request's traces hold.
    pub orphans_without_request: u64,
    /// True only when every hurt request was in flight at the kill (sent
    /// between [`IN_FLIGHT_BEFORE_KILL`] before it and the restarted
    /// service answering) and every orphan belongs to one of them.
    pub explained: bool,
    /// Lineage's completeness latency over the run: a fault that only
    /// delays work shows here, not in the losses.
    pub completeness_p99_ms: f64,
    pub completeness_max_ms: f64,
    /// Seconds from the fault to what it stopped being back: a restarted
    /// service answering `/healthz`, lineage listening again, the broker
    /// answering with its topic (or a service that died after it, started
    /// again).
    pub down_s: f64,
    /// Seconds from the kill until the first request after which every
    /// request was whole; `None` when the run ended before that.
    pub recovered_s: Option<f64>,
    /// Requests sent before the in-flight window of a lineage restart:
    /// the restarted lineage forgot them, so they are not judged.
    #[serde(default)]
    pub requests_forgotten: usize,
    /// Services that died during the fault and were started again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crashed: Vec<Crash>,
    /// Spans the services' SDKs failed to export or dropped during the run,
    /// from their `/metrics`; `None` when a service restarted (its counters
    /// started again from 0).
    #[serde(default)]
    pub spans_lost_by_sdk: Option<u64>,
}

/// Drives `rate` through `flow`, kills the fault's service a third of the
/// way in, starts it again at once, and accounts for every request.
pub fn run(flow: &mut Flow<'_>, fault: Fault, rate: Rate, spans_per_request: u64) -> anyhow::Result<FaultResult> {
    super::drain(flow, "the last run")?;
    flow.lineage.reset();
    let counted_before = flow.services.export_counts()?;
    let bar = progress("fault", rate.requests());
    let load = flow.runtime.spawn(open_loop(flow.services.gateway(), rate, bar.clone()));
    std::thread::sleep(Duration::from_secs_f64(rate.seconds / 3.0));
    let killed_at = Instant::now();
    let struck = fault.strike(flow);
    // The load ends on its own; wait for it even when the restart failed.
    let sent = flow.runtime.block_on(load).context("the load task panicked")?;
    bar.finish_and_clear();
    let Struck { back_at, crashed } = struck.with_context(|| format!("{}: starting again", fault.name()))?;
    let sent = sent?;
    flow.check_alive()?;

    let accepted = sent.iter().filter(|sent| sent.outcome.is_ok()).count();
    if accepted == 0 {
        bail!("no request of the fault run was accepted");
    }
    let services = &flow.services;
    wait_for_spans(flow.lineage, accepted as u64 * spans_per_request, || services.check_alive())?;
    // A restarted service counts from 0 again; the others' counters span the run.
    let spans_lost_by_sdk = match fault {
        _ if !crashed.is_empty() => None,
        Fault::RestartLineage | Fault::RestartBroker => {
            Some(crate::sdk_export::lost_between(&counted_before, &flow.services.export_counts()?)?)
        }
        Fault::KillWorker | Fault::KillConsumer => None,
    };
    flow.lineage.settle_now();
    let report = flow.lineage.report();

    let mut ordered: Vec<_> = sent.iter().collect();
    ordered.sort_by_key(|sent| sent.sent_at);
    // A restarted lineage holds nothing sent before the in-flight window:
    // those requests are not judged, but their late orphans still count.
    let forgotten_before = match fault {
        Fault::RestartLineage => killed_at.checked_sub(IN_FLIGHT_BEFORE_KILL),
        Fault::KillWorker | Fault::KillConsumer | Fault::RestartBroker => None,
    };
    let (mut spans_lost, mut spans_extra, mut attributed_orphans, mut requests_forgotten) = (0, 0, 0, 0);
    let mut requests = Vec::with_capacity(ordered.len());
    for sent in ordered {
        let forgotten = forgotten_before.is_some_and(|before| sent.sent_at < before);
        let whole = match &sent.outcome {
            Ok(order) => {
                let spans = order_spans(flow.lineage, &order.order_id);
                attributed_orphans += spans.orphans;
                if !forgotten {
                    spans_lost += spans.lost(spans_per_request);
                    spans_extra += spans.extra(spans_per_request);
                }
                spans.whole(spans_per_request)
            }
            Err(_) => false,
        };
        if forgotten {
            requests_forgotten += 1;
        } else {
            requests.push(Judged { sent_at: sent.sent_at, whole });
        }
    }
    let harm = Harm::of(&requests, killed_at, back_at);
    if report.completeness.count == 0 {
        bail!("lineage measured no completeness latency in the fault run: no request became a connected trace");
    }
    let orphans_without_request = report.orphans().saturating_sub(attributed_orphans);
    Ok(FaultResult {
        fault: fault.name(),
        requests: sent.len(),
        failed: sent.len() - accepted,
        orphans: report.orphans(),
        spans_lost,
        spans_extra,
        late_spans: report.late_spans,
        requests_hurt: harm.hurt,
        requests_hurt_outside_window: harm.outside_window,
        orphans_without_request,
        completeness_p99_ms: report.completeness.p99_ms,
        completeness_max_ms: report.completeness.max_ms,
        explained: harm.outside_window == 0 && orphans_without_request == 0,
        down_s: back_at.duration_since(killed_at).as_secs_f64(),
        recovered_s: harm.recovered_s,
        requests_forgotten,
        crashed,
        spans_lost_by_sdk,
    })
}

/// One request of a fault run: when it left, and whether it came through whole.
#[derive(Debug, Clone, Copy)]
pub struct Judged {
    pub sent_at: Instant,
    pub whole: bool,
}

/// What a kill did to the requests around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Harm {
    pub hurt: usize,
    /// Hurt requests sent outside [kill − [`IN_FLIGHT_BEFORE_KILL`], back].
    pub outside_window: usize,
    /// Seconds from the kill to the request after the last hurt one; `None`
    /// when the last request was hurt.
    pub recovered_s: Option<f64>,
}

impl Harm {
    /// Judges `requests`, in the order they were sent.
    pub fn of(requests: &[Judged], killed_at: Instant, back_at: Instant) -> Harm {
        let window_start = killed_at.checked_sub(IN_FLIGHT_BEFORE_KILL).unwrap_or(killed_at);
        let in_window = |at: Instant| at >= window_start && at <= back_at;
        let hurt: Vec<usize> = (0..requests.len()).filter(|&index| !requests[index].whole).collect();
        let outside_window = hurt.iter().filter(|&&index| !in_window(requests[index].sent_at)).count();
        let recovered_s = match hurt.last() {
            // Nothing was hurt: whole from the kill on.
            None => Some(0.0),
            Some(&last) => {
                requests.get(last + 1).map(|next| next.sent_at.saturating_duration_since(killed_at).as_secs_f64())
            }
        };
        Harm { hurt: hurt.len(), outside_window, recovered_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests every 100 ms for 5 s; the kill at 2 s, the service back at 2.5 s.
    fn judge(hurt_at_ms: &[u64]) -> Harm {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let requests: Vec<Judged> =
            (0..50).map(|n| Judged { sent_at: at(n * 100), whole: !hurt_at_ms.contains(&(n * 100)) }).collect();
        Harm::of(&requests, at(2000), at(2500))
    }

    #[test]
    fn losses_in_flight_at_the_kill_are_explained() {
        let harm = judge(&[1100, 1900, 2000, 2300, 2500]);
        assert_eq!(harm.hurt, 5);
        assert_eq!(harm.outside_window, 0);
        let recovered = harm.recovered_s.unwrap();
        assert!((recovered - 0.6).abs() < 1e-6, "{recovered}");
    }

    #[test]
    fn a_loss_long_before_or_after_the_kill_is_not() {
        assert_eq!(judge(&[500, 2000]).outside_window, 1);
        assert_eq!(judge(&[2000, 3000]).outside_window, 1);
    }

    #[test]
    fn a_run_that_ends_hurt_has_not_recovered() {
        assert_eq!(judge(&[2000, 4900]).recovered_s, None);
        assert_eq!(judge(&[]).recovered_s, Some(0.0));
    }
}
