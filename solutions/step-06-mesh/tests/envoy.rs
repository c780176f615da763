//! The Envoy hop in seconds: Envoy (the binary the check runs) started from
//! this crate's `envoy.yaml` in front of a stand-in worker, exporting to a
//! lineage in this process. One request with a `traceparent` crosses it; the
//! test reads what Envoy sent on and what lineage received. No Kafka, no
//! flow; `cargo xtask check step-6` stays the end-to-end judge.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stitch_components::envoy::{CONFIG_FILE, Envoy, EnvoyPorts, install_envoy};
use stitch_components::process::free_port;

/// The caller's context: what the gateway's CLIENT span sends.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// How long Envoy's spans may take to reach lineage: the file's runtime
/// layer sends them within 100 ms.
const EXPORT_WAIT: Duration = Duration::from_secs(2);

/// What a failure says: which part of Envoy's configuration, and where to read on.
fn broken(what: &str) -> String {
    format!(
        "Envoy is not part of the trace: {what}\n  \
         read the exercise in book/src/step-06-mesh.md, or take a hint: cargo xtask hint step-6"
    )
}

/// A stand-in worker that answers 202 and reports each request's `traceparent`.
fn worker() -> (SocketAddr, mpsc::Receiver<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound address");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("a socket"));
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
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
            if sender.send(traceparent).is_err() {
                return;
            }
        }
    });
    (addr, receiver)
}

/// Starts Envoy from this crate's `envoy.yaml`, exporting to `lineage`.
fn envoy_in_front_of(worker: SocketAddr, lineage: &lineage::Lineage) -> Envoy {
    let binary = install_envoy().expect("the Envoy binary (the check downloads the same one)");
    let ports = EnvoyPorts {
        admin: free_port().expect("a free port"),
        listen: free_port().expect("a free port"),
        worker: worker.port(),
        lineage_otlp: lineage.grpc_addr().port(),
    };
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(CONFIG_FILE);
    let dir =
        stitch_components::run_dir().join("tests").join(format!("{}-{}", env!("CARGO_PKG_NAME"), std::process::id()));
    Envoy::start(&binary, &config, ports, &dir)
        .unwrap_or_else(|err| panic!("{}", broken(&format!("Envoy did not start from {}: {err:#}", config.display()))))
}

/// POSTs through Envoy with the caller's `traceparent`; what the worker received.
fn forwarded(envoy: &Envoy, worker: &mpsc::Receiver<Option<String>>) -> Option<String> {
    let mut stream = TcpStream::connect(envoy.listener()).expect("connecting to Envoy's listener");
    write!(
        stream,
        "POST /work HTTP/1.1\r\nHost: worker\r\ntraceparent: 00-{TRACE}-{CALLER_SPAN}-01\r\n\
         content-length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .expect("sending the request");
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).expect("Envoy's answer");
    assert!(status.contains(" 202 "), "Envoy answered {status:?} instead of passing the worker's 202 on");
    worker.recv_timeout(Duration::from_secs(5)).expect("the worker got the request")
}

/// Waits until lineage holds `count` spans, or until it is clear none is
/// coming (Envoy counted spans sent that never arrived, or the wait is over).
fn wait_for_spans(lineage: &lineage::Lineage, envoy: &Envoy, count: u64) {
    let started = Instant::now();
    let mut sent_at: Option<Instant> = None;
    while lineage.report().spans_received < count && started.elapsed() < EXPORT_WAIT {
        let sent = envoy.listed_counter("tracing.opentelemetry.spans_sent").expect("Envoy's admin API answers");
        if sent.is_some_and(|sent| sent > 0) {
            let sent_at = *sent_at.get_or_insert_with(Instant::now);
            if sent_at.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A span more than expected would show a shape the test must see.
    std::thread::sleep(Duration::from_millis(200));
    lineage.settle_now();
}

#[test]
fn envoy_continues_the_callers_trace_with_a_server_and_a_client_span() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let lineage = runtime.block_on(lineage::Lineage::start(lineage::Config::ephemeral())).expect("lineage starts");
    let (worker_addr, worker) = worker();
    let envoy = envoy_in_front_of(worker_addr, &lineage);

    let Some(sent_on) = forwarded(&envoy, &worker) else {
        panic!("{}", broken("the worker received no `traceparent` at all"));
    };
    if sent_on == format!("00-{TRACE}-{CALLER_SPAN}-01") {
        panic!(
            "{}",
            broken(
                "Envoy forwarded the caller's `traceparent` untouched and recorded no span: the worker would be a \
                 child of the gateway's call, as if Envoy were not there"
            )
        );
    }
    let fields: Vec<&str> = sent_on.split('-').collect();
    assert!(
        fields.len() == 4 && fields[1] == TRACE,
        "{}",
        broken(&format!("Envoy sent `traceparent: {sent_on}` on, which does not continue trace {TRACE}"))
    );
    let worker_parent = fields[2];

    wait_for_spans(&lineage, &envoy, 2);
    let sent = envoy.listed_counter("tracing.opentelemetry.spans_sent").expect("Envoy's admin API answers");
    let received = lineage.report().spans_received;
    if received == 0 {
        let why = match sent {
            Some(0) | None => format!(
                "Envoy sent none of its spans within {EXPORT_WAIT:?}: it buffers them (5 s by default) unless \
                 the file's runtime layer says otherwise"
            ),
            Some(sent) => format!(
                "Envoy counted {sent} spans sent and lineage received none: the export fails (OTLP/gRPC is gRPC, \
                 which needs HTTP/2 on the exporter's cluster)"
            ),
        };
        panic!("{}", broken(&why));
    }

    let trace = lineage.trace(TRACE).unwrap_or_else(|| {
        panic!("{}", broken(&format!("lineage received {received} spans, none of them in the caller's trace")))
    });
    let span = |id: &str| trace.spans.iter().find(|span| span.span_id == id);
    let describe = |span: &lineage::SpanView| format!("{} {} span", span.service, span.kind.to_uppercase());
    let Some(parent) = span(worker_parent) else {
        panic!(
            "{}",
            broken(&format!(
                "the span Envoy named as the worker's parent ({worker_parent}) never reached lineage; it received: {}",
                trace.spans.iter().map(describe).collect::<Vec<_>>().join(", ")
            ))
        );
    };
    assert_eq!(
        parent.service,
        "envoy",
        "{}",
        broken(&format!("Envoy's spans must be service `envoy`, not {:?}", parent.service))
    );
    if parent.kind.eq_ignore_ascii_case("server") && parent.parent_span_id.as_deref() == Some(CALLER_SPAN) {
        panic!(
            "{}",
            broken(
                "one Envoy span per request: the worker's parent is the span of what Envoy received; the chain \
                 needs a CLIENT span for what Envoy sent on, under its SERVER span"
            )
        );
    }
    assert!(
        parent.kind.eq_ignore_ascii_case("client"),
        "{}",
        broken(&format!("the worker's parent is Envoy's {} span, not its CLIENT span", parent.kind.to_uppercase()))
    );
    let server = parent.parent_span_id.as_deref().and_then(span);
    assert!(
        server.is_some_and(|server| server.service == "envoy"
            && server.kind.eq_ignore_ascii_case("server")
            && server.parent_span_id.as_deref() == Some(CALLER_SPAN)),
        "{}",
        broken(&format!(
            "Envoy's CLIENT span must be the child of its SERVER span, the caller's ({CALLER_SPAN}) child; lineage \
             received: {}",
            trace.spans.iter().map(describe).collect::<Vec<_>>().join(", ")
        ))
    );

    envoy.stop();
    runtime.block_on(lineage.shutdown());
}
