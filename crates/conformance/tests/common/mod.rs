//! One test case end to end: the service in-process on a free port, a capture
//! server standing in for the suite's callbacks, and what that server received.
//!
//! The request to the service is written byte for byte on a TCP stream, so a
//! test controls header-name casing, repeated headers and whitespace exactly
//! as the suite does.

#![allow(dead_code)] // each test file uses its own part of this module

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The ids of the trace every test case offers the service.
pub const TRACE_ID: &str = "12345678901234567890123456789012";
pub const PARENT_ID: &str = "1234567890123456";

/// A valid version-00 traceparent with the given flags.
pub fn traceparent(flags: &str) -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-{flags}")
}

/// What one callback received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Every header as sent, repeated names kept in order.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

/// An outgoing traceparent, checked against the version-00 grammar.
#[derive(Debug)]
pub struct Traceparent {
    pub trace_id: String,
    pub parent_id: String,
    pub flags: u8,
}

impl Received {
    /// The values of every header called `name` (names compared case-insensitively).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str()).collect()
    }

    /// The one traceparent the service sent, which must be well formed.
    pub fn traceparent(&self) -> Traceparent {
        let values = self.values("traceparent");
        assert_eq!(values.len(), 1, "expected one outgoing traceparent, got {values:?}");
        parse_traceparent(values[0])
    }

    /// The tracestate members the service sent, all its tracestate headers
    /// combined (RFC 9110 field order), OWS and empty members dropped.
    pub fn tracestate(&self) -> Vec<(String, String)> {
        self.values("tracestate")
            .join(",")
            .split(',')
            .map(|member| member.trim_matches([' ', '\t']))
            .filter(|member| !member.is_empty())
            .map(|member| match member.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => panic!("outgoing tracestate member {member:?} has no '='"),
            })
            .collect()
    }

    /// The value of tracestate member `key`, if the service sent one.
    pub fn tracestate_value(&self, key: &str) -> Option<String> {
        self.tracestate().into_iter().find(|(member, _)| member == key).map(|(_, value)| value)
    }
}

/// Parses a traceparent the way the spec writes version 00: exactly four
/// fields of 2, 32, 16 and 2 lower-case hex digits, ids not all zero.
pub fn parse_traceparent(value: &str) -> Traceparent {
    let fields: Vec<&str> = value.split('-').collect();
    let lengths: Vec<usize> = fields.iter().map(|field| field.len()).collect();
    assert_eq!(lengths, [2, 32, 16, 2], "outgoing traceparent {value:?} is not version-00 shaped");
    let lower_hex = |field: &str| field.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    assert!(fields.iter().all(|field| lower_hex(field)), "outgoing traceparent {value:?} is not lower-case hex");
    assert_eq!(fields[0], "00", "outgoing traceparent {value:?} is not version 00");
    assert!(fields[1].bytes().any(|b| b != b'0'), "outgoing trace-id is all zero: {value:?}");
    assert!(fields[2].bytes().any(|b| b != b'0'), "outgoing parent-id is all zero: {value:?}");
    let flags = u8::from_str_radix(fields[3], 16).expect("checked as hex above");
    Traceparent { trace_id: fields[1].to_owned(), parent_id: fields[2].to_owned(), flags }
}

/// Installs the service's telemetry once per test binary: the global
/// propagator and subscriber are process-wide. The project's propagator
/// unless `STITCH_CONFORMANCE_PROPAGATOR=sdk` asks for the SDK's alone.
fn telemetry() {
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let propagator = stitch_conformance::telemetry::Propagator::from_env().expect("choosing the propagator");
        stitch_conformance::telemetry::install(propagator).expect("installing the service's telemetry")
    });
}

/// The service, started on a free loopback port for the rest of the test.
pub async fn start_service() -> SocketAddr {
    telemetry();
    let listener = stitch_conformance::listen::bind(0).await.expect("binding the service");
    let address = listener.local_addr().expect("the service's address");
    tokio::spawn(stitch_conformance::service::serve(listener, std::future::pending()));
    address
}

/// A server that records every POST it receives and answers `null`, as the
/// suite's callbacks do.
pub struct Capture {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Capture {
    pub async fn start() -> Capture {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().route("/{id}", post(record)).with_state(received.clone());
        let listener =
            tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("binding the capture server");
        let address = listener.local_addr().expect("the capture server's address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Capture { address, received }
    }

    /// The URL of callback `id`.
    pub fn url(&self, id: &str) -> String {
        format!("http://{}/{id}", self.address)
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("capture lock").clone()
    }
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::Json<serde_json::Value> {
    let headers = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let body = serde_json::from_slice(&body).unwrap_or_else(|err| panic!("a callback body is not JSON: {err}"));
    received.lock().expect("capture lock").push(Received { headers, body });
    axum::Json(serde_json::Value::Null)
}

/// The service's answer to one POST.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// POSTs `body` to the service's `/test` with `headers` written exactly as
/// given (name casing, repeats, whitespace), and reads the whole answer.
pub async fn post_raw(service: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut request = format!(
        "POST /test HTTP/1.1\r\nHost: {service}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let mut stream = tokio::net::TcpStream::connect(service).await.expect("connecting to the service");
    stream.write_all(&request).await.expect("sending the test case");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("reading the service's answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    Answer { status, body: body.to_owned() }
}

/// One test case of the suite's shape: the service gets `headers` and a list
/// of `callbacks` calls to the capture server; returns what each callback
/// received, in order.
pub async fn run_case(headers: &[(&str, &str)], callbacks: usize) -> Vec<Received> {
    let service = start_service().await;
    let capture = Capture::start().await;
    let calls: Vec<serde_json::Value> = (0..callbacks)
        .map(|index| serde_json::json!({ "url": capture.url(&index.to_string()), "arguments": [] }))
        .collect();
    let body = serde_json::to_vec(&calls).expect("a JSON list");
    let answer = post_raw(service, headers, &body).await;
    assert_eq!(answer.status, 200, "the service answered {answer:?}");
    // The service answers after its last call returned: nothing is in flight.
    let received = capture.received();
    assert_eq!(received.len(), callbacks, "expected {callbacks} callbacks, got {received:?}");
    received
}

/// The one callback of a single-call test case.
pub async fn run_one(headers: &[(&str, &str)]) -> Received {
    run_case(headers, 1).await.remove(0)
}

/// The service continued the offered trace: same trace-id, its own parent-id.
pub fn assert_continued(received: &Received) -> Traceparent {
    let traceparent = received.traceparent();
    assert_eq!(traceparent.trace_id, TRACE_ID, "the trace was not continued");
    assert_ne!(traceparent.parent_id, PARENT_ID, "the caller's parent-id was forwarded instead of the service's own");
    traceparent
}

/// The service started a new trace: the outgoing trace-id is none of the ids
/// a lenient parser could have read from the rejected header.
pub fn assert_restarted(received: &Received, could_have_continued: &[&str]) {
    let traceparent = received.traceparent();
    for id in could_have_continued {
        assert_ne!(&traceparent.trace_id, id, "the service continued a trace from a traceparent it must reject");
    }
}
