//! One run of the flow: the requests the gateway accepted, lineage's report,
//! each request's shape, what the services' SDKs did with their spans, and
//! what the step's stage measured.

use serde::{Deserialize, Serialize};

use crate::hop::Hop;
use crate::stage::StageData;
pub use stitch_telemetry::ExportCounts;

/// How one request looks in lineage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestShape {
    pub order_id: String,
    /// Trace fragments carrying the request's business key: 1 when stitched.
    pub traces: usize,
    pub spans: usize,
    /// `service:kind` from the root down, when the request is one trace whose
    /// spans form a single parent chain.
    pub chain: Option<Vec<String>>,
    /// Every span of every fragment carrying the request's key, in lineage's
    /// order: what the flow steps' judge reads the boundaries from.
    #[serde(default)]
    pub tree: Vec<RequestSpan>,
}

/// One span of a request, as the judges read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub hop: Hop,
    pub name: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Links to other spans.
    pub links: usize,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRun {
    pub step: String,
    /// Whether the crate that ran is the step's solution (for the screen).
    pub solution: bool,
    /// The binary that ran the flow.
    #[serde(default)]
    pub package: String,
    pub kafka: String,
    pub requests_sent: usize,
    pub requests_failed: usize,
    pub orders: Vec<Order>,
    pub shapes: Vec<RequestShape>,
    pub report: lineage::Report,
    /// The first accepted request's span dump, as lineage prints it; `None`
    /// when lineage holds no span of it (the request left no trace there).
    pub sample_dump: Option<String>,
    /// The same request as lineage's HTML page (a waterfall per fragment);
    /// `None` likewise, or when the run has no lineage page (a trap).
    pub sample_page: Option<String>,
    /// Seconds from the first request to the final report.
    pub elapsed_seconds: f64,
    /// What the step's stage measured, when it has one; its judge
    /// (`stitch_judge::stage`) makes the claims from it.
    #[serde(default)]
    pub evidence: Option<StageData>,
    /// What each service's SDK did with its spans, read once the spans
    /// settled: a span dropped before export never reaches lineage.
    #[serde(default)]
    pub sdk_export: Vec<ServiceExport>,
    /// What each service logged at WARN and ERROR during the run.
    #[serde(default)]
    pub service_logs: Vec<ServiceLog>,
    /// The newest messages of the orders topic, read after the run.
    #[serde(default)]
    pub messages: Option<MessageSample>,
    /// Whether each side of a boundary continues a context it is handed,
    /// tried after the run's measurement (steps 0–3 only).
    #[serde(default)]
    pub probes: Option<Probes>,
}

/// A service's warnings and errors, each distinct line once with its count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLog {
    pub role: stitch_flow::Role,
    /// The whole log, for whoever wants more.
    pub path: std::path::PathBuf,
    pub lines: Vec<LogLine>,
}

/// One distinct WARN or ERROR line (its timestamp left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `WARN` or `ERROR`.
    pub level: String,
    pub text: String,
    pub count: u64,
}

/// The newest messages of the orders topic, and whether they carry context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSample {
    pub read: usize,
    pub with_traceparent: usize,
    /// One `traceparent` value as a message carried it.
    pub example: Option<String>,
}

/// Each side of the boundaries that have two, handed a context of the
/// check's own after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probes {
    /// A `POST /work` sent straight to the worker with a `traceparent`.
    pub worker: ProbeOutcome,
    /// A message produced straight to the orders topic with a `traceparent`.
    pub consumer: ProbeOutcome,
}

/// What became of a context handed to one side of a boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeOutcome {
    /// Its span is a child of the context it was handed.
    Continued,
    /// Its span started a trace of its own.
    Ignored,
    /// No span of it reached lineage in time.
    NotSeen,
}

/// One request the gateway accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub trace_id: String,
}

/// One service's counters, by role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceExport {
    pub role: stitch_flow::Role,
    #[serde(flatten)]
    pub counts: ExportCounts,
}
