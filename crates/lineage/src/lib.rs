//! Receives every span over OTLP, rebuilds traces and measures the
//! **orphan-span rate**, which OpenTelemetry itself does not compute.
//!
//! # Ports and routes
//!
//! - OTLP/gRPC on [`Config::grpc_addr`] (default `127.0.0.1:4317`),
//!   gzip accepted.
//! - One HTTP server on [`Config::http_addr`] (default `127.0.0.1:4318`)
//!   serves OTLP/HTTP *and* everything else, so a single port is scraped,
//!   browsed and exported to:
//!   - `POST /v1/traces`: OTLP/HTTP, `application/x-protobuf` or
//!     `application/json`, optionally `Content-Encoding: gzip`. Refusals:
//!     400 malformed, 413 too large, 415 unsupported content type or
//!     encoding, with the reason as plain text. A browser page may export
//!     only from an origin in [`Config::cors_origins`]: its preflight
//!     (`OPTIONS /v1/traces`) is answered, any other origin gets 403.
//!   - `GET /metrics`: Prometheus text exposition.
//!   - `GET /api/report`: [`Report`] as JSON.
//!   - `GET /api/traces/{trace_id}` ([`TraceView`]), `GET /api/traces/{trace_id}/dump` (text).
//!   - `GET /api/requests/{key}` ([`RequestView`]), `GET /api/requests/{key}/dump` (text);
//!     also `GET /api/requests?key=…[&format=dump]`, for keys such as `..`.
//!   - `POST /api/settle` (settle everything open), `POST /api/reset`: only
//!     from a loopback peer, not through a proxy, never from a web page
//!     (403 with the reason), unless [`Config::allow_remote_reset`] lifts
//!     the loopback rule.
//!   - `GET /` (index), `GET /traces/{trace_id}`, `GET /requests/{key}`
//!     (or `?key=…`): HTML waterfalls, escaped by their templates, with the
//!     style sheet `GET /lineage.css` and no script. Every response carries
//!     a `Content-Security-Policy` that allows no script and no framing, and
//!     `X-Content-Type-Options: nosniff`.
//!   - `GET /healthz`.
//!
//! Port `0` picks an ephemeral port; [`Lineage::grpc_addr`] and
//! [`Lineage::http_addr`] tell which.
//!
//! # Using it in-process
//!
//! [`Lineage::start`] runs the servers on the current tokio runtime;
//! [`Store`] is the synchronous core without servers (tests, benches).
//! Both receivers read OTLP protobuf in place, only the fields lineage keeps
//! ([`Store::ingest_protobuf`]); JSON is decoded whole ([`Store::ingest`]).
//!
//! # Scale-out
//!
//! Several instances behind the collector's `loadbalancing` exporter with
//! `routing_key: traceID` each see whole traces, so per-instance counters
//! add up: spans, connected/linked/orphan spans per service, cause and
//! boundary, requests, late and duplicate spans, and breaks found by trace id
//! (a fragment in its request's trace). A break found only by business key
//! needs the request and the fragment on one instance: when they land on
//! different instances the fragment's instance counts it in
//! `request_root_missing` (`lineage_request_root_missing`) instead of
//! `boundaries[].breaks`, so `breaks + request_root_missing` summed across
//! instances still counts every break (a key broken at one boundary in
//! several traces may count once per instance).
//!
//! Memory is bounded by [`Config::max_traces`] and [`Config::max_spans`]:
//! settled traces are evicted oldest first, then open ones (force-settled and
//! counted first). Bounded too: the business-key index (it only refers to
//! held traces), 256 distinct keys per trace, 10 000 service names and
//! 100 000 span names (further names share one overflow name).
//!
//! # The metric
//!
#![doc = include_str!("metric.md")]

mod classify;
mod control;
mod duration;
mod grpc;
mod histogram;
mod html;
mod ingest;
mod links;
mod metrics;
mod model;
mod report;
mod server;
mod store;
mod trace;
mod view;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use duration::parse_duration;
pub use ingest::{
    ContentEncoding, INVALID_ID, IngestOutcome, PayloadError, PayloadFormat, RejectReason, decode_payload,
    decode_request, encode_response, inflate,
};
pub use metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, render as render_metrics};
pub use model::{Boundary, Cause, LineageStatus, SpanId, TraceId, format_span_id, format_trace_id, parse_trace_id};
pub use report::{
    BoundaryCounts, BoundaryReport, CauseCounts, CompletenessReport, Evictions, Held, Report, ServiceReport,
};
pub use server::Lineage;
pub use store::Store;
pub use view::{FragmentView, LinkView, RequestView, SpanView, TraceView, dump_request, dump_trace};

/// The definition of the metric, as in the crate docs and `lineage --help`.
pub const METRIC_DEFINITION: &str = include_str!("metric.md");

pub const DEFAULT_GRPC_PORT: u16 = 4317;
pub const DEFAULT_HTTP_PORT: u16 = 4318;

/// How a [`Lineage`] (or a bare [`Store`]) runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// OTLP/gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// One HTTP server for OTLP/HTTP (`POST /v1/traces`), the JSON API,
    /// `/metrics` and the HTML pages.
    pub http_addr: SocketAddr,
    /// Services whose root spans are requests; a chain reaching one is connected.
    pub entry_services: Vec<String>,
    /// Span attribute holding the business key (string or int).
    pub business_key: String,
    /// A trace settles after this long without a new span...
    pub quiet_period: Duration,
    /// ...or this long after its first span arrived.
    pub max_age: Duration,
    /// Traces held at most; beyond, the oldest are evicted.
    pub max_traces: usize,
    /// Spans held at most; beyond, the oldest traces are evicted.
    pub max_spans: usize,
    /// Largest OTLP payload accepted, compressed or not.
    pub max_payload_bytes: usize,
    /// Browser origins (`http://host:port`) allowed to export to
    /// `POST /v1/traces` across origins; a request whose `Origin` is not
    /// listed is refused. Empty: no page may export.
    pub cors_origins: Vec<String>,
    /// Lets a peer that is not loopback `POST /api/reset` and `/api/settle`
    /// (`--allow-remote-reset`). Off, those answer 403 to anyone but a
    /// client on lineage's own host; a web page is refused either way.
    pub allow_remote_reset: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            grpc_addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_GRPC_PORT),
            http_addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_HTTP_PORT),
            entry_services: vec!["gateway".to_owned()],
            business_key: "order.id".to_owned(),
            quiet_period: Duration::from_secs(2),
            max_age: Duration::from_secs(30),
            max_traces: 50_000,
            max_spans: 500_000,
            max_payload_bytes: 8 << 20,
            cors_origins: Vec::new(),
            allow_remote_reset: false,
        }
    }
}

impl Config {
    /// Defaults with both ports ephemeral (`127.0.0.1:0`), for tests.
    pub fn ephemeral() -> Config {
        Config {
            grpc_addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
            http_addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
            ..Config::default()
        }
    }
}
