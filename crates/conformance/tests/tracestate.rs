//! `tracestate`, one test per rule of W3C Trace Context Level 1
//! (https://www.w3.org/TR/trace-context/#tracestate-header) and, where
//! marked, Level 2. Run against the project's propagator; with
//! `STITCH_CONFORMANCE_PROPAGATOR=sdk`, against OpenTelemetry's alone, where
//! each rule it breaks fails, and its doc says what it measurably does instead
//! (crates/conformance/README.md).

mod common;

use common::{PARENT_ID, Received, assert_continued, run_one, traceparent};

/// One test case: a valid, unsampled traceparent plus these tracestate headers.
async fn with_tracestate(values: &[&str]) -> Received {
    let parent = traceparent("00");
    let mut headers = vec![("traceparent", parent.as_str())];
    headers.extend(values.iter().map(|value| ("tracestate", *value)));
    let received = run_one(&headers).await;
    assert_continued(&received);
    received
}

fn members(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
}

#[tokio::test]
async fn it_is_propagated_unchanged_with_a_valid_traceparent() {
    let received = with_tracestate(&["foo=1,bar=2"]).await;
    assert_eq!(received.tracestate(), members(&[("foo", "1"), ("bar", "2")]));
}

/// A vendor that fails to parse traceparent MUST NOT parse tracestate.
#[tokio::test]
async fn it_is_dropped_with_an_invalid_traceparent() {
    let invalid = format!("00-{}-{PARENT_ID}-01", "0".repeat(32));
    let received = run_one(&[("traceparent", &invalid), ("tracestate", "foo=1")]).await;
    assert_eq!(received.tracestate(), [], "tracestate of a rejected traceparent was sent on");
}

/// tracestate without traceparent is invalid and MUST be discarded.
#[tokio::test]
async fn it_is_dropped_without_a_traceparent() {
    let received = run_one(&[("tracestate", "foo=1,bar=2")]).await;
    assert_eq!(received.tracestate(), []);
}

#[tokio::test]
async fn the_header_name_is_case_insensitive() {
    for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
        let parent = traceparent("00");
        let received = run_one(&[("traceparent", &parent), (name, "foo=1")]).await;
        assert_eq!(received.tracestate_value("foo").as_deref(), Some("1"), "header name {name}");
    }
}

#[tokio::test]
async fn other_header_names_are_not_read() {
    for name in ["trace-state", "trace.state"] {
        let parent = traceparent("00");
        let received = run_one(&[("traceparent", &parent), (name, "foo=1")]).await;
        assert_eq!(received.tracestate(), [], "header name {name}");
    }
}

/// Multiple tracestate headers MUST be combined, in order (RFC 9110 §5.3).
/// The SDK's propagator alone breaks it: the propagator reads one tracestate header (HeaderExtractor::get returns
/// the first): `foo=1,bar=2` goes out, `rojo=1,congo=2` and `baz=3` are lost
#[tokio::test]
async fn several_headers_are_combined_in_order() {
    let received = with_tracestate(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]).await;
    assert_eq!(
        received.tracestate(),
        members(&[("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")])
    );
}

/// Vendors MUST accept empty tracestate headers.
#[tokio::test]
async fn an_empty_header_is_accepted() {
    let received = with_tracestate(&[""]).await;
    assert_eq!(received.tracestate(), []);
}

/// An empty header beside a full one adds nothing, in either order.
/// The SDK's propagator alone breaks it: only the first tracestate header is read: with an empty header before
/// `foo=1` no member goes out (`foo=1` then an empty header passes)
#[tokio::test]
async fn an_empty_header_beside_another_leaves_it_intact() {
    for values in [["foo=1", ""], ["", "foo=1"]] {
        let received = with_tracestate(&values).await;
        assert_eq!(received.tracestate(), members(&[("foo", "1")]), "headers {values:?}");
    }
}

/// Vendors SHOULD avoid sending empty tracestate headers.
/// The SDK's propagator alone breaks it (SHOULD): the propagator always injects tracestate, so a trace without
/// one goes out with an empty `tracestate: ` header
#[tokio::test]
async fn no_empty_header_is_sent() {
    let received = run_one(&[("traceparent", &traceparent("01"))]).await;
    assert!(!received.values("tracestate").contains(&""), "sent {:?}", received.headers);
}

fn numbered(count: usize) -> String {
    (1..=count).map(|n| format!("bar{n:02}={n:02}")).collect::<Vec<_>>().join(",")
}

#[tokio::test]
async fn thirty_two_members_are_propagated() {
    let received = with_tracestate(&[&numbered(32)]).await;
    assert_eq!(received.tracestate().len(), 32);
    assert_eq!(received.tracestate_value("bar01").as_deref(), Some("01"));
}

/// A list has at most 32 members; the suite expects 33 to be discarded,
/// Level 2 to lose the right-most: either way no more than 32 go out.
/// The SDK's propagator alone breaks it: TraceState::from_str has no member limit: all 33 members go out
#[tokio::test]
async fn no_more_than_thirty_two_members_are_propagated() {
    let received = with_tracestate(&[&numbered(33)]).await;
    let count = received.tracestate().len();
    assert!(count <= 32, "{count} members sent on");
}

/// Spaces and tabs around list members are ignored.
/// The SDK's propagator alone breaks it: TraceState::from_str does not trim OWS around members, so ` \t bar` is
/// an invalid key and the whole tracestate is dropped (nothing goes out)
#[tokio::test]
async fn whitespace_around_members_is_ignored() {
    for value in ["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"] {
        let received = with_tracestate(&[value]).await;
        assert_eq!(received.tracestate(), members(&[("foo", "1"), ("bar", "2"), ("baz", "3")]), "{value:?}");
    }
}

#[tokio::test]
async fn whitespace_at_the_ends_of_the_header_is_ignored() {
    for value in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
        let received = with_tracestate(&[value]).await;
        assert_eq!(received.tracestate(), members(&[("foo", "1")]), "{value:?}");
    }
}

/// Empty and whitespace-only list members are allowed.
/// The SDK's propagator alone breaks it: TraceState::from_str rejects a member without '=', so `foo=1,,bar=2` and
/// `foo=1, ,bar=2` drop the whole tracestate (nothing goes out)
#[tokio::test]
async fn empty_members_are_allowed() {
    for value in ["foo=1,,bar=2", "foo=1, ,bar=2", "foo=1,\t,bar=2"] {
        let received = with_tracestate(&[value]).await;
        assert_eq!(received.tracestate(), members(&[("foo", "1"), ("bar", "2")]), "{value:?}");
    }
}

/// The SDK's propagator alone breaks it: the empty member before `,foo=1` has no '=' and TraceState::from_str
/// drops the whole tracestate (nothing goes out)
#[tokio::test]
async fn a_leading_comma_is_an_empty_member() {
    let received = with_tracestate(&[",foo=1"]).await;
    assert_eq!(received.tracestate(), members(&[("foo", "1")]));
}

#[tokio::test]
async fn a_trailing_comma_is_an_empty_member() {
    let received = with_tracestate(&["foo=1,"]).await;
    assert_eq!(received.tracestate(), members(&[("foo", "1")]));
}

/// Keys are lower-case letters, digits and `_-*/@`, starting with a letter or
/// digit; a key outside the grammar is never sent on.
#[tokio::test]
async fn keys_outside_the_grammar_are_not_propagated() {
    for (value, key) in [("foo =1", "foo "), ("FOO=1", "FOO"), ("foo.bar=1", "foo.bar"), ("@foo=1,bar=2", "@foo")] {
        let received = with_tracestate(&[value]).await;
        assert_eq!(received.tracestate_value(key), None, "{value:?}");
    }
}

/// The suite's reading: a list with a key that starts with `@` is discarded.
#[tokio::test]
async fn a_list_with_a_key_starting_with_an_at_sign_is_discarded() {
    let received = with_tracestate(&["@foo=1,bar=2"]).await;
    assert_eq!(received.tracestate(), []);
}

#[tokio::test]
async fn keys_of_256_characters_are_kept_and_of_257_dropped() {
    let longest = "z".repeat(256);
    let received = with_tracestate(&[&format!("foo=1,{longest}=1")]).await;
    assert_eq!(received.tracestate(), members(&[("foo", "1"), (&longest, "1")]));
    let received = with_tracestate(&[&format!("foo=1,{}=1", "z".repeat(257))]).await;
    assert_eq!(received.tracestate_value(&"z".repeat(257)), None);
}

/// Level 1: tenant-id is up to 241 characters and system-id up to 14.
/// The SDK's propagator alone breaks it: TraceState::valid_key rejects a key when 14 or more characters follow
/// the '@' (off by one: the grammar allows a 14-character system-id), and the whole tracestate is dropped
#[tokio::test]
async fn multi_tenant_keys_of_the_longest_system_id_are_kept() {
    for key in [format!("{}@{}", "t".repeat(241), "v".repeat(14)), format!("t@{}", "v".repeat(14))] {
        let received = with_tracestate(&[&format!("foo=1,{key}=1")]).await;
        assert_eq!(received.tracestate(), members(&[("foo", "1"), (&key, "1")]), "key {key}");
    }
}

#[tokio::test]
async fn multi_tenant_keys_within_the_limits_are_kept() {
    for key in ["foo@bar", "0a@b", "t@vvvvvvvvvvvvv"] {
        let received = with_tracestate(&[&format!("foo=1,{key}=1")]).await;
        assert_eq!(received.tracestate(), members(&[("foo", "1"), (key, "1")]), "key {key}");
    }
}

/// Level 2: `@` is one more key character, anywhere after the first.
/// The SDK's propagator alone breaks it (Level 2): valid_key keeps Level 1's tenant@system shape: `foo@=1,bar=2`
/// goes out, but `foo@@bar`, `foo@bar@baz` (a second '@') and `t@` + 15 characters drop the whole tracestate
#[tokio::test]
async fn level_2_keys_with_at_signs_anywhere_are_kept() {
    for key in ["foo@", "foo@@bar", "foo@bar@baz", &format!("t@{}", "v".repeat(15))] {
        let received = with_tracestate(&[&format!("{key}=1,bar=2")]).await;
        assert_eq!(received.tracestate(), members(&[(key, "1"), ("bar", "2")]), "key {key}");
    }
}

/// A value cannot hold `=` or `,`.
#[tokio::test]
async fn a_value_with_an_equals_sign_is_not_propagated() {
    let received = with_tracestate(&["foo=bar=baz"]).await;
    assert_eq!(received.tracestate_value("foo"), None);
}

/// value = 0*255(chr) nblk-chr: at least one character, the suite discards
/// the list.
/// The SDK's propagator alone breaks it: TraceState::valid_value only refuses ',' and '=': `foo=,bar=3` goes out
/// as `foo=,bar=3`
#[tokio::test]
async fn an_empty_value_is_not_propagated() {
    let received = with_tracestate(&["foo=,bar=3"]).await;
    assert_eq!(received.tracestate_value("foo"), None, "sent {:?}", received.tracestate());
}

#[tokio::test]
async fn values_of_256_characters_are_kept_and_of_257_dropped() {
    let longest = "v".repeat(256);
    let received = with_tracestate(&[&format!("foo={longest}")]).await;
    assert_eq!(received.tracestate_value("foo"), Some(longest));
    let received = with_tracestate(&[&format!("foo={}", "v".repeat(257))]).await;
    assert_eq!(received.tracestate_value("foo"), None);
}

/// Every character the grammar allows, in keys and in values.
#[tokio::test]
async fn every_allowed_character_is_propagated() {
    let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let value: String = (0x20u8..=0x7e).filter(|b| *b != b',' && *b != b'=').map(char::from).collect();
    for key in [key.to_owned(), format!("{key}@a-z0-9_-*/")] {
        let received = with_tracestate(&[&format!("{key}={value}")]).await;
        assert_eq!(received.tracestate_value(&key).as_deref(), Some(value.as_str()), "key {key}");
    }
}

/// Duplicate keys are the sender's fault: the trace goes on, and one or both
/// entries with it.
#[tokio::test]
async fn duplicate_keys_do_not_break_the_trace() {
    for values in [&["foo=1,foo=1"][..], &["foo=1,foo=2"], &["foo=1", "foo=1"], &["foo=1", "foo=2"]] {
        let received = with_tracestate(values).await;
        assert!(received.tracestate_value("foo").is_some(), "{values:?} sent {:?}", received.tracestate());
    }
}

/// Failing to parse tracestate MUST NOT affect traceparent.
#[tokio::test]
async fn an_invalid_tracestate_does_not_restart_the_trace() {
    for value in ["FOO=1", "foo", "foo=bar=baz", ","] {
        // with_tracestate asserts the trace was continued
        with_tracestate(&[value]).await;
    }
}
