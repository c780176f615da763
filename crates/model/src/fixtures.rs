//! Hand-made runs for the judges' unit tests: a step read from `step.toml`
//! text and a [`CheckRun`] with the numbers a test needs, no processes; in
//! [`stages`], what each stage measures on a passing run.

pub mod stages;

use lineage::{Boundary, BoundaryCounts, BoundaryReport, CauseCounts, Report, ServiceReport};

pub use crate::chain::EXPECTED_CHAIN;
use crate::run::{CheckRun, Order, RequestShape, RequestSpan};
use crate::step::{Step, StepMeta};

/// Step 1 as its `step.toml` says: the HTTP hop, gateway under 1%, http
/// breaks under 1%.
pub const STEP_1: &str = r#"
title = "The HTTP hop"
chapter = "book/src/step-01-http.md"
teaches = ["http"]
lesson = ["src/http.rs"]

[targets]
services = { gateway = 0.01 }
boundaries = { http = 0.01 }

[unsolved]
spans_per_request = 5
min_break_rate = { http = 0.95 }

[solved]
spans_per_request = 6
"#;

pub fn step(number: u8, toml_text: &str) -> Step {
    let meta: StepMeta = toml::from_str(toml_text).expect("a valid step.toml");
    Step { number, name: format!("step-{number:02}-test"), meta }
}

/// One service's row: `spans` spans, `orphans` of them breaking at `boundary`.
pub fn service(name: &str, spans: u64, orphans: u64, boundary: Boundary) -> ServiceReport {
    let mut boundaries = BoundaryCounts::default();
    match boundary {
        Boundary::Http => boundaries.http = orphans,
        Boundary::Async => boundaries.async_ = orphans,
        Boundary::Messaging => boundaries.messaging = orphans,
    }
    ServiceReport {
        service: name.to_owned(),
        spans,
        connected: spans - orphans,
        linked: 0,
        orphans,
        orphan_rate: orphans as f64 / spans as f64,
        causes: CauseCounts { root_in_internal_service: orphans, missing_parent: 0 },
        boundaries,
    }
}

/// One request's spans as a single parent chain, `chain` from the root
/// down: span `i` (id `s{i}`) is the child of span `i - 1`, starts `i` ms in
/// and ends 1 ms later, so that each request's own span has ended when the
/// work after it ends.
pub fn tree(trace_id: &str, chain: &[&str]) -> Vec<RequestSpan> {
    const MS: u64 = 1_000_000;
    chain
        .iter()
        .enumerate()
        .map(|(index, hop)| RequestSpan {
            trace_id: trace_id.to_owned(),
            span_id: format!("s{index}"),
            parent_span_id: index.checked_sub(1).map(|parent| format!("s{parent}")),
            hop: hop.parse().expect("a `service:kind` hop"),
            name: (*hop).to_owned(),
            start_unix_nanos: index as u64 * MS,
            end_unix_nanos: (index as u64 + 1) * MS,
            links: 0,
        })
        .collect()
}

/// A run of `requests` accepted requests, every one `chain` long (one trace
/// each), with these service rows and per-boundary break counts.
pub fn run(requests: u64, services: Vec<ServiceReport>, breaks: [u64; 3], chain: &[&str]) -> CheckRun {
    let orders: Vec<Order> = (0..requests)
        .map(|index| Order { order_id: format!("ord-{index}"), trace_id: format!("{index:032x}") })
        .collect();
    let shapes = orders
        .iter()
        .map(|order| RequestShape {
            order_id: order.order_id.clone(),
            traces: 1,
            spans: chain.len(),
            chain: Some(chain.iter().map(|hop| (*hop).to_owned()).collect()),
            tree: tree(&order.trace_id, chain),
        })
        .collect();
    let spans: u64 = services.iter().map(|service| service.spans).sum();
    let report = Report {
        entry_services: vec!["gateway".to_owned()],
        // lineage's own default: the key the flow records (a runner test ties the two).
        business_key: lineage::Config::default().business_key,
        spans_received: spans,
        spans_settled: spans,
        traces_settled: requests,
        traces_open: 0,
        requests,
        services,
        boundaries: Boundary::ALL
            .iter()
            .zip(breaks)
            .map(|(&boundary, breaks)| BoundaryReport {
                boundary,
                breaks,
                requests,
                break_rate: breaks as f64 / requests as f64,
            })
            .collect(),
        unattributed_breaks: BoundaryCounts::default(),
        request_root_missing: BoundaryCounts::default(),
        completeness: Default::default(),
        late_spans: 0,
        duplicate_spans: 0,
        evictions: Default::default(),
        rejected: Default::default(),
        rejected_spans: Default::default(),
        held: Default::default(),
    };
    CheckRun {
        step: "step-1".to_owned(),
        solution: true,
        package: "step-01-http-solution".to_owned(),
        kafka: "tansu".to_owned(),
        requests_sent: requests as usize,
        requests_failed: 0,
        orders,
        shapes,
        report,
        sample_dump: None,
        sample_page: None,
        elapsed_seconds: 1.0,
        evidence: None,
        sdk_export: Vec::new(),
        service_logs: Vec::new(),
        messages: None,
        probes: None,
    }
}
