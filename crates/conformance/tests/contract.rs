//! The test-service contract of github.com/w3c/trace-context (`test/`): what
//! the service does with the list it is sent, and with bad input.

mod common;

use common::{Capture, post_raw, start_service};

#[tokio::test]
async fn each_call_gets_its_arguments_as_body_in_list_order() {
    let service = start_service().await;
    let capture = Capture::start().await;
    let nested = serde_json::json!([{ "url": "http://127.0.0.1:9/next", "arguments": [] }]);
    let calls = serde_json::json!([
        { "url": capture.url("0"), "arguments": nested },
        { "url": capture.url("1"), "arguments": [] },
    ]);
    let answer = post_raw(service, &[], calls.to_string().as_bytes()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let bodies: Vec<serde_json::Value> = capture.received().into_iter().map(|received| received.body).collect();
    assert_eq!(bodies, [nested, serde_json::json!([])]);
    assert!(answer.body.contains("\"status\":200"), "the answer lists each call's status: {answer:?}");
}

#[tokio::test]
async fn an_empty_list_is_answered_with_no_calls() {
    let service = start_service().await;
    let answer = post_raw(service, &[], b"[]").await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn a_body_that_is_not_a_json_list_is_a_400_with_a_message() {
    let service = start_service().await;
    for body in [&b"not json"[..], b"{\"url\": \"http://127.0.0.1:9/\", \"arguments\": []}", b"[1, 2]", b""] {
        let answer = post_raw(service, &[], body).await;
        assert_eq!(answer.status, 400, "body {:?}: {answer:?}", String::from_utf8_lossy(body));
        assert!(answer.body.contains("JSON list"), "body {:?}: {answer:?}", String::from_utf8_lossy(body));
    }
}

#[tokio::test]
async fn an_item_without_url_or_arguments_is_a_400() {
    let service = start_service().await;
    for body in [r#"[{"arguments": []}]"#, r#"[{"url": "http://127.0.0.1:9/"}]"#] {
        let answer = post_raw(service, &[], body.as_bytes()).await;
        assert_eq!(answer.status, 400, "body {body}: {answer:?}");
    }
}

/// A bad item anywhere stops the whole list before any call is made.
#[tokio::test]
async fn a_url_that_is_not_http_is_a_400_and_nothing_is_called() {
    let service = start_service().await;
    let capture = Capture::start().await;
    for url in ["not a url", "ftp://127.0.0.1/x"] {
        let calls = serde_json::json!([
            { "url": capture.url("0"), "arguments": [] },
            { "url": url, "arguments": [] },
        ]);
        let answer = post_raw(service, &[], calls.to_string().as_bytes()).await;
        assert_eq!(answer.status, 400, "url {url}: {answer:?}");
        assert!(answer.body.contains("item 1"), "the message names the item: {answer:?}");
    }
    assert_eq!(capture.received().len(), 0);
}

/// A callee that cannot be reached is reported, and the other calls are made.
#[tokio::test]
async fn an_unreachable_url_is_a_502_naming_it() {
    let service = start_service().await;
    let capture = Capture::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address")
    };
    let unreachable = format!("http://{closed}/gone");
    let calls = serde_json::json!([
        { "url": unreachable, "arguments": [] },
        { "url": capture.url("1"), "arguments": [] },
    ]);
    let answer = post_raw(service, &[], calls.to_string().as_bytes()).await;
    assert_eq!(answer.status, 502, "{answer:?}");
    assert!(answer.body.contains(&unreachable), "{answer:?}");
    assert_eq!(capture.received().len(), 1, "the call after the failed one was not made");
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let port = taken.local_addr().expect("its address").port();
    let err = stitch_conformance::listen::bind(port).await.expect_err("the port is taken");
    assert!(err.to_string().contains("already in use"), "{err}");
}
