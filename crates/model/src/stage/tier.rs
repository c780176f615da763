//! What step 4's tail-sampling tier kept, and what the broken flow looked like after it.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What step 4's tier measured: what it kept of the fixed flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierData {
    pub decision_wait_ms: u64,
    pub num_traces: u64,
    /// Tier 2's policies, `name (type)`, in the order they are configured.
    pub policies: Vec<String>,
    /// The `slow` policy's threshold, as the check sets it.
    pub slow_threshold_ms: u64,
    /// The threshold the tier's `slow` policy runs with, read from its
    /// settings with the check's variables; `None` when no latency policy is
    /// named `slow`.
    pub slow_policy_threshold_ms: Option<u64>,
    /// Whether that threshold is `${env:STITCH_SLOW_MS}`: read with another
    /// value of the variable, it follows. A number that happens to equal
    /// the check's does not.
    pub slow_policy_threshold_from_variable: bool,
    /// Spans one request makes in the flow that ran: a whole request in Jaeger has this many.
    pub spans_per_request: usize,
    /// The injected failed request, for the `errors` policy.
    pub error: InjectedTrace,
    /// The injected slow request, for the `slow` policy.
    pub slow: InjectedTrace,
    /// Traces of the baseline traffic under the slow threshold, and how many
    /// of them are in Jaeger.
    pub baseline_total: usize,
    pub baseline_kept: usize,
    /// Baseline traces over the slow threshold (the `slow` policy's to keep).
    pub slow_baseline: usize,
    pub slow_baseline_kept: usize,
    /// Requests in Jaeger, and how many of them whole.
    pub kept_total: usize,
    pub kept_whole: usize,
    /// Kept traces whose spans more than one tier-2 collector exported, and
    /// traces in Jaeger that no collector's file of kept spans holds.
    pub kept_by_several_collectors: usize,
    pub kept_in_no_collector_file: usize,
    pub dropped_too_early: u64,
    /// From the first span of the run's requests to reach lineage to the
    /// last: the seconds of traffic that size `num_traces`.
    pub arrival_seconds: f64,
    pub routing: Vec<RoutingRow>,
    /// Tier 1's load-balancing exporter, per tier-2 collector.
    pub tier1_exports: Vec<BackendExports>,
}

/// One request the check injects for a policy to keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InjectedTrace {
    /// The spans Jaeger holds under the trace id the gateway answered.
    pub spans_in_jaeger: usize,
    /// Of them, the spans that carry that trace id.
    pub spans_with_its_trace_id: usize,
    /// Traces the policy meant for it kept, by its own counter, over tier 2.
    pub kept_by_policy: u64,
}

/// Tier 1's exports to one tier-2 collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendExports {
    /// The collector's name, or its endpoint when no tier-2 collector listens there.
    pub backend: String,
    pub ok: f64,
    pub failed: f64,
}

/// What the broken flow looked like after the same tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CannotRepairData {
    pub requests: usize,
    pub requests_whole_in_backend: usize,
    pub requests_with_a_kept_fragment: usize,
    pub fragments_kept: usize,
    /// Kept fragments Jaeger holds.
    pub fragments_in_jaeger: usize,
    /// Kept fragments with at least one span of the service.
    pub fragments_kept_by_service: BTreeMap<String, usize>,
    /// The injected failed request: its fragments the tier kept, whether its
    /// failed span is among them, and whether Jaeger holds it whole.
    pub error_request_fragments_kept: usize,
    pub error_span_kept: bool,
    pub error_request_whole: bool,
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
