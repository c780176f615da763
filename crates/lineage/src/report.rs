//! The JSON report served at `GET /api/report` and returned by `Lineage::report`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Boundary, Cause};

/// Counters over settled traces, plus what is held right now.
///
/// Counters are monotonic between resets. Spans still in open traces are in
/// `spans_received` but not yet in `spans_settled` nor in any service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub entry_services: Vec<String>,
    pub business_key: String,
    /// Spans accepted and stored (first copies only; duplicates and rejected spans excluded).
    pub spans_received: u64,
    /// Spans classified and counted (settled traces, late spans included).
    pub spans_settled: u64,
    /// Traces settled so far (including force-settled ones).
    pub traces_settled: u64,
    /// Traces held and not settled yet.
    pub traces_open: u64,
    /// Root spans of entry services in settled traces.
    pub requests: u64,
    /// One entry per service with settled spans, sorted by service name.
    pub services: Vec<ServiceReport>,
    /// Always http, async, messaging, in that order.
    pub boundaries: Vec<BoundaryReport>,
    /// Orphan fragments with neither a request in their own trace nor a
    /// business key, by boundary of their break span.
    pub unattributed_breaks: BoundaryCounts,
    /// Breaks whose request is not held: orphan fragments with a business
    /// key but no request in their trace nor under their key (the entry root
    /// was lost, sampled away or evicted), each (key, boundary) once. A
    /// request that arrives while the fragment is still held moves the pair
    /// to `boundaries[].breaks`.
    #[serde(default)]
    pub request_root_missing: BoundaryCounts,
    pub completeness: CompletenessReport,
    pub late_spans: u64,
    pub duplicate_spans: u64,
    pub evictions: Evictions,
    /// Payloads refused as a whole, by reason (`too-large`, `malformed`,
    /// `unsupported-content-type`, `unsupported-encoding`).
    pub rejected: BTreeMap<String, u64>,
    /// Spans refused one by one, by reason (`invalid-id`).
    pub rejected_spans: BTreeMap<String, u64>,
    pub held: Held,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    pub service: String,
    pub spans: u64,
    pub connected: u64,
    pub linked: u64,
    pub orphans: u64,
    /// `orphans / spans`, rounded to 6 decimals.
    pub orphan_rate: f64,
    /// Orphan spans of this service by cause of their break span.
    pub causes: CauseCounts,
    /// Orphan spans of this service by boundary of their break span.
    pub boundaries: BoundaryCounts,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseCounts {
    #[serde(rename = "root-in-internal-service")]
    pub root_in_internal_service: u64,
    #[serde(rename = "missing-parent")]
    pub missing_parent: u64,
}

impl CauseCounts {
    pub fn get(&self, cause: Cause) -> u64 {
        match cause {
            Cause::RootInInternalService => self.root_in_internal_service,
            Cause::MissingParent => self.missing_parent,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryCounts {
    pub http: u64,
    #[serde(rename = "async")]
    pub async_: u64,
    pub messaging: u64,
}

impl BoundaryCounts {
    pub fn get(&self, boundary: Boundary) -> u64 {
        match boundary {
            Boundary::Http => self.http,
            Boundary::Async => self.async_,
            Boundary::Messaging => self.messaging,
        }
    }

    pub(crate) fn from_array(counts: [u64; 3]) -> BoundaryCounts {
        BoundaryCounts { http: counts[0], async_: counts[1], messaging: counts[2] }
    }

    pub fn total(&self) -> u64 {
        self.http + self.async_ + self.messaging
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundaryReport {
    pub boundary: Boundary,
    /// Requests whose lineage breaks at this boundary (each business key once).
    pub breaks: u64,
    /// All requests (same as `Report::requests`).
    pub requests: u64,
    /// `breaks / requests`, capped at 1, rounded to 6 decimals.
    pub break_rate: f64,
}

/// Completeness latency of requests; percentiles come from a log-scale
/// histogram with about 1 % relative error, `max_ms` is exact; all rounded
/// to the microsecond.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletenessReport {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evictions {
    pub settled: u64,
    /// Open traces force-settled (and counted) to make room, then evicted.
    pub unsettled: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub traces: u64,
    pub spans: u64,
}

impl Report {
    pub fn service(&self, name: &str) -> Option<&ServiceReport> {
        self.services.iter().find(|s| s.service == name)
    }

    pub fn boundary(&self, boundary: Boundary) -> &BoundaryReport {
        &self.boundaries[boundary.index()]
    }

    /// Orphan spans over all services.
    pub fn orphans(&self) -> u64 {
        self.services.iter().map(|s| s.orphans).sum()
    }

    /// Linked spans over all services.
    pub fn linked(&self) -> u64 {
        self.services.iter().map(|s| s.linked).sum()
    }

    /// Orphan spans / settled spans over all services.
    pub fn orphan_rate(&self) -> f64 {
        if self.spans_settled == 0 { 0.0 } else { self.orphans() as f64 / self.spans_settled as f64 }
    }
}

/// `part / whole`, capped at 1, rounded to 6 decimals so that it survives a
/// JSON round trip unchanged.
pub(crate) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    ((part as f64 / whole as f64).min(1.0) * 1e6).round() / 1e6
}

/// Milliseconds rounded to the microsecond, for the same reason.
pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}
