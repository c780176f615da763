//! What step 4's tail-sampling tier kept, and what the broken flow looked like after it.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What step 4's tier measured: what it kept of the fixed flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierData {
    pub decision_wait_ms: u64,
    pub num_traces: u64,
    /// Traces of the baseline traffic under the slow threshold, and how many
    /// of them are in Jaeger.
    pub baseline_total: usize,
    pub baseline_kept: usize,
    /// Baseline traces over the slow threshold (the `slow` policy's to keep).
    pub slow_baseline: usize,
    pub slow_baseline_kept: usize,
    /// The binomial tolerance `baseline_kept` must fall in.
    pub baseline_tolerance: (usize, usize),
    /// Requests in Jaeger, and how many of them whole.
    pub kept_total: usize,
    pub kept_whole: usize,
    pub dropped_too_early: u64,
    pub routing: Vec<RoutingRow>,
}

/// What the broken flow looked like after the same tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CannotRepairData {
    pub requests: usize,
    pub requests_whole_in_backend: usize,
    pub requests_with_a_kept_fragment: usize,
    pub fragments_kept: usize,
    /// Kept fragments with at least one span of the service.
    pub fragments_kept_by_service: BTreeMap<String, usize>,
    pub error_request_fragments_kept: usize,
    pub routing: Vec<RoutingRow>,
}

/// Per tier-2 collector: what it received and kept, from its metrics and file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutingRow {
    pub collector: String,
    pub traces_received: f64,
    pub traces_kept: usize,
    pub spans_kept: usize,
    pub rss_bytes: f64,
}

/// One span of OTLP JSON (Jaeger's API, the file exporter), as far as the
/// checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub order_id: Option<String>,
    pub error: bool,
}
