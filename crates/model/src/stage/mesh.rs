//! What step 6's mesh stage measured: the Envoy hop in each request's chain.
use serde::{Deserialize, Serialize};

/// The `traceparent` a probe sends straight to Envoy, one the gateway would never send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// The flags field is missing: not a W3C traceparent.
    Malformed,
    /// Valid, with the sampled flag off.
    Unsampled,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Malformed => "malformed",
            ProbeKind::Unsampled => "unsampled",
        }
    }
}

/// What lineage saw of one probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub name: ProbeKind,
    pub traceparent: String,
    pub order_id: String,
    pub status: u16,
    pub envoy_spans: usize,
    pub worker_spans: usize,
    pub consumer_spans: usize,
    /// The worker's server span: its parent and whether it continues the
    /// trace id that was sent.
    pub worker_parent: Option<String>,
    pub worker_continues_trace: Option<bool>,
    /// The probe's spans as lineage prints them; `None` when lineage holds none.
    pub dump: Option<String>,
}

/// Per request, the parent of the worker's server span: where each wrong
/// Envoy configuration shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerParents {
    /// Envoy's CLIENT span: the chain the step expects.
    pub envoy_client: usize,
    /// Envoy's SERVER span: one Envoy span per request.
    pub envoy_server: usize,
    /// The gateway's CLIENT span: Envoy took no part in the trace.
    pub gateway_client: usize,
    /// A span lineage never received (Envoy's, when its export fails).
    pub not_received: usize,
    /// None: the worker's span is a root.
    pub root: usize,
    /// Another span, or not exactly one worker server span.
    pub other: usize,
}

/// What step 6's stage measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshData {
    pub envoy_version: String,
    /// The port Envoy listens on in front of the worker.
    pub envoy_listen_port: u16,
    /// Requests whose hops are gateway:client → envoy:server → envoy:client → worker:server.
    pub chained_requests: usize,
    pub requests: usize,
    pub not_chained: Vec<String>,
    pub worker_parents: WorkerParents,
    /// Envoy's row in lineage's report: 0 spans when lineage received none.
    pub envoy_spans: u64,
    pub envoy_orphans: u64,
    /// Envoy's own counters, read from its admin API; `None` when Envoy
    /// lists none: it has no OpenTelemetry tracer.
    pub envoy_spans_sent: Option<u64>,
    pub envoy_spans_dropped: Option<u64>,
    /// Why the probes could not run, when they could not.
    pub probe_error: Option<String>,
    pub probes: Vec<Probe>,
    /// Probe traces lineage still held when the run's requests were judged.
    pub probe_traces_in_judged: usize,
    /// The first request as lineage prints it.
    pub sample_dump: Option<String>,
}
