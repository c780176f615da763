//! The smallest headers of the README's notes for opentelemetry-rust, each
//! given straight to OpenTelemetry's `TraceContextPropagator` (no service):
//! every note still shows what it says, and the project's propagator keeps
//! the rule. A test here that fails against the SDK means a new SDK release
//! fixed a deviation: update the notes.

use std::collections::HashMap;

use opentelemetry::propagation::{TextMapPropagator, text_map_propagator::FieldIter};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use stitch_telemetry::w3c::W3cPropagator;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

fn headers(fields: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in fields {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
            http::HeaderValue::from_str(value).expect("a value"),
        );
    }
    map
}

/// The trace-id a propagator continues from `fields`, if any.
fn continued(propagator: &dyn TextMapPropagator, fields: &[(&str, &str)]) -> Option<String> {
    let cx = propagator.extract(&HeaderExtractor(&headers(fields)));
    let span = cx.span();
    span.span_context().is_valid().then(|| span.span_context().trace_id().to_string())
}

/// What a propagator sends on for the context it extracted from `fields`.
fn sent_on(propagator: &dyn TextMapPropagator, fields: &[(&str, &str)]) -> HashMap<String, String> {
    let cx = propagator.extract(&HeaderExtractor(&headers(fields)));
    let mut out = HashMap::new();
    propagator.inject_context(&cx, &mut out);
    out
}

fn both() -> [(&'static str, Box<dyn TextMapPropagator>); 2] {
    [("sdk", Box::new(TraceContextPropagator::new())), ("project", Box::new(W3cPropagator::new()))]
}

/// Notes 1 to 8: a traceparent the SDK continues and the project does not.
#[test]
fn traceparents_the_sdk_continues() {
    let notes = [
        (1, vec![format!("00-{TRACE}-{PARENT}-01-")], TRACE.to_owned()),
        (2, vec![format!("0-{TRACE}-{PARENT}-01")], TRACE.to_owned()),
        (2, vec![format!("000-{TRACE}-{PARENT}-01")], TRACE.to_owned()),
        (3, vec![format!("CC-{TRACE}-{PARENT}-01")], TRACE.to_owned()),
        (4, vec![format!("00-+{}-{PARENT}-01", &TRACE[1..])], TRACE.to_owned()),
        (5, vec![format!("00-{}-{PARENT}-01", &TRACE[1..])], TRACE.to_owned()),
        (5, vec![format!("00-0{TRACE}-{PARENT}-01")], TRACE.to_owned()),
        (6, vec![format!("00-{TRACE}-+{}-01", &PARENT[1..])], TRACE.to_owned()),
        (6, vec![format!("00-{TRACE}-{}-01", &PARENT[1..])], TRACE.to_owned()),
        (6, vec![format!("00-{TRACE}-0{PARENT}-01")], TRACE.to_owned()),
        (7, vec![format!("00-{TRACE}-{PARENT}-1")], TRACE.to_owned()),
        (7, vec![format!("00-{TRACE}-{PARENT}-001")], TRACE.to_owned()),
        (7, vec![format!("00-{TRACE}-{PARENT}-+1")], TRACE.to_owned()),
        (
            8,
            vec![format!("00-{TRACE}-{PARENT}-01"), format!("00-0af7651916cd43dd8448eb211c80319d-{PARENT}-01")],
            TRACE.to_owned(),
        ),
    ];
    for (note, values, sdk_continues) in notes {
        let fields: Vec<(&str, &str)> = values.iter().map(|value| ("traceparent", value.as_str())).collect();
        assert_eq!(
            continued(&TraceContextPropagator::new(), &fields).as_deref(),
            Some(sdk_continues.as_str()),
            "note {note}: {values:?}"
        );
        assert_eq!(continued(&W3cPropagator::new(), &fields), None, "note {note}: {values:?}");
    }
}

/// Notes 9 and 10: the random-trace-id flag.
#[test]
fn the_random_flag() {
    let flags = |sent: &HashMap<String, String>| sent["traceparent"][53..].to_owned();
    let fields = [("traceparent", format!("00-{TRACE}-{PARENT}-02"))];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(name, value)| (*name, value.as_str())).collect();
    for (name, propagator) in both() {
        let expected = if name == "sdk" { "00" } else { "02" };
        assert_eq!(flags(&sent_on(propagator.as_ref(), &fields)), expected, "note 9, {name}");
    }
}

/// Notes 11 to 18: what each sends on of a tracestate.
#[test]
fn tracestates() {
    let parent = format!("00-{TRACE}-{PARENT}-01");
    let thirty_three = (1..=33).map(|n| format!("k{n}=v")).collect::<Vec<_>>().join(",");
    // The note, the tracestate fields, and what the SDK and the project send on.
    type Note<'a> = (u8, Vec<&'a str>, Option<&'a str>, Option<&'a str>);
    let notes: [Note; 10] = [
        (11, vec!["foo=1", "bar=2"], Some("foo=1"), Some("foo=1,bar=2")),
        (11, vec!["", "foo=1"], Some(""), Some("foo=1")),
        (12, vec![], Some(""), None),
        (13, vec![thirty_three.as_str()], Some(thirty_three.as_str()), None),
        (14, vec!["foo=1, bar=2"], Some(""), Some("foo=1,bar=2")),
        (15, vec!["foo=1,,bar=2"], Some(""), Some("foo=1,bar=2")),
        (15, vec![",foo=1"], Some(""), Some("foo=1")),
        (16, vec!["t@vvvvvvvvvvvvvv=1"], Some(""), Some("t@vvvvvvvvvvvvvv=1")),
        (17, vec!["foo@@bar=1"], Some(""), Some("foo@@bar=1")),
        (18, vec!["foo=,bar=3"], Some("foo=,bar=3"), None),
    ];
    for (note, values, sdk, project) in notes {
        let mut fields = vec![("traceparent", parent.as_str())];
        fields.extend(values.iter().map(|value| ("tracestate", *value)));
        for (name, propagator) in both() {
            let expected = if name == "sdk" { sdk } else { project };
            assert_eq!(
                sent_on(propagator.as_ref(), &fields).get("tracestate").map(String::as_str),
                expected,
                "note {note}, {name}: {values:?}"
            );
        }
    }
}

/// The fields both name: what a carrier that asks `fields()` makes room for.
#[test]
fn both_propagate_the_same_two_fields() {
    let names = |fields: FieldIter<'_>| fields.map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(names(W3cPropagator::new().fields()), ["traceparent", "tracestate"]);
    assert_eq!(names(TraceContextPropagator::new().fields()), names(W3cPropagator::new().fields()));
}
