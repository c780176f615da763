//! The services' propagator through the carriers the flow uses: an HTTP
//! `HeaderMap` (opentelemetry-http's `HeaderExtractor`, which has `get_all`)
//! and a Kafka-like list of headers whose extractor, like step 3's, has only
//! `get` (the first) and `keys` (all of them).

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use proptest::prelude::*;
use stitch_telemetry::w3c::W3cPropagator;
use stitch_telemetry::w3c::http_fields::readable;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4737";

fn traceparent(trace: &str, flags: &str) -> String {
    format!("00-{trace}-00f067aa0ba902b7-{flags}")
}

fn http(headers: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            http::HeaderValue::from_str(value).expect("a header value"),
        );
    }
    map
}

/// Kafka headers as step 3's extractor reads them: `get` returns the first
/// of a name, `keys` lists every header; no `get_all`.
struct FirstOnly(Vec<(String, String)>);

impl FirstOnly {
    fn new(headers: &[(&str, &str)]) -> FirstOnly {
        FirstOnly(headers.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect())
    }
}

impl Extractor for FirstOnly {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, value)| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_str()).collect()
    }
}

fn extract(extractor: &dyn Extractor) -> Context {
    W3cPropagator::new().extract(extractor)
}

fn continued(cx: &Context) -> Option<TraceId> {
    let span = cx.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id())
}

fn trace(hex: &str) -> Option<TraceId> {
    Some(TraceId::from_hex(hex).expect("hex"))
}

/// What inject writes for `cx`, by header name.
fn inject(cx: &Context) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    W3cPropagator::new().inject_context(cx, &mut headers);
    headers
}

fn flags(headers: &HashMap<String, String>) -> u8 {
    let value = &headers["traceparent"];
    u8::from_str_radix(&value[53..], 16).expect("hex flags")
}

#[test]
fn one_valid_traceparent_is_continued_through_either_carrier() {
    let value = traceparent(TRACE, "01");
    assert_eq!(continued(&extract(&HeaderExtractor(&http(&[("traceparent", &value)])))), trace(TRACE));
    assert_eq!(continued(&extract(&FirstOnly::new(&[("traceparent", &value)]))), trace(TRACE));
}

#[test]
fn two_traceparents_start_a_new_trace_even_where_the_carrier_shows_one() {
    let (first, second) = (traceparent(TRACE, "01"), traceparent(OTHER_TRACE, "01"));
    let both = [("traceparent", first.as_str()), ("traceparent", second.as_str())];
    // HeaderExtractor::get returns the first; its get_all returns both.
    assert_eq!(HeaderExtractor(&http(&both)).get("traceparent"), Some(first.as_str()));
    assert_eq!(continued(&extract(&HeaderExtractor(&http(&both)))), None);
    // Step 3's extractor has no get_all; its keys list both.
    assert_eq!(FirstOnly::new(&both).get_all("traceparent"), Some(vec![first.as_str()]));
    assert_eq!(continued(&extract(&FirstOnly::new(&both))), None);
    let cased = [("traceparent", first.as_str()), ("TraceParent", second.as_str())];
    assert_eq!(continued(&extract(&FirstOnly::new(&cased))), None, "names compare case-insensitively");
}

#[test]
fn a_comma_joined_pair_in_one_field_starts_a_new_trace() {
    let joined = format!("{},{}", traceparent(TRACE, "01"), traceparent(OTHER_TRACE, "01"));
    assert_eq!(continued(&extract(&HeaderExtractor(&http(&[("traceparent", &joined)])))), None);
}

#[test]
fn a_traceparent_that_is_not_text_starts_a_new_trace() {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", http::HeaderValue::from_bytes(b"00-\xff").expect("bytes are a value"));
    assert_eq!(continued(&extract(&HeaderExtractor(&headers))), None);
}

/// opentelemetry-http's `HeaderExtractor` skips a value that is not visible
/// ASCII; the services' servers show it through `http_fields::readable`.
#[test]
fn an_unreadable_field_beside_a_valid_one_is_seen() {
    let valid = traceparent(TRACE, "01");
    let unreadable = http::HeaderValue::from_bytes(b"00-\xff").expect("bytes are a value");
    for unreadable_first in [true, false] {
        let mut headers = http::HeaderMap::new();
        if unreadable_first {
            headers.append("traceparent", unreadable.clone());
        }
        headers.append("traceparent", http::HeaderValue::from_str(&valid).expect("a value"));
        if !unreadable_first {
            headers.append("traceparent", unreadable.clone());
        }
        assert_eq!(HeaderExtractor(&headers).get_all("traceparent"), Some(vec![valid.as_str()]), "hidden as is");
        assert_eq!(continued(&extract(&HeaderExtractor(&readable(&headers)))), None, "first: {unreadable_first}");
    }
    let mut headers = http(&[("traceparent", &valid), ("tracestate", "foo=1")]);
    headers.append("tracestate", unreadable);
    let cx = extract(&HeaderExtractor(&readable(&headers)));
    assert_eq!(continued(&cx), trace(TRACE), "an unreadable tracestate does not restart the trace");
    assert_eq!(inject(&cx).get("tracestate"), None, "and is not half sent on");
}

#[test]
fn an_invalid_traceparent_leaves_the_given_context_as_it_was() {
    let span_id = SpanId::from_hex("0000000000000007").expect("hex");
    let local =
        SpanContext::new(trace(OTHER_TRACE).expect("hex"), span_id, TraceFlags::SAMPLED, false, TraceState::NONE);
    let cx = Context::new().with_remote_span_context(local);
    let invalid = traceparent(&TRACE[1..], "01");
    let extracted =
        W3cPropagator::new().extract_with_context(&cx, &HeaderExtractor(&http(&[("traceparent", &invalid)])));
    assert_eq!(continued(&extracted), trace(OTHER_TRACE), "no new value stored in the context");
}

#[test]
fn tracestate_fields_are_combined_and_sent_on_whole() {
    let parent = traceparent(TRACE, "01");
    let headers = http(&[
        ("traceparent", &parent),
        ("tracestate", "foo=1, bar=2"),
        ("tracestate", ""),
        ("tracestate", "t@vvvvvvvvvvvvvv=3,foo@@bar=4"),
    ]);
    let sent = inject(&extract(&HeaderExtractor(&headers)));
    assert_eq!(
        sent["tracestate"], "foo=1,bar=2,t@vvvvvvvvvvvvvv=3,foo@@bar=4",
        "keys OpenTelemetry's TraceState refuses included"
    );
}

#[test]
fn tracestate_fields_a_carrier_hides_are_dropped_not_half_sent() {
    let parent = traceparent(TRACE, "01");
    let carrier = FirstOnly::new(&[("traceparent", &parent), ("tracestate", "foo=1"), ("tracestate", "bar=2")]);
    let cx = extract(&carrier);
    assert_eq!(continued(&cx), trace(TRACE), "the trace goes on");
    assert_eq!(inject(&cx).get("tracestate"), None);
}

#[test]
fn an_invalid_tracestate_is_dropped_and_the_trace_goes_on() {
    let parent = traceparent(TRACE, "01");
    for tracestate in ["foo=1,BAR=2", "foo=", "foo", &(1..=33).map(|n| format!("k{n}=v")).collect::<Vec<_>>().join(",")]
    {
        let cx = extract(&HeaderExtractor(&http(&[("traceparent", &parent), ("tracestate", tracestate)])));
        assert_eq!(continued(&cx), trace(TRACE), "{tracestate:?}");
        assert_eq!(inject(&cx).get("tracestate"), None, "{tracestate:?}");
    }
}

#[test]
fn no_empty_tracestate_is_sent() {
    let cx = extract(&HeaderExtractor(&http(&[("traceparent", &traceparent(TRACE, "01"))])));
    let sent = inject(&cx);
    assert!(sent.contains_key("traceparent"));
    assert_eq!(sent.get("tracestate"), None);
}

#[test]
fn nothing_is_sent_without_a_valid_span_context() {
    assert!(inject(&Context::new()).is_empty());
}

#[test]
fn a_tracestate_changed_in_the_process_is_sent_as_changed_and_at_most_32_members() {
    let cx = extract(&HeaderExtractor(&http(&[("traceparent", &traceparent(TRACE, "01")), ("tracestate", "foo=1")])));
    let span = cx.span();
    let received = span.span_context();
    let many = (1..=40).map(|n| (format!("k{n}"), "v".to_owned()));
    let changed = SpanContext::new(
        received.trace_id(),
        received.span_id(),
        received.trace_flags(),
        false,
        TraceState::from_key_value(many).expect("valid members"),
    );
    let sent = inject(&cx.with_remote_span_context(changed));
    let members: Vec<&str> = sent["tracestate"].split(',').collect();
    assert_eq!(members.len(), 32);
    assert_eq!((members[0], members[31]), ("k1=v", "k32=v"), "the right-most are removed");
}

#[test]
fn the_random_flag_of_a_received_context_is_kept_and_unknown_flags_zeroed() {
    for (incoming, outgoing) in [("00", 0x00), ("01", 0x01), ("02", 0x02), ("03", 0x03), ("fd", 0x01), ("fe", 0x02)] {
        let cx = extract(&HeaderExtractor(&http(&[("traceparent", &traceparent(TRACE, incoming))])));
        assert_eq!(flags(&inject(&cx)), outgoing, "incoming flags {incoming}");
    }
}

/// The SDK's spans: a recording child of a sampled parent, a dropped child
/// of an unsampled one, and a root of this process.
#[test]
fn spans_of_the_sdk_keep_the_random_flag_of_their_trace() {
    let provider = SdkTracerProvider::builder().with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))).build();
    let tracer = provider.tracer("w3c");
    for (incoming, outgoing) in [("03", 0x03), ("02", 0x02), ("01", 0x01), ("00", 0x00)] {
        let parent = extract(&HeaderExtractor(&http(&[("traceparent", &traceparent(TRACE, incoming))])));
        let child = parent.with_span(tracer.start_with_context("child", &parent));
        let sent = inject(&child);
        assert_eq!(&sent["traceparent"][3..35], TRACE);
        assert_eq!(flags(&sent), outgoing, "child of incoming flags {incoming}");
    }
    let root = Context::new().with_span(tracer.start_with_context("root", &Context::new()));
    assert_eq!(flags(&inject(&root)), 0x03, "a new trace: sampled, and random (the SDK's id generator)");
}

#[test]
fn a_future_version_is_sent_on_as_version_00() {
    let value = format!("cc-{TRACE}-00f067aa0ba902b7-01-what-the-future-will-be-like");
    let sent = inject(&extract(&HeaderExtractor(&http(&[("traceparent", &value)]))));
    assert!(sent["traceparent"].starts_with(&format!("00-{TRACE}-")), "{sent:?}");
}

/// Writes the debug log of the code it runs into a buffer.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_kind_of_violation_is_logged_once_at_debug_level() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let propagator = W3cPropagator::new();
    tracing::subscriber::with_default(subscriber, || {
        for short in ["00-4bf9-00f067aa0ba902b7-01", "00-4bf92f35-00f067aa0ba902b7-01", "00-4-0-01"] {
            propagator.extract(&HeaderExtractor(&http(&[("traceparent", short)])));
        }
        propagator
            .extract(&HeaderExtractor(&http(&[("traceparent", &traceparent(TRACE, "01")), ("tracestate", "FOO=1")])));
        propagator
            .extract(&HeaderExtractor(&http(&[("traceparent", &traceparent(TRACE, "01")), ("tracestate", "BAR=1")])));
    });
    let text = String::from_utf8(log.0.lock().expect("log lock").clone()).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("DEBUG") && lines[0].contains("trace-id = 32HEXDIGLC"), "{}", lines[0]);
    assert!(
        lines[0].contains("00-4bf9-00f067aa0ba902b7-01") && lines[0].contains("a new trace starts"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("tracestate: key") && lines[1].contains("the trace goes on"), "{}", lines[1]);
}

#[test]
fn nothing_is_logged_or_spent_when_debug_is_off() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_writer(move || writer.clone()).finish();
    let propagator = W3cPropagator::new();
    tracing::subscriber::with_default(subscriber, || {
        propagator.extract(&HeaderExtractor(&http(&[("traceparent", "garbage")])));
    });
    assert!(log.0.lock().expect("log lock").is_empty());
    // Turned on later, the first violation of that kind is still said.
    let writer = log.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, || {
        propagator.extract(&HeaderExtractor(&http(&[("traceparent", "garbage")])));
    });
    assert!(!log.0.lock().expect("log lock").is_empty());
}

/// The trace-id of `value` when the spec's rules accept it, written
/// independently of the propagator's parser: split on `-`, not positional.
fn spec_valid(value: &str) -> Option<String> {
    let value = value.trim_matches([' ', '\t']);
    let lower_hex =
        |field: &str, len: usize| field.len() == len && field.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let version = value.get(0..2)?;
    if !lower_hex(version, 2) || version == "ff" {
        return None;
    }
    // A later version: its first 55 characters, then the end or a dash.
    let head = match version {
        "00" => value,
        _ => value.get(0..55).filter(|_| value.len() == 55 || value[55..].starts_with('-'))?,
    };
    let fields: Vec<&str> = head.split('-').collect();
    let [version, trace, parent, flags] = fields.as_slice() else { return None };
    let zero = |field: &str| field.bytes().all(|b| b == b'0');
    (version.len() == 2
        && lower_hex(trace, 32)
        && lower_hex(parent, 16)
        && lower_hex(flags, 2)
        && !zero(trace)
        && !zero(parent))
    .then(|| trace.to_string())
}

/// A valid version-00 traceparent's parts: trace-id, parent-id, flags.
fn valid_parts() -> impl Strategy<Value = (String, String, u8)> {
    ("[0-9a-f]{32}", "[0-9a-f]{16}", any::<u8>()).prop_filter("ids not all zero", |(trace, parent, _)| {
        trace.bytes().any(|b| b != b'0') && parent.bytes().any(|b| b != b'0')
    })
}

proptest! {
    /// Whatever a carrier holds, extract and inject return: no panic.
    #[test]
    fn any_header_values_are_survived(traceparent in any::<String>(), tracestate in any::<String>()) {
        let headers = HashMap::from([("traceparent".to_owned(), traceparent), ("tracestate".to_owned(), tracestate)]);
        let cx = extract(&headers);
        inject(&cx);
    }

    /// Near misses of a valid value: one byte changed, inserted or removed.
    #[test]
    fn a_changed_byte_is_continued_only_when_the_grammar_still_holds(
        (trace, parent, flags) in valid_parts(),
        at in 0usize..55,
        byte in prop::sample::select(b"0123456789abcdefABCDEF-+_ .,gz\t".to_vec()),
        edit in 0u8..3,
    ) {
        let mut value = format!("00-{trace}-{parent}-{flags:02x}").into_bytes();
        match edit {
            0 => value[at] = byte,
            1 => value.insert(at, byte),
            _ => { value.remove(at); }
        }
        let value = String::from_utf8(value).expect("ASCII");
        let headers = HashMap::from([("traceparent".to_owned(), value.clone())]);
        let strict = continued(&extract(&headers));
        prop_assert_eq!(strict, spec_valid(&value).map(|trace| TraceId::from_hex(&trace).expect("hex")), "{:?}", value);
    }

    /// What the rules accept, OpenTelemetry's parser accepts with the same
    /// ids: the SDK is never handed a context it refuses.
    #[test]
    fn the_sdk_agrees_with_every_valid_traceparent((trace, parent, flags) in valid_parts()) {
        let value = format!("00-{trace}-{parent}-{flags:02x}");
        let headers = HashMap::from([("traceparent".to_owned(), value)]);
        let sdk = TraceContextPropagator::new().extract(&headers);
        let strict = extract(&headers);
        prop_assert_eq!(continued(&strict), continued(&sdk));
        prop_assert_eq!(strict.span().span_context().span_id(), sdk.span().span_context().span_id());
        prop_assert_eq!(strict.span().span_context().is_sampled(), flags & 1 == 1);
    }
}
