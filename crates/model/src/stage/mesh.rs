//! What step 6's mesh stage measured: the Envoy hop in each request's chain.
use serde::{Deserialize, Serialize};

/// What lineage saw of one probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
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
    pub dump: String,
}

/// What step 6's stage measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshData {
    pub envoy_version: String,
    /// Requests whose hops are gateway:client → envoy:server → envoy:client → worker:server.
    pub chained_requests: usize,
    pub requests: usize,
    pub not_chained: Vec<String>,
    pub envoy_spans: u64,
    pub envoy_orphans: u64,
    /// Envoy's own counters; `None` when its admin API did not list them.
    pub envoy_spans_sent: Option<u64>,
    pub envoy_spans_dropped: Option<u64>,
    pub probes: Vec<Probe>,
    /// The first request as lineage prints it.
    pub sample_dump: Option<String>,
}
