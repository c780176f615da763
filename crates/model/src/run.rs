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
    /// What the step's stage measured, when it has one.
    #[serde(default)]
    pub evidence: Option<Evidence>,
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

/// What a stage measured beyond lineage's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// What the stage asserts; a failed one fails the run.
    pub assertions: Vec<Assertion>,
    /// Lines worth printing in the report (a config value, a routing summary).
    pub notes: Vec<String>,
    /// Everything measured, for `--json` and the book's generated tables.
    pub data: StageData,
}

impl Evidence {
    /// Whether every claim held.
    pub fn passed(&self) -> bool {
        self.assertions.iter().all(|assertion| assertion.passed)
    }
}

/// One measured claim of a stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assertion {
    pub claim: String,
    pub measured: String,
    pub passed: bool,
}

impl Assertion {
    pub fn new(claim: impl Into<String>, measured: impl Into<String>, passed: bool) -> Assertion {
        Assertion { claim: claim.into(), measured: measured.into(), passed }
    }
}

/// One service's counters, by role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceExport {
    pub role: String,
    #[serde(flatten)]
    pub counts: ExportCounts,
}
