//! `POST /api/reset` and `/api/settle` from a peer that is not loopback: a
//! network namespace of the test's own, since this machine reaches no other
//! host. Needs root and iproute2; without them the test fails and says why.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::netns::{Namespace, post_from_loopback};
use common::*;
use lineage::{Config, Lineage};

/// Lineage listening on this host's end of the pair only.
async fn start_on(namespace: &Namespace, allow_remote_reset: bool) -> Lineage {
    let http_addr = SocketAddr::from((namespace.host_addr, 0));
    let grpc_addr = SocketAddr::from((namespace.host_addr, 0));
    // Nothing settles by itself while the test runs.
    let (quiet_period, max_age) = (Duration::from_secs(600), Duration::from_secs(600));
    let config = Config { http_addr, grpc_addr, allow_remote_reset, quiet_period, max_age, ..Config::ephemeral() };
    Lineage::start(config).await.expect("lineage listens on the host's end of the pair")
}

fn hold_one_trace(lineage: &Lineage) -> u64 {
    lineage.with_store(|store| store.ingest_now(&request(connected_chain(1, 0, "1001"))));
    lineage.report().spans_received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_loopback_cannot_reset_or_settle() {
    let namespace = Namespace::create().unwrap_or_else(|why| {
        panic!("cannot make a network namespace, so this test cannot show a peer that is not loopback: {why}")
    });
    let lineage = start_on(&namespace, false).await;
    let to = lineage.http_addr();
    let held = hold_one_trace(&lineage);
    assert!(held > 0);

    for path in ["/api/reset", "/api/settle"] {
        let (status, body) = tokio::task::block_in_place(|| namespace.post(to, path, &[])).expect(path);
        assert_eq!(status, 403, "{path} from {}: {body}", namespace.peer_addr);
        assert!(body.contains(&format!("{} is not a loopback address", namespace.peer_addr)), "{body}");
        assert!(body.contains("--allow-remote-reset"), "{body}");
    }
    let report = lineage.report();
    assert_eq!(report.spans_received, held, "nothing was forgotten");
    assert_eq!(report.traces_open, 1, "nothing was settled");

    // The same instance, from a loopback peer: the harness's way still works.
    let (status, body) = post_from_loopback(to, "/api/reset", &[]).await.expect("loopback POST");
    assert_eq!((status, body.as_str()), (200, "reset\n"));
    assert_eq!(lineage.report().spans_received, 0);
    lineage.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_remote_reset_lets_that_peer_reset() {
    let namespace = Namespace::create().unwrap_or_else(|why| {
        panic!("cannot make a network namespace, so this test cannot show a peer that is not loopback: {why}")
    });
    let lineage = start_on(&namespace, true).await;
    hold_one_trace(&lineage);
    let (status, body) =
        tokio::task::block_in_place(|| namespace.post(lineage.http_addr(), "/api/reset", &[])).expect("POST");
    assert_eq!((status, body.as_str()), (200, "reset\n"));
    assert_eq!(lineage.report().spans_received, 0);

    // A web page is refused whatever the flag says.
    hold_one_trace(&lineage);
    let origin = [("origin", "http://attacker.example")];
    let (status, body) =
        tokio::task::block_in_place(|| namespace.post(lineage.http_addr(), "/api/reset", &origin)).expect("POST");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("sent by a web page"), "{body}");
    assert!(lineage.report().spans_received > 0);
    lineage.shutdown().await;
}
