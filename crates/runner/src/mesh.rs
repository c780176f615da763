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
use stitch_model::stage::mesh::{MeshData, Probe, ProbeKind};
use stitch_model::{Order, StageData};

use crate::stage::{Stage, StageEnv};

/// A request sent straight to Envoy's listener with a `traceparent` the
/// gateway would never send.
#[derive(Debug, Clone, Copy)]
struct ProbeCase {
    name: ProbeKind,
    traceparent: &'static str,
    /// The trace id it carries.
    trace_id: &'static str,
}

const PROBES: [ProbeCase; 2] = [
    // The flags field is missing: not a W3C traceparent.
    ProbeCase {
        name: ProbeKind::Malformed,
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        trace_id: "0af7651916cd43dd8448eb211c80319c",
    },
    // Valid, with the sampled flag off.
    ProbeCase {
        name: ProbeKind::Unsampled,
        traceparent: "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00",
        trace_id: "0af7651916cd43dd8448eb211c80319d",
    },
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
                let dump = env.lineage.request_dump(&key);
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
            .with_context(|| format!("sending the {} probe to Envoy", case.name.name()))?;
        statuses.push(response.status().as_u16());
    }
    Ok(statuses)
}

/// The business key (`order.id`) of a probe's work order.
fn probe_key(case: ProbeCase) -> String {
    format!("mesh-probe-{}", case.name.name())
}

fn probe_result(
    case: ProbeCase,
    order_id: String,
    status: u16,
    traces: Vec<lineage::TraceView>,
    dump: Option<String>,
) -> Probe {
    let spans = || traces.iter().flat_map(|trace| trace.spans.iter().map(move |span| (trace, span)));
    let count = |service: &str| spans().filter(|(_, span)| span.service == service).count();
    let worker = spans().find(|(_, span)| span.service == "worker" && span.kind.eq_ignore_ascii_case("server"));
    Probe {
        name: case.name,
        traceparent: case.traceparent.to_owned(),
        order_id,
        status,
        envoy_spans: count(ENVOY_SERVICE),
        worker_spans: count("worker"),
        consumer_spans: count("consumer"),
        worker_parent: worker.and_then(|(_, span)| span.parent_span_id.clone()),
        worker_continues_trace: worker.map(|(trace, _)| trace.trace_id == case.trace_id),
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

    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> anyhow::Result<StageData> {
        let lineage = env.lineage;
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
        // No row: lineage received no span from Envoy, which the judge fails.
        let (spans, orphans) = lineage.report().service(ENVOY_SERVICE).map_or((0, 0), |row| (row.spans, row.orphans));
        let data = MeshData {
            envoy_version: ENVOY_VERSION.to_owned(),
            envoy_listen_port: envoy.ports.listen,
            chained_requests: chained,
            requests: orders.len(),
            not_chained: broken,
            envoy_spans: spans,
            envoy_orphans: orphans,
            envoy_spans_sent: envoy.counter("tracing.opentelemetry.spans_sent")?,
            envoy_spans_dropped: envoy.counter("tracing.opentelemetry.spans_dropped")?,
            probe_error: self.probe_error.clone(),
            probes: self.probes.clone(),
            probe_traces_in_judged: PROBES.iter().map(|case| lineage.request_traces(&probe_key(*case)).len()).sum(),
            sample_dump: orders.first().and_then(|order| lineage.request_dump(&order.order_id)),
        };
        Ok(StageData::Mesh(data))
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
