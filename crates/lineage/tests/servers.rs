//! Round trips over real sockets: OTLP/gRPC, OTLP/HTTP (protobuf, JSON,
//! gzip), refusals, the API and pages, scale-out, the binary's help.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use lineage::{Boundary, Config, Lineage, Report, TraceView};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tonic::codec::CompressionEncoding;

async fn start() -> Lineage {
    Lineage::start(Config::ephemeral()).await.expect("lineage starts")
}

async fn grpc(lineage: &Lineage) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(lineage.otlp_grpc_endpoint()).await.expect("gRPC connects")
}

fn url(lineage: &Lineage, path: &str) -> String {
    format!("{}{path}", lineage.http_endpoint())
}

async fn post(lineage: &Lineage, body: Vec<u8>, content_type: &str, encoding: Option<&str>) -> (u16, Vec<u8>) {
    let mut request =
        reqwest::Client::new().post(url(lineage, "/v1/traces")).header("content-type", content_type).body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn get(lineage: &Lineage, path: &str) -> (u16, String, String) {
    let response = reqwest::get(url(lineage, path)).await.expect("HTTP GET");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn grpc_round_trip_with_partial_success() {
    let lineage = start().await;
    let mut client = grpc(&lineage).await;
    let mut zero = server(2, 9, "worker", "bad");
    zero.span.span_id = vec![0; 8];
    let mut spans = connected_chain(1, 0, "1001");
    spans.push(zero);
    let response = client.export(request(spans)).await.expect("export").into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("invalid-id"));

    // Collectors send gzip by default.
    let mut gzip_client = grpc(&lineage).await.send_compressed(CompressionEncoding::Gzip);
    let response = gzip_client
        .export(request(vec![server(3, 1, "worker", "POST /work").order("1001")]))
        .await
        .expect("gzip export")
        .into_inner();
    assert_eq!(response.partial_success, None);

    lineage.settle_now();
    let report = lineage.report();
    assert_eq!(report.spans_received, 7);
    assert_eq!(report.spans_settled, 7);
    assert_eq!(report.requests, 1);
    assert_eq!(report.boundary(Boundary::Http).breaks, 1);
    assert_eq!(report.rejected_spans.get("invalid-id"), Some(&1));
    lineage.shutdown().await;
}

/// Sends raw bytes as the body of a gRPC Export call, whatever they contain.
mod raw {
    use prost::bytes::BufMut;
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    use super::*;

    pub struct RawCodec;
    pub struct RawEncoder;
    pub struct ResponseDecoder;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = ExportTraceServiceResponse;
        type Encoder = RawEncoder;
        type Decoder = ResponseDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> ResponseDecoder {
            ResponseDecoder
        }
    }

    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for ResponseDecoder {
        type Item = ExportTraceServiceResponse;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
            ExportTraceServiceResponse::decode(src).map(Some).map_err(|e| Status::internal(e.to_string()))
        }
    }

    pub async fn export(endpoint: String, body: Vec<u8>) -> Result<ExportTraceServiceResponse, Status> {
        let channel = tonic::transport::Endpoint::new(endpoint).unwrap().connect().await.unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        grpc.unary(tonic::Request::new(body), path, RawCodec).await.map(|r| r.into_inner())
    }
}

/// A protobuf request whose span name is not UTF-8.
fn invalid_utf8_protobuf() -> Vec<u8> {
    let marker = "MARKER-NAME";
    let mut bytes = request(vec![server(1, 1, "gateway", "ok").attr("note", marker)]).encode_to_vec();
    let at = bytes.windows(marker.len()).position(|w| w == marker.as_bytes()).unwrap();
    bytes[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    bytes
}

#[tokio::test]
async fn grpc_refuses_malformed_and_oversized_payloads() {
    let lineage = Lineage::start(Config { max_payload_bytes: 64 << 10, ..Config::ephemeral() }).await.unwrap();
    let endpoint = lineage.otlp_grpc_endpoint();

    let status = raw::export(endpoint.clone(), vec![0xff; 37]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("malformed OTLP protobuf"), "{}", status.message());

    let status = raw::export(endpoint.clone(), invalid_utf8_protobuf()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("UTF-8"), "{}", status.message());

    let big: Vec<SpanSpec> = (1..2_000).map(|i| internal(1, i, "worker", &"x".repeat(64))).collect();
    let mut client = grpc(&lineage).await;
    let status = client.export(request(big)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("the limit is: 65536 bytes"), "{}", status.message());

    let report = lineage.report();
    assert_eq!(report.rejected.get("malformed"), Some(&2));
    assert_eq!(report.rejected.get("too-large"), Some(&1));
    assert_eq!(report.spans_received, 0);
    assert_eq!(report.held.traces, 0);

    // The receiver still works afterwards.
    let response = raw::export(endpoint, request(connected_chain(5, 0, "1")).encode_to_vec()).await.unwrap();
    assert_eq!(response.partial_success, None);
    assert_eq!(lineage.report().spans_received, 6);
    lineage.shutdown().await;
}

#[tokio::test]
async fn http_protobuf_and_gzip_round_trip() {
    let lineage = start().await;
    let body = request(connected_chain(1, 0, "1")).encode_to_vec();
    let (status, response) = post(&lineage, body, "application/x-protobuf", None).await;
    assert_eq!(status, 200);
    assert_eq!(ExportTraceServiceResponse::decode(&response[..]).unwrap().partial_success, None);

    let body = gzip(&request(connected_chain(2, 0, "2")).encode_to_vec());
    let (status, _) = post(&lineage, body, "application/x-protobuf", Some("gzip")).await;
    assert_eq!(status, 200);

    let mut zero = server(3, 1, "worker", "bad");
    zero.span.trace_id.clear();
    let body = request(vec![zero, server(3, 2, "worker", "good")]).encode_to_vec();
    let (status, response) = post(&lineage, body, "application/x-protobuf", None).await;
    assert_eq!(status, 200);
    let partial = ExportTraceServiceResponse::decode(&response[..]).unwrap().partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);

    lineage.settle_now();
    let report = lineage.report();
    assert_eq!((report.spans_received, report.requests), (13, 2));
    assert_eq!(report.rejected_spans.get("invalid-id"), Some(&1));
    lineage.shutdown().await;
}

#[tokio::test]
async fn http_json_round_trip() {
    let lineage = start().await;
    let body = serde_json::to_vec(&request(connected_chain(1, 0, "1"))).unwrap();
    let (status, response) = post(&lineage, body, "application/json", None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
    assert_eq!(response, b"{}");

    // OTLP/JSON as an SDK writes it: hex ids, int64 as strings, enums as numbers.
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"worker"}}]},
      "scopeSpans":[{"scope":{"name":"manual"},"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
         "parentSpanId":"","name":"POST /work","kind":2,
         "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
         "attributes":[{"key":"order.id","value":{"intValue":"1001"}}]},
        {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175",
         "name":"zero trace id","kind":1,
         "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"}
      ]}]}]}"#;
    let (status, response) = post(&lineage, json.as_bytes().to_vec(), "application/json; charset=utf-8", None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
    let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(response["partialSuccess"]["rejectedSpans"], "1");

    let body = gzip(json.as_bytes());
    let (status, _) = post(&lineage, body, "application/json", Some("gzip")).await;
    assert_eq!(status, 200);

    lineage.settle_now();
    let report = lineage.report();
    assert_eq!(report.spans_received, 7);
    assert_eq!(report.duplicate_spans, 1);
    let trace = lineage.trace("5b8efff798038103d269b633813fc60c").unwrap();
    assert_eq!(trace.spans[0].business_key.as_deref(), Some("1001"));
    assert_eq!(trace.spans[0].kind, "server");
    assert_eq!(trace.spans[0].duration_ms, 1000.0);
    lineage.shutdown().await;
}

#[tokio::test]
async fn http_refusals_are_clear_counted_and_harmless() {
    let lineage = Lineage::start(Config { max_payload_bytes: 64 << 10, ..Config::ephemeral() }).await.unwrap();
    let good = request(connected_chain(1, 0, "1")).encode_to_vec();
    let json_good = serde_json::to_string(&request(connected_chain(1, 0, "1"))).unwrap();
    let big: Vec<SpanSpec> = (1..2_000).map(|i| internal(1, i, "worker", &"x".repeat(64))).collect();
    let big = request(big).encode_to_vec();
    let invalid_utf8_json = {
        let mut bytes = json_good.clone().into_bytes();
        let at = bytes.windows(6).position(|w| w == b"gatewa").unwrap();
        bytes[at] = 0xff;
        bytes
    };
    // (case, body, content type, content encoding, status, text in the reply)
    type Case<'a> = (&'a str, Vec<u8>, &'a str, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "random bytes",
            vec![0xde, 0xad, 0xbe, 0xef, 0xff, 0x13],
            "application/x-protobuf",
            None,
            400,
            "malformed OTLP protobuf",
        ),
        (
            "truncated protobuf",
            good[..good.len() / 2].to_vec(),
            "application/x-protobuf",
            None,
            400,
            "malformed OTLP protobuf",
        ),
        ("invalid UTF-8 protobuf", invalid_utf8_protobuf(), "application/x-protobuf", None, 400, "UTF-8"),
        ("broken JSON", b"{\"resourceSpans\": [".to_vec(), "application/json", None, 400, "malformed OTLP JSON"),
        ("invalid UTF-8 JSON", invalid_utf8_json, "application/json", None, 400, "malformed OTLP JSON"),
        (
            "JSON bad hex id",
            json_good.replace("7a00", "zz00").into_bytes(),
            "application/json",
            None,
            400,
            "malformed OTLP JSON",
        ),
        ("wrong content type", good.clone(), "text/plain", None, 415, "unsupported content type"),
        (
            "unsupported encoding",
            good.clone(),
            "application/x-protobuf",
            Some("br"),
            415,
            "unsupported content encoding",
        ),
        ("not gzip", good.clone(), "application/x-protobuf", Some("gzip"), 400, "malformed gzip"),
        ("oversized", big.clone(), "application/x-protobuf", None, 413, "exceeds the limit of 65536 bytes"),
        ("oversized once inflated", gzip(&big), "application/x-protobuf", Some("gzip"), 413, "exceeds the limit"),
    ];
    for (name, body, content_type, encoding, expected, reason) in &cases {
        let (status, response) = post(&lineage, body.clone(), content_type, *encoding).await;
        let response = String::from_utf8_lossy(&response);
        assert_eq!(status, *expected, "{name}: {response}");
        assert!(response.contains(reason), "{name}: {response}");
    }
    let report = lineage.report();
    assert_eq!(report.spans_received, 0, "refusals change no stored state");
    assert_eq!(report.held.traces, 0);
    assert_eq!(report.rejected.get("malformed"), Some(&7));
    assert_eq!(report.rejected.get("unsupported-content-type"), Some(&1));
    assert_eq!(report.rejected.get("unsupported-encoding"), Some(&1));
    assert_eq!(report.rejected.get("too-large"), Some(&2));
    let (_, _, metrics) = get(&lineage, "/metrics").await;
    assert!(metrics.contains("lineage_rejected_payloads_total{reason=\"malformed\"} 7"), "{metrics}");

    let (status, _) = post(&lineage, good, "application/x-protobuf", None).await;
    assert_eq!(status, 200);
    assert_eq!(lineage.report().spans_received, 6);
    lineage.shutdown().await;
}

#[tokio::test]
async fn api_and_pages() {
    let lineage = start().await;
    let mut client = grpc(&lineage).await;
    let mut spans = connected_chain(1, 0, "1001");
    spans.push(server(2, 10, "worker", "POST /work").order("1001"));
    spans.push(internal(2, 11, "worker", "<script>alert(1)</script>").parent(10));
    client.export(request(spans)).await.unwrap();

    let (status, body) = {
        let r = reqwest::Client::new().post(url(&lineage, "/api/settle")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!((status, body.as_str()), (200, "settled 2 traces\n"));

    let (status, content_type, body) = get(&lineage, "/api/report").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let report: Report = serde_json::from_str(&body).unwrap();
    assert_eq!(report, lineage.report());
    assert_eq!(report.boundaries.iter().map(|b| b.boundary).collect::<Vec<_>>(), Boundary::ALL);
    let raw: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(raw["services"][2]["causes"]["root-in-internal-service"], 2);
    assert_eq!(raw["services"][2]["boundaries"]["async"], 0);
    assert_eq!(raw["boundaries"][0]["boundary"], "http");
    assert_eq!(raw["unattributed_breaks"]["messaging"], 0);
    assert!(raw["completeness"]["p99_ms"].is_number());
    assert!(raw["held"]["spans"].is_number());

    let (status, _, body) = get(&lineage, &format!("/api/traces/{}", trace_hex(2))).await;
    assert_eq!(status, 200);
    let view: TraceView = serde_json::from_str(&body).unwrap();
    assert_eq!(view, lineage.trace(&trace_hex(2)).unwrap());
    assert!(view.spans[0].is_break);
    let (status, _, body) = get(&lineage, "/api/traces/xyz").await;
    assert_eq!(status, 400);
    assert!(body.contains("malformed trace id"), "{body}");
    let (status, _, body) = get(&lineage, &format!("/api/traces/{}", trace_hex(77))).await;
    assert_eq!(status, 404);
    assert!(body.contains("is not held"), "{body}");

    let (status, content_type, dump) = get(&lineage, &format!("/api/traces/{}/dump", trace_hex(2))).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    assert_eq!(Some(dump.clone()), lineage.trace_dump(&trace_hex(2)));
    assert!(dump.contains("✗ BREAK root-in-internal-service/http"));

    let (status, _, body) = get(&lineage, "/api/requests/1001").await;
    assert_eq!(status, 200);
    let request_view: lineage::RequestView = serde_json::from_str(&body).unwrap();
    assert_eq!(request_view.summary, "1 request → 2 fragments, 1 break: http");
    assert_eq!(request_view.traces.len(), lineage.request_traces("1001").len());
    let (status, _, dump) = get(&lineage, "/api/requests/1001/dump").await;
    assert_eq!(status, 200);
    assert_eq!(Some(dump), lineage.request_dump("1001"));
    let (status, _, body) = get(&lineage, "/api/requests/404").await;
    assert_eq!(status, 404);
    assert!(body.contains("order.id"), "{body}");
    // An unknown key's dump once deadlocked on the store's lock.
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(5), get(&lineage, "/api/requests/404/dump"))
        .await
        .expect("the dump of an unknown request answers");
    assert_eq!(status, 404);

    for path in ["/".to_owned(), format!("/traces/{}", trace_hex(2)), "/requests/1001".to_owned()] {
        let (status, content_type, html) = get(&lineage, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(content_type.starts_with("text/html"), "{path}");
        assert!(html.to_ascii_lowercase().starts_with("<!doctype html>"), "{path}");
        assert!(!html.contains("<script"), "{path}: names are escaped");
    }
    let (_, _, html) = get(&lineage, "/requests/1001").await;
    assert!(html.contains("1 request → 2 fragments, 1 break: http"));
    assert!(html.contains("BREAK root-in-internal-service/http"));
    assert!(html.contains("fragment 2 of 2"));
    assert_eq!(lineage.request_page("1001").as_deref(), Some(html.as_str()), "in process, the same page");
    assert_eq!(lineage.request_page("404"), None);
    let (status, _, _) = get(&lineage, "/traces/nothing").await;
    assert_eq!(status, 400);

    let (status, content_type, metrics) = get(&lineage, "/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert!(metrics.contains("lineage_orphan_rate{service=\"worker\"} 0.4"), "{metrics}");

    let r = reqwest::Client::new().post(url(&lineage, "/api/reset")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(lineage.report().spans_received, 0);
    assert!(lineage.trace(&trace_hex(2)).is_none());
    lineage.shutdown().await;
}

#[tokio::test]
async fn keys_a_path_cannot_hold_are_served_by_query() {
    let lineage = start().await;
    grpc(&lineage).await.export(request(vec![server(1, 1, "gateway", "POST /orders").order("..")])).await.unwrap();
    lineage.settle_now();

    let (status, content_type, body) = get(&lineage, "/api/requests?key=..").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let view: lineage::RequestView = serde_json::from_str(&body).unwrap();
    assert_eq!(view.key, "..");
    let (status, content_type, dump) = get(&lineage, "/api/requests?key=..&format=dump").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    assert_eq!(Some(dump), lineage.request_dump(".."));
    let (status, _, body) = get(&lineage, "/api/requests?key=..&format=xml").await;
    assert_eq!(status, 400);
    assert!(body.contains("json or dump"), "{body}");
    let (status, _, html) = get(&lineage, "/requests?key=..").await;
    assert_eq!(status, 200);
    assert_eq!(lineage.request_page("..").as_deref(), Some(html.as_str()));
    assert!(html.contains("href=\"/api/requests?key=..&amp;format=dump\""), "{html}");
    let (status, _, _) = get(&lineage, "/requests?key=unknown").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&lineage, "/requests").await;
    assert_eq!(status, 400, "no key");
    lineage.shutdown().await;
}

/// The policy's directives, by name.
fn directives(policy: &str) -> std::collections::BTreeMap<&str, Vec<&str>> {
    policy
        .split(';')
        .filter_map(|directive| {
            let mut words = directive.split_whitespace();
            Some((words.next()?, words.collect()))
        })
        .collect()
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_needs_no_inline_code() {
    let lineage = start().await;
    let mut spans = connected_chain(1, 0, "1001");
    spans.push(internal(2, 11, "worker", "job").order(".."));
    grpc(&lineage).await.export(request(spans)).await.unwrap();
    lineage.settle_now();

    let client = reqwest::Client::new();
    let pages = [
        ("/", 200),
        (&*format!("/traces/{}", trace_hex(1)), 200),
        ("/requests/1001", 200),
        ("/requests?key=..", 200),
        ("/requests/unknown", 404),
        (&*format!("/traces/{}", trace_hex(9)), 404),
        ("/traces/not-an-id", 400),
    ];
    let scripts = scraper::Selector::parse("script, style, [style]").unwrap();
    let stylesheets = scraper::Selector::parse("link[rel=stylesheet]").unwrap();
    for (path, expected) in pages {
        let response = client.get(url(&lineage, path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        let policy = directives(policy);
        // No script-src: scripts fall back to default-src, which allows nothing.
        assert_eq!(policy["default-src"], ["'none'"], "{path}");
        assert!(!policy.contains_key("script-src"), "{path}");
        assert_eq!(policy["style-src"], ["'self'"], "{path}: no inline style");
        assert_eq!(policy["frame-ancestors"], ["'none'"], "{path}");

        let page = scraper::Html::parse_document(&response.text().await.unwrap());
        let inline: Vec<String> = page.select(&scripts).map(|element| element.html()).collect();
        assert_eq!(inline, Vec::<String>::new(), "{path}: inline script or style, which the policy blocks");
        let on_handlers = page
            .root_element()
            .descendants()
            .filter_map(scraper::ElementRef::wrap)
            .flat_map(|element| element.value().attrs().map(|(name, _)| name.to_owned()).collect::<Vec<_>>())
            .filter(|name| name.starts_with("on"))
            .count();
        assert_eq!(on_handlers, 0, "{path}: event handler attributes");
        let sheets: Vec<&str> = page.select(&stylesheets).filter_map(|link| link.value().attr("href")).collect();
        assert_eq!(sheets, ["/lineage.css"], "{path}");
    }
    let sheet = client.get(url(&lineage, "/lineage.css")).send().await.unwrap();
    assert_eq!(sheet.status(), 200);
    assert_eq!(sheet.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(sheet.headers()["x-content-type-options"], "nosniff");
    assert!(sheet.text().await.unwrap().contains(".wf{display:grid"));
    lineage.shutdown().await;
}

#[tokio::test]
async fn background_ticker_settles_quiet_traces() {
    let lineage =
        Lineage::start(Config { quiet_period: Duration::from_millis(150), ..Config::ephemeral() }).await.unwrap();
    grpc(&lineage).await.export(request(connected_chain(1, 0, "1"))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lineage.report().traces_settled == 0 {
        assert!(Instant::now() < deadline, "trace never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lineage.report().spans_settled, 6);
    lineage.shutdown().await;
}

#[tokio::test]
async fn ports_in_use_are_named() {
    let first = start().await;
    let error = Lineage::start(Config { grpc_addr: first.grpc_addr(), ..Config::ephemeral() })
        .await
        .err()
        .expect("second bind fails");
    let message = error.to_string();
    assert_eq!(
        message,
        format!("{} is already in use (is another lineage running? try `cargo xtask down`)", first.grpc_addr())
    );
    let error = Lineage::start(Config { http_addr: first.http_addr(), ..Config::ephemeral() })
        .await
        .err()
        .expect("second bind fails");
    assert!(error.to_string().starts_with(&first.http_addr().to_string()));
    assert!(first.otlp_grpc_endpoint().starts_with("http://127.0.0.1:"));
    first.shutdown().await;
}

fn hash(trace: &[u8]) -> u64 {
    trace.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Many requests, each whole trace either intact or broken in its own trace.
fn workload() -> Vec<SpanSpec> {
    let mut spans = Vec::new();
    for i in 0..200u64 {
        let key = format!("{i}");
        let t = i * 10 + 1;
        spans.extend(connected_chain(t, 0, &key).into_iter().take(if i % 3 == 0 { 6 } else { 3 }));
        match i % 5 {
            0 => spans.push(server(t + 1, 1, "worker", "POST /work").order(&key)),
            1 => spans.push(internal(t + 2, 1, "worker", "job").order(&key)),
            2 => spans.push(consumer(t + 3, 1, "consumer", "process").link(t, 5)),
            3 => spans.push(internal(t, 40, "worker", "lost").parent(999)),
            _ => spans.push(consumer(t + 4, 1, "consumer", "process")),
        }
    }
    spans
}

#[tokio::test]
async fn scale_out_by_trace_id_adds_up() {
    let single = start().await;
    let shards = [start().await, start().await];
    let spans = workload();
    let mut single_client = grpc(&single).await;
    let mut shard_clients = [grpc(&shards[0]).await, grpc(&shards[1]).await];
    for batch in spans.chunks(64) {
        single_client.export(request(batch.to_vec())).await.unwrap();
        let mut routed: [Vec<SpanSpec>; 2] = [Vec::new(), Vec::new()];
        for spec in batch {
            routed[(hash(&spec.span.trace_id) % 2) as usize].push(spec.clone());
        }
        for (client, part) in shard_clients.iter_mut().zip(routed) {
            if !part.is_empty() {
                client.export(request(part)).await.unwrap();
            }
        }
    }
    for l in [&single, &shards[0], &shards[1]] {
        l.settle_now();
    }
    let whole = single.report();
    let parts = [shards[0].report(), shards[1].report()];
    assert!(parts.iter().all(|p| p.spans_settled > 0), "both shards got traces");

    let sum = |f: &dyn Fn(&Report) -> u64| parts.iter().map(f).sum::<u64>();
    assert_eq!(sum(&|r| r.spans_settled), whole.spans_settled);
    assert_eq!(sum(&|r| r.requests), whole.requests);
    assert_eq!(sum(&|r| r.linked()), whole.linked());
    assert_eq!(sum(&|r| r.traces_settled), whole.traces_settled);
    for boundary in Boundary::ALL {
        assert_eq!(sum(&|r| r.unattributed_breaks.get(boundary)), whole.unattributed_breaks.get(boundary));
    }
    for service in &whole.services {
        let of = |r: &Report| r.service(&service.service).cloned();
        let parts: Vec<_> = parts.iter().filter_map(of).collect();
        assert_eq!(parts.iter().map(|s| s.spans).sum::<u64>(), service.spans);
        assert_eq!(parts.iter().map(|s| s.orphans).sum::<u64>(), service.orphans);
        assert_eq!(parts.iter().map(|s| s.linked).sum::<u64>(), service.linked);
        assert_eq!(parts.iter().map(|s| s.connected).sum::<u64>(), service.connected);
        for cause in lineage::Cause::ALL {
            assert_eq!(parts.iter().map(|s| s.causes.get(cause)).sum::<u64>(), service.causes.get(cause));
        }
        for boundary in Boundary::ALL {
            assert_eq!(parts.iter().map(|s| s.boundaries.get(boundary)).sum::<u64>(), service.boundaries.get(boundary));
        }
    }
    assert!(whole.orphans() > 0 && whole.linked() > 0);
    // Breaks by business key need the request and its fragments on one
    // instance; split, the fragment's instance counts them as root-missing.
    // Each key breaks at most once per boundary here, so the sums match.
    for boundary in Boundary::ALL {
        assert!(sum(&|r| r.boundary(boundary).breaks) <= whole.boundary(boundary).breaks);
        let counted = |r: &Report| r.boundary(boundary).breaks + r.request_root_missing.get(boundary);
        assert_eq!(sum(&counted), counted(&whole), "{boundary}");
    }
    assert!(parts.iter().any(|p| p.request_root_missing.total() > 0), "some keyed breaks were split");
    assert!(whole.boundary(Boundary::Http).breaks > 0);
    let [a, b] = shards;
    for l in [single, a, b] {
        l.shutdown().await;
    }
}

#[test]
fn binary_help_documents_every_flag_and_port() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lineage")).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "--bind",
        "--grpc-port",
        "--http-port",
        "--entry-service",
        "--business-key",
        "--quiet-period",
        "--max-age",
        "--max-traces",
        "--max-spans",
        "--max-payload",
        "--log-level",
        "--allow-remote-reset",
        "4317",
        "4318",
        "/metrics",
        "/v1/traces",
        "root-in-internal-service",
        "missing-parent",
        "Orphan-span rate of a service",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[tokio::test]
async fn browser_pages_export_only_from_allowed_origins() {
    let page = "http://127.0.0.1:8080";
    let lineage = Lineage::start(Config { cors_origins: vec![page.to_owned()], ..Config::ephemeral() }).await.unwrap();
    let client = reqwest::Client::new();
    let traces = url(&lineage, "/v1/traces");
    let body = || serde_json::to_vec(&request(connected_chain(1, 0, "1"))).unwrap();

    // The allowed page: its preflight is answered and its spans are ingested.
    let preflight = client
        .request(reqwest::Method::OPTIONS, &traces)
        .header("origin", page)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], page);
    assert!(preflight.headers()["access-control-allow-headers"].to_str().unwrap().contains("content-type"));
    let allowed = client
        .post(&traces)
        .header("origin", page)
        .header("content-type", "application/json")
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], page);

    // Any other page: refused before ingestion, preflight or not.
    for method in [reqwest::Method::OPTIONS, reqwest::Method::POST] {
        let refused = client
            .request(method, &traces)
            .header("origin", "http://127.0.0.1:9999")
            .header("content-type", "application/json")
            .body(body())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused.headers().get("access-control-allow-origin").is_none());
    }
    // A client that is not a browser sends no Origin and is not concerned.
    let (status, _) = post(&lineage, body(), "application/json", None).await;
    assert_eq!(status, 200);
    assert_eq!(lineage.report().spans_received, 6);
    lineage.shutdown().await;
}

#[tokio::test]
async fn a_restart_refuses_while_down_then_listens_on_the_same_ports_with_nothing_held() {
    let mut lineage = start().await;
    let (grpc_addr, http_addr) = (lineage.grpc_addr(), lineage.http_addr());
    let mut client = grpc(&lineage).await;
    client.export(request(connected_chain(1, 0, "1001"))).await.expect("export before the restart");
    assert!(lineage.report().spans_received > 0);

    let endpoint = lineage.otlp_grpc_endpoint();
    let restart = tokio::spawn(async move {
        lineage.restart(Duration::from_millis(500)).await.expect("restarts");
        lineage
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TraceServiceClient::connect(endpoint.clone()).await.is_err(), "nothing listens while it is down");
    let lineage = restart.await.unwrap();

    assert_eq!((lineage.grpc_addr(), lineage.http_addr()), (grpc_addr, http_addr));
    assert_eq!(lineage.report().spans_received, 0, "a restart forgets what it held");
    let mut client = TraceServiceClient::connect(endpoint).await.expect("connects again");
    client.export(request(connected_chain(2, 0, "1002"))).await.expect("export after the restart");
    assert!(lineage.report().spans_received > 0);
    lineage.shutdown().await;
}
