//! What Envoy, configured as step 6's solution configures it
//! (`solutions/step-06-mesh/envoy.yaml`), does with the trace context it
//! receives: the claims of book/src/step-06-mesh.md, without Kafka or the
//! flow. Downloads Envoy once (see `stitch_components::envoy::install_envoy`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stitch_components::envoy::{CONFIG_FILE, Envoy, EnvoyPorts, install_envoy};
use stitch_components::process::free_port;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// An upstream that answers 202 and reports each request's `traceparent`.
fn upstream() -> (SocketAddr, mpsc::Receiver<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut traceparent, mut length) = (None, 0);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or_default();
                match name.to_ascii_lowercase().as_str() {
                    "traceparent" => traceparent = Some(value.trim().to_owned()),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let _ = stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
            if sender.send(traceparent).is_err() {
                return;
            }
        }
    });
    (addr, receiver)
}

/// POSTs through Envoy and returns the `traceparent` the upstream received.
fn forwarded(envoy: &Envoy, upstream: &mpsc::Receiver<Option<String>>, traceparent: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(envoy.listener()).unwrap();
    write!(
        stream,
        "POST /work HTTP/1.1\r\nHost: worker\r\ntraceparent: {traceparent}\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .unwrap();
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).unwrap();
    assert!(status.contains(" 202 "), "Envoy answered {status:?}");
    upstream.recv_timeout(Duration::from_secs(5)).expect("the upstream got the request")
}

#[test]
fn envoy_continues_valid_context_and_forwards_what_it_cannot_parse() {
    let binary = install_envoy().expect("Envoy");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lineage = runtime.block_on(lineage::Lineage::start(lineage::Config::ephemeral())).unwrap();
    let (upstream_addr, upstream) = upstream();
    let ports = EnvoyPorts {
        admin: free_port().unwrap(),
        listen: free_port().unwrap(),
        worker: upstream_addr.port(),
        lineage_otlp: lineage.grpc_addr().port(),
    };
    let dir = stitch_components::run_dir().join("tests").join(format!("envoy-{}", std::process::id()));
    let config = stitch_components::project_root().join("solutions").join("step-06-mesh").join(CONFIG_FILE);
    let envoy = Envoy::start(&binary, &config, ports, &dir).expect("Envoy starts");

    // Valid and sampled: Envoy's CLIENT span is the upstream's parent, under
    // its SERVER span, under the caller's span.
    let valid = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let sent_on = forwarded(&envoy, &upstream, &valid).expect("a traceparent");
    let client_span = sent_on.split('-').nth(2).unwrap().to_owned();
    assert!(sent_on.starts_with(&format!("00-{TRACE}-")) && sent_on.ends_with("-01"), "{sent_on}");
    assert_ne!(client_span, "00f067aa0ba902b7", "Envoy sends its own span id on");

    // Malformed: forwarded byte for byte, no span.
    let malformed = format!("00-{TRACE}-00f067aa0ba902b7");
    assert_eq!(forwarded(&envoy, &upstream, &malformed).as_deref(), Some(malformed.as_str()));

    // Unsampled: continued with Envoy's span id and the flag still off.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00";
    let sent_on = forwarded(&envoy, &upstream, unsampled).expect("a traceparent");
    assert!(sent_on.starts_with("00-0af7651916cd43dd8448eb211c80319d-") && sent_on.ends_with("-00"), "{sent_on}");
    assert!(!sent_on.contains("b7ad6b7169203332"), "{sent_on}");

    // Only the valid request's two spans reach lineage.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lineage.report().spans_received < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    lineage.settle_now();
    let report = lineage.report();
    assert_eq!(report.spans_received, 2, "one request traced, two spans: {report:?}");
    let trace = lineage.trace(TRACE).expect("the valid request's trace");
    let span = |kind: &str| trace.spans.iter().find(|span| span.kind.eq_ignore_ascii_case(kind)).unwrap();
    let (server, client) = (span("server"), span("client"));
    assert_eq!(server.service, "envoy");
    assert_eq!(server.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(client.parent_span_id.as_deref(), Some(server.span_id.as_str()));
    assert_eq!(client.span_id, client_span);

    envoy.stop();
    runtime.block_on(lineage.shutdown());
}
