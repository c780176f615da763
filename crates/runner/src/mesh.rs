//! Step 6's stage: Envoy (see [`crate::envoy`]) as a sidecar in front of the
//! worker (gateway → Envoy → worker), tracing with OpenTelemetry and
//! exporting straight to lineage; probes sent straight to Envoy show what it
//! does with a context it cannot use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use crate::envoy::{ENVOY_SERVICE, ENVOY_VERSION, Envoy, EnvoyPorts, SpanShape, install_envoy, loopback_port};
use crate::process::{free_port, poll_until_quiet, spinner};
use stitch_judge::chain::{TraceHops, chain_above};
use stitch_model::stage::mesh::{MeshData, Probe};
use stitch_model::{Assertion, Evidence, Order, StageData};

use crate::stage::{Stage, StageEnv};

/// A request sent straight to Envoy's listener with a `traceparent` the
/// gateway would never send.
#[derive(Debug, Clone, Copy)]
struct ProbeCase {
    name: &'static str,
    traceparent: &'static str,
}

const PROBES: [ProbeCase; 2] = [
    // The flags field is missing: not a W3C traceparent.
    ProbeCase { name: "malformed", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331" },
    // Valid, with the sampled flag off.
    ProbeCase { name: "unsampled", traceparent: "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00" },
];

/// Envoy between the gateway and the worker, and what it does with context.
pub struct MeshStage {
    shape: SpanShape,
    binary: Option<PathBuf>,
    envoy: Option<Envoy>,
    probes: Vec<Probe>,
    probe_error: Option<String>,
}

impl Default for MeshStage {
    /// Envoy as the file configures it.
    fn default() -> MeshStage {
        MeshStage::new()
    }
}

impl MeshStage {
    pub fn new() -> MeshStage {
        MeshStage::with_shape(SpanShape::FromTheFile)
    }

    /// Envoy recording `shape`'s spans per request (the chapter measures both).
    pub fn with_shape(shape: SpanShape) -> MeshStage {
        MeshStage { shape, binary: None, envoy: None, probes: Vec::new(), probe_error: None }
    }

    /// Sends the probes to Envoy before the baseline traffic, reads what
    /// lineage made of them, then resets lineage: the judged numbers hold the
    /// gateway's requests only, and the probes are judged on their own.
    fn probe(&mut self, env: &StageEnv, listener: SocketAddr) -> anyhow::Result<()> {
        let statuses = env.runtime.block_on(send_probes(listener))?;
        // Until the spans stop arriving: the malformed probe always leaves
        // some (the worker starts a trace of its own), and the consumer's
        // arrive a few hundred milliseconds after the worker's.
        poll_until_quiet(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || Ok(env.lineage.report().spans_received),
            |&received, quiet| received > 0 && quiet >= Duration::from_millis(1500),
        )?;
        env.lineage.settle_now();
        self.probes = PROBES
            .into_iter()
            .zip(statuses)
            .map(|(case, status)| {
                let key = probe_key(case);
                let traces = env.lineage.request_traces(&key);
                // No trace with this key: then there is no dump to ask for.
                let dump =
                    if traces.is_empty() { String::new() } else { env.lineage.request_dump(&key).unwrap_or_default() };
                probe_result(case, key, status, traces, dump)
            })
            .collect();
        env.lineage.reset();
        Ok(())
    }
}

/// Sends each probe straight to Envoy; the HTTP status of each.
async fn send_probes(listener: SocketAddr) -> anyhow::Result<Vec<u16>> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut statuses = Vec::new();
    for case in PROBES {
        let response = client
            .post(format!("http://{listener}/work"))
            .header("traceparent", case.traceparent)
            .json(&json!({ "order_id": probe_key(case) }))
            .send()
            .await
            .with_context(|| format!("sending the {} probe to Envoy", case.name))?;
        statuses.push(response.status().as_u16());
    }
    Ok(statuses)
}

/// The business key (`order.id`) of a probe's work order.
fn probe_key(case: ProbeCase) -> String {
    format!("mesh-probe-{}", case.name)
}

fn probe_result(
    case: ProbeCase,
    order_id: String,
    status: u16,
    traces: Vec<lineage::TraceView>,
    dump: String,
) -> Probe {
    let spans = || traces.iter().flat_map(|trace| trace.spans.iter().map(move |span| (trace, span)));
    let count = |service: &str| spans().filter(|(_, span)| span.service == service).count();
    let sent_trace = case.traceparent.split('-').nth(1).unwrap_or_default();
    let worker = spans().find(|(_, span)| span.service == "worker" && span.kind.eq_ignore_ascii_case("server"));
    Probe {
        name: case.name.to_owned(),
        traceparent: case.traceparent.to_owned(),
        order_id,
        status,
        envoy_spans: count(ENVOY_SERVICE),
        worker_spans: count("worker"),
        consumer_spans: count("consumer"),
        worker_parent: worker.and_then(|(_, span)| span.parent_span_id.clone()),
        worker_continues_trace: worker.map(|(trace, _)| trace.trace_id == sent_trace),
        dump,
    }
}

/// The hops of one request from the gateway's client span to the worker's
/// server span, or what is wrong with them.
fn hop_chain(traces: &[lineage::TraceView]) -> Result<Vec<String>, String> {
    let traces: Vec<TraceHops> = traces.iter().map(TraceHops::of).collect();
    chain_above(&traces, "worker:server", &["envoy:client", "envoy:server", "gateway:client"])
}

impl Stage for MeshStage {
    fn start(&mut self, _env: &StageEnv) -> anyhow::Result<()> {
        self.binary = Some(install_envoy()?);
        Ok(())
    }

    fn worker_url(&mut self, worker: SocketAddr, env: &StageEnv) -> anyhow::Result<Option<String>> {
        let binary = self.binary.clone().context("the mesh stage was not started")?;
        let ports = EnvoyPorts {
            admin: free_port()?,
            listen: free_port()?,
            worker: worker.port(),
            lineage_otlp: loopback_port(&env.lineage_otlp)?,
        };
        let starting = spinner(format!("starting Envoy {ENVOY_VERSION} in front of the worker"));
        let envoy = Envoy::start_with(&binary, ports, &env.logs.join("envoy"), self.shape);
        starting.finish_and_clear();
        let envoy = envoy?;
        let listener = envoy.listener();
        self.envoy = Some(envoy);
        // A failed probe is a finding, not a reason to skip the step's run.
        if let Err(err) = self.probe(env, listener) {
            self.probe_error = Some(format!("{err:#}"));
        }
        self.check_alive()?;
        Ok(Some(format!("http://{listener}")))
    }

    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> anyhow::Result<Evidence> {
        let lineage = env.lineage;
        let (mut assertions, mut notes) = (Vec::new(), Vec::new());
        let envoy = self.envoy.as_ref().context("Envoy is not running")?;

        // Every request: gateway:client → envoy:server → envoy:client → worker:server.
        let mut chained = 0;
        let mut broken = Vec::new();
        for order in orders {
            match hop_chain(&lineage.request_traces(&order.order_id)) {
                Ok(_) => chained += 1,
                Err(problem) => broken.push(format!("{}: {problem}", order.order_id)),
            }
        }
        let chain = "gateway:client → envoy:server → envoy:client → worker:server";
        assertions.push(Assertion::new(
            format!("every request is {chain}, one trace, parent by parent"),
            format!("{chained} of {} requests", orders.len()),
            !orders.is_empty() && broken.is_empty(),
        ));
        notes.extend(broken.iter().take(3).map(|problem| format!("not chained: {problem}")));

        let report = lineage.report();
        let (spans, orphans) = report.service(ENVOY_SERVICE).map_or((0, 0), |row| (row.spans, row.orphans));
        let rate = orphans as f64 / spans.max(1) as f64;
        assertions.push(Assertion::new(
            "Envoy's spans reach lineage, connected (orphan rate < 1%)",
            format!("{spans} spans, {orphans} orphans ({:.1}%)", rate * 100.0),
            spans > 0 && rate < 0.01,
        ));
        let (sent, dropped) =
            (envoy.counter("tracing.opentelemetry.spans_sent"), envoy.counter("tracing.opentelemetry.spans_dropped"));
        let counter = |value: Option<u64>| value.map_or_else(|| "?".to_owned(), |value| value.to_string());
        notes.push(format!(
            "Envoy {ENVOY_VERSION} on 127.0.0.1:{} in front of the worker; its own counters: {} spans sent, {} dropped \
             (probes included)",
            envoy.ports.listen,
            counter(sent),
            counter(dropped)
        ));

        // The probes: judged here, kept out of the numbers above.
        if let Some(error) = &self.probe_error {
            assertions.push(Assertion::new("the probes straight to Envoy ran", error.clone(), false));
        }
        let leaked: usize = PROBES.iter().map(|case| lineage.request_traces(&probe_key(*case)).len()).sum();
        assertions.push(Assertion::new(
            "the probes' spans stay out of the judged numbers",
            format!("{leaked} probe traces among them"),
            leaked == 0,
        ));
        for probe in &self.probes {
            let parent = match (&probe.worker_parent, probe.worker_spans) {
                (_, 0) => "no span",
                (Some(parent), _) => parent.as_str(),
                (None, _) => "none, a new root",
            };
            let (claim, passed) = match probe.name.as_str() {
                "malformed" => (
                    "a malformed traceparent: Envoy forwards it and emits no span; the worker starts a new trace",
                    probe.envoy_spans == 0
                        && probe.worker_parent.is_none()
                        && probe.worker_continues_trace == Some(false),
                ),
                _ => (
                    "an unsampled traceparent (flags 00): neither Envoy nor the worker records a span",
                    probe.envoy_spans == 0 && probe.worker_spans == 0,
                ),
            };
            assertions.push(Assertion::new(
                claim,
                format!(
                    "HTTP {}; spans: envoy {}, worker {}, consumer {}; worker's parent: {parent}",
                    probe.status, probe.envoy_spans, probe.worker_spans, probe.consumer_spans
                ),
                passed && (200..300).contains(&probe.status),
            ));
            notes.push(format!("{} probe, `traceparent: {}`", probe.name, probe.traceparent));
            if !probe.dump.trim().is_empty() {
                notes.push(probe.dump.trim_end().to_owned());
            }
        }

        let data = MeshData {
            envoy_version: ENVOY_VERSION.to_owned(),
            chained_requests: chained,
            requests: orders.len(),
            not_chained: broken,
            envoy_spans: spans,
            envoy_orphans: orphans,
            envoy_spans_sent: sent,
            envoy_spans_dropped: dropped,
            probes: self.probes.clone(),
            sample_dump: orders.first().and_then(|order| lineage.request_dump(&order.order_id)),
        };
        Ok(Evidence { assertions, notes, data: StageData::Mesh(data) })
    }

    fn check_alive(&self) -> anyhow::Result<()> {
        match &self.envoy {
            Some(envoy) => envoy.check_alive(),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        if let Some(envoy) = self.envoy.take() {
            envoy.stop();
        }
    }
}
