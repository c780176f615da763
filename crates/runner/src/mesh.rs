//! Step 6's stage: Envoy (see [`crate::envoy`]) as a sidecar in front of the
//! worker (gateway → Envoy → worker), configured by the step's lesson, the
//! crate's `envoy.yaml`: once solved, tracing with OpenTelemetry and
//! exporting straight to lineage. Probes sent straight to Envoy show what it
//! does with a context it cannot use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::envoy::{
    CONFIG_FILE, ENVOY_SERVICE, ENVOY_VERSION, Envoy, EnvoyPorts, SpanShape, install_envoy, loopback_port,
};
use crate::process::{free_port, poll_until_quiet, spinner};
use stitch_judge::chain::{TraceHops, chain_above};
use stitch_model::stage::mesh::{MeshData, Probe, ProbeKind, WorkerParents};
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
    /// The configuration Envoy starts from: the crate's `envoy.yaml`.
    config: PathBuf,
    shape: SpanShape,
    binary: Option<PathBuf>,
    envoy: Option<Envoy>,
    probes: Vec<Probe>,
    probe_error: Option<String>,
}

impl MeshStage {
    /// Envoy as the `envoy.yaml` of the crate in `crate_dir` configures it.
    pub fn new(crate_dir: &Path) -> anyhow::Result<MeshStage> {
        MeshStage::with_shape(crate_dir, SpanShape::FromTheFile)
    }

    /// Envoy recording `shape`'s spans per request (the chapter measures both).
    pub fn with_shape(crate_dir: &Path, shape: SpanShape) -> anyhow::Result<MeshStage> {
        let config = crate_dir.join(CONFIG_FILE);
        if !config.is_file() {
            bail!("{} is missing: Envoy starts from the step's {CONFIG_FILE}", config.display());
        }
        Ok(MeshStage { config, shape, binary: None, envoy: None, probes: Vec::new(), probe_error: None })
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
fn hop_chain(traces: &[TraceHops]) -> Result<Vec<String>, String> {
    chain_above(traces, "worker:server", &["envoy:client", "envoy:server", "gateway:client"])
}

/// Counts, in `parents`, what the worker's server span of one request hangs from.
fn count_worker_parent(traces: &[TraceHops], parents: &mut WorkerParents) {
    let mut servers = traces
        .iter()
        .flat_map(|trace| trace.hops.iter().filter(|hop| hop.hop == "worker:server").map(move |hop| (trace, hop)));
    let (Some((trace, server)), None) = (servers.next(), servers.next()) else {
        parents.other += 1;
        return;
    };
    let Some(parent_id) = server.parent_span_id.as_deref() else {
        parents.root += 1;
        return;
    };
    match trace.hops.iter().find(|hop| hop.span_id == parent_id).map(|hop| hop.hop.as_str()) {
        None => parents.not_received += 1,
        Some("envoy:client") => parents.envoy_client += 1,
        Some("envoy:server") => parents.envoy_server += 1,
        Some("gateway:client") => parents.gateway_client += 1,
        Some(_) => parents.other += 1,
    }
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
        let envoy = Envoy::start_with(&binary, &self.config, ports, &env.logs.join("envoy"), self.shape);
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
        let mut worker_parents = WorkerParents::default();
        for order in orders {
            let traces: Vec<TraceHops> = lineage.request_traces(&order.order_id).iter().map(TraceHops::of).collect();
            count_worker_parent(&traces, &mut worker_parents);
            match hop_chain(&traces) {
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
            worker_parents,
            envoy_spans: spans,
            envoy_orphans: orphans,
            envoy_spans_sent: envoy.listed_counter("tracing.opentelemetry.spans_sent")?,
            envoy_spans_dropped: envoy.listed_counter("tracing.opentelemetry.spans_dropped")?,
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Step 6's files as data, so that comments and layout do not count.
    fn read(path: &std::path::Path) -> Value {
        let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
        serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("parsing {}: {err}", path.display()))
    }

    const CONNECTION_MANAGER: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";

    fn remove(config: &mut Value, parent: &str, key: &str) {
        let parent = config.pointer_mut(parent).and_then(Value::as_object_mut).expect("the parent is an object");
        assert!(parent.remove(key).is_some(), "no {key} to remove");
    }

    fn without_the_exporters_cluster(config: &mut Value) {
        let clusters = config.pointer_mut("/static_resources/clusters").and_then(Value::as_array_mut).unwrap();
        let before = clusters.len();
        clusters.retain(|cluster| cluster["name"] != "lineage_otlp");
        assert_eq!(clusters.len(), before - 1, "the solution has one cluster lineage_otlp");
    }

    /// The shipped lesson and each named wrong fix are the solution with
    /// only their own part changed: the files that must exist side by side
    /// cannot drift apart.
    #[test]
    fn the_lesson_and_each_wrong_fix_differ_from_the_solution_only_where_they_should() {
        let root = crate::project_root();
        let solution = read(&root.join("solutions/step-06-mesh/envoy.yaml"));
        let mistakes = root.join("solutions/step-06-mesh/mistakes");

        let mut lesson = solution.clone();
        remove(&mut lesson, CONNECTION_MANAGER, "tracing");
        without_the_exporters_cluster(&mut lesson);
        assert_eq!(read(&root.join("steps/step-06-mesh/envoy.yaml")), lesson, "the shipped lesson");

        let mut no_tracing = solution.clone();
        remove(&mut no_tracing, CONNECTION_MANAGER, "tracing");
        assert_eq!(read(&mistakes.join("no-tracing/envoy.yaml")), no_tracing, "no-tracing");

        let mut without_http2 = solution.clone();
        remove(&mut without_http2, "/static_resources/clusters/1", "typed_extension_protocol_options");
        assert_eq!(read(&mistakes.join("otlp-without-http2/envoy.yaml")), without_http2, "otlp-without-http2");

        let mut one_span = solution.clone();
        let spawn = one_span.pointer_mut(&format!("{CONNECTION_MANAGER}/tracing/spawn_upstream_span")).unwrap();
        assert_eq!(*spawn, Value::Bool(true));
        *spawn = Value::Bool(false);
        assert_eq!(read(&mistakes.join("one-span/envoy.yaml")), one_span, "one-span");

        let named: Vec<String> = std::fs::read_dir(&mistakes)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(named.len(), 3, "a wrong fix this test does not know: {named:?}");
    }
}
