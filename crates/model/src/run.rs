//! One run of the flow: the requests the gateway accepted, lineage's report,
//! each request's shape, what the services' SDKs did with their spans, and
//! what the step's stage measured.

use serde::{Deserialize, Serialize};

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
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRun {
    pub step: String,
    pub solution: bool,
    pub kafka: String,
    pub requests_sent: usize,
    pub requests_failed: usize,
    pub orders: Vec<Order>,
    pub shapes: Vec<RequestShape>,
    pub report: lineage::Report,
    /// One request's span dump, as lineage prints it.
    pub sample_dump: String,
    /// The same request as lineage's HTML page (a waterfall per fragment).
    pub sample_page: String,
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
    pub role: String,
    #[serde(flatten)]
    pub counts: ExportCounts,
}
