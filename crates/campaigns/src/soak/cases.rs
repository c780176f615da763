//! The fuzz's cases: trace context headers, well-formed and not, generated
//! from a seed so that a run can be replayed case for case.

use serde::{Deserialize, Serialize};

use super::w3c::{Traceparent, traceparent as parse_traceparent};

/// Where a case goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Edge {
    /// `POST /orders` on the gateway: the edge, which continues no caller's trace.
    Gateway,
    /// `POST /work` straight to the worker, which continues a valid context.
    Worker,
    /// A message produced to the orders topic, read by the consumer.
    Consumer,
    /// The same, produced by a client that is not librdkafka: Apache
    /// Kafka's Java client (`infra/kafka/ForeignProducer.java`).
    Foreign,
}

impl Edge {
    /// The service whose entry span the case lands in, and that span's kind.
    pub fn entry_span(self) -> (&'static str, &'static str) {
        match self {
            Edge::Gateway => ("gateway", "server"),
            Edge::Worker => ("worker", "server"),
            Edge::Consumer | Edge::Foreign => ("consumer", "consumer"),
        }
    }

    /// The spans an accepted case leaves, of the `spans_per_request` a whole
    /// order has: all at the gateway; at the worker all but the gateway's
    /// server and client spans; at the consumer its process span.
    pub fn spans_per_case(self, spans_per_request: u64) -> u64 {
        match self {
            Edge::Gateway => spans_per_request,
            Edge::Worker => spans_per_request.saturating_sub(2),
            Edge::Consumer | Edge::Foreign => 1,
        }
    }
}

/// What the case's entry span may do by the W3C rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Continue this valid context, or start a new trace.
    MayContinue(Traceparent),
    /// Start a new trace: the context is invalid, absent, given twice, or
    /// the edge trusts no caller.
    NewRoot,
}

/// A header as a case sends it: its name, and its value (a Kafka header
/// may have none).
pub type ContextHeader = (String, Option<Vec<u8>>);

/// One case: its headers in order (a name may repeat; a Kafka header may
/// have no value).
#[derive(Debug, Clone)]
pub struct Case {
    pub index: usize,
    pub edge: Edge,
    /// What the case varies, e.g. `traceparent: upper case`.
    pub kind: &'static str,
    pub headers: Vec<ContextHeader>,
}

impl Expect {
    /// Whether the service may record nothing: it continued a valid context
    /// whose caller does not sample.
    pub fn may_record_nothing(&self) -> bool {
        match self {
            Expect::MayContinue(parent) => !parent.sampled,
            Expect::NewRoot => false,
        }
    }

    /// Whether continuing `trace_id` is allowed.
    pub fn may_continue(&self, trace_id: &str) -> bool {
        match self {
            Expect::MayContinue(parent) => parent.trace_id == trace_id,
            Expect::NewRoot => false,
        }
    }
}

impl Case {
    /// The W3C verdict on the case's context at its edge.
    pub fn expect(&self) -> Expect {
        if self.edge == Edge::Gateway {
            return Expect::NewRoot;
        }
        let parents: Vec<&Option<Vec<u8>>> =
            self.headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case("traceparent")).map(|(_, v)| v).collect();
        match parents.as_slice() {
            [one] => one.as_deref().and_then(parse_traceparent).map_or(Expect::NewRoot, Expect::MayContinue),
            // None, or several: traceparent is no list (RFC 9110 §5.3), so
            // two are no valid context whatever each says (the W3C suite's
            // test_traceparent_duplicated).
            _ => Expect::NewRoot,
        }
    }
}

/// `count` cases from `seed`: two in five to the gateway, two to the worker,
/// one to the consumer.
pub fn generate(seed: u64, count: usize) -> Vec<Case> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count)
        .map(|index| {
            let edge = match index % 5 {
                0 | 1 => Edge::Gateway,
                2 | 3 => Edge::Worker,
                _ => Edge::Consumer,
            };
            let (kind, headers) = match edge {
                Edge::Gateway | Edge::Worker => http_headers(&mut rng),
                Edge::Consumer | Edge::Foreign => kafka_headers(&mut rng),
            };
            Case { index, edge, kind, headers }
        })
        .collect()
}

/// Draws one case's headers.
type HeadersOf = fn(&mut fastrand::Rng) -> Vec<ContextHeader>;

/// The Java producer's cases, numbered from `first_index`: each kind
/// twice, so both draws of a seed's values show. One JVM sends them all.
pub fn foreign(seed: u64, first_index: usize) -> Vec<Case> {
    // Its own stream: the librdkafka cases stay what a seed always gave.
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x6a61_7661);
    let kinds: [(&'static str, HeadersOf); 5] = [
        ("foreign: valid traceparent", |rng| vec![header("traceparent", valid_traceparent(rng))]),
        ("foreign: malformed traceparent", |rng| {
            let valid = valid_traceparent(rng);
            let malformed = if rng.bool() { valid.to_uppercase() } else { valid[..rng.usize(1..55)].to_owned() };
            vec![header("traceparent", malformed)]
        }),
        ("foreign: no headers", |_| Vec::new()),
        ("foreign: traceparent twice", |rng| {
            vec![header("traceparent", valid_traceparent(rng)), header("traceparent", valid_traceparent(rng))]
        }),
        ("foreign: traceparent not UTF-8", |rng| {
            let mut bytes = valid_traceparent(rng).into_bytes();
            let at = rng.usize(..bytes.len());
            // 0xff never occurs in UTF-8.
            bytes[at] = 0xff;
            vec![header("traceparent", bytes)]
        }),
    ];
    kinds
        .iter()
        .chain(kinds.iter())
        .enumerate()
        .map(|(n, (kind, headers))| Case {
            index: first_index + n,
            edge: Edge::Foreign,
            kind,
            headers: headers(&mut rng),
        })
        .collect()
}

fn header(name: &str, value: impl Into<Vec<u8>>) -> ContextHeader {
    (name.to_owned(), Some(value.into()))
}

/// Lowercase hex of a length in `digits`, not all zeros.
fn hex(rng: &mut fastrand::Rng, digits: std::ops::RangeInclusive<usize>) -> String {
    let digits = rng.usize(digits);
    loop {
        let text: String = (0..digits).map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)])).collect();
        if text.bytes().any(|byte| byte != b'0') {
            return text;
        }
    }
}

fn valid_traceparent(rng: &mut fastrand::Rng) -> String {
    format!("00-{}-{}-0{}", hex(rng, 32..=32), hex(rng, 16..=16), rng.u8(0..=1))
}

/// Printable ASCII, or bytes that are not UTF-8 (both legal in an HTTP field).
fn junk(rng: &mut fastrand::Rng, len: std::ops::RangeInclusive<usize>, utf8: bool) -> Vec<u8> {
    (0..rng.usize(len)).map(|_| if utf8 { rng.u8(0x21..=0x7e) } else { rng.u8(0x80..=0xff) }).collect()
}

/// A `traceparent` value, mutated one way.
fn traceparent(rng: &mut fastrand::Rng) -> (&'static str, Vec<u8>) {
    let valid = valid_traceparent(rng);
    let mut bytes = valid.clone().into_bytes();
    let kind = match rng.u8(0..16) {
        0 | 1 => "traceparent: valid",
        2 => {
            let version = format!("{:02x}", rng.u8(0x01..=0xfe));
            bytes[..2].copy_from_slice(version.as_bytes());
            "traceparent: later version"
        }
        3 => {
            let version = format!("{:02x}", rng.u8(0x01..=0xfe));
            bytes[..2].copy_from_slice(version.as_bytes());
            bytes.extend(format!("-{}", hex(rng, 1..=39)).bytes());
            "traceparent: later version with more fields"
        }
        4 => {
            bytes[..2].copy_from_slice(b"ff");
            "traceparent: version ff"
        }
        5 => {
            bytes.truncate(rng.usize(1..55));
            "traceparent: truncated"
        }
        6 => {
            bytes.extend(junk(rng, 1..=19, true));
            "traceparent: too long"
        }
        7 => {
            let at = [rng.usize(3..35), rng.usize(36..52), rng.usize(53..55)][rng.usize(..3)];
            bytes[at] = b"gxzG-_ "[rng.usize(..7)];
            "traceparent: bad hex"
        }
        8 => {
            bytes = valid.to_uppercase().into_bytes();
            "traceparent: upper case"
        }
        9 => {
            let flags = format!("{:02x}", rng.u8(0x02..=0xff));
            bytes[53..55].copy_from_slice(flags.as_bytes());
            "traceparent: other flags"
        }
        10 => {
            bytes[3..35].copy_from_slice(&[b'0'; 32]);
            "traceparent: zero trace id"
        }
        11 => {
            bytes[36..52].copy_from_slice(&[b'0'; 16]);
            "traceparent: zero parent id"
        }
        12 => {
            bytes.extend(junk(rng, 4096..=65535, true));
            "traceparent: huge"
        }
        13 => {
            let at = rng.usize(..bytes.len());
            let mut inserted = junk(rng, 1..=3, false);
            // 0xff never occurs in UTF-8: the value is not UTF-8 whatever follows.
            inserted[0] = 0xff;
            bytes.splice(at..at + 1, inserted);
            "traceparent: not UTF-8"
        }
        14 => {
            // Ids shorter than their field: hex, but not 32 and 16 digits.
            bytes = format!("00-{}-{}-01", hex(rng, 1..=31), hex(rng, 1..=15)).into_bytes();
            "traceparent: short ids"
        }
        _ => {
            bytes.clear();
            "traceparent: empty"
        }
    };
    (kind, bytes)
}

/// Headers for an HTTP edge: a mutated `traceparent`, or a valid one with a
/// mutated `tracestate` or `baggage`, or two `traceparent`s.
fn http_headers(rng: &mut fastrand::Rng) -> (&'static str, Vec<ContextHeader>) {
    let parent = header("traceparent", valid_traceparent(rng));
    match rng.u8(0..20) {
        0..=11 => {
            let (kind, value) = traceparent(rng);
            (kind, vec![header("traceparent", value)])
        }
        12 => (
            "tracestate: huge",
            vec![parent, header("tracestate", format!("k=v,{}", "x".repeat(rng.usize(4096..65536))))],
        ),
        13 => ("tracestate: not UTF-8", vec![parent, header("tracestate", junk(rng, 1..=63, false))]),
        14 => {
            let members: Vec<String> = (0..rng.usize(33..64)).map(|n| format!("k{n}=v{n}")).collect();
            ("tracestate: too many members", vec![parent, header("tracestate", members.join(","))])
        }
        15 => ("tracestate: malformed", vec![parent, header("tracestate", junk(rng, 1..=255, true))]),
        16 => ("baggage: huge", vec![parent, header("baggage", format!("k={}", "v".repeat(rng.usize(4096..65536))))]),
        17 => ("baggage: not UTF-8", vec![parent, header("baggage", junk(rng, 1..=63, false))]),
        18 => ("baggage: malformed", vec![parent, header("baggage", junk(rng, 1..=255, true))]),
        _ => {
            let (_, other) = traceparent(rng);
            let mut headers = vec![parent, header("traceparent", other)];
            if rng.bool() {
                headers.reverse();
            }
            ("traceparent: twice", headers)
        }
    }
}

/// Headers for a Kafka message: missing, empty-valued, renamed, duplicated,
/// oversized, or a mutated `traceparent`.
fn kafka_headers(rng: &mut fastrand::Rng) -> (&'static str, Vec<ContextHeader>) {
    match rng.u8(0..12) {
        0 => ("message: no headers", Vec::new()),
        1 => ("message: other headers only", vec![header("x-other", junk(rng, 16..=16, true))]),
        2 => ("message: traceparent without a value", vec![("traceparent".to_owned(), None)]),
        3 => ("message: TraceParent spelled in capitals", vec![header("TraceParent", valid_traceparent(rng))]),
        4 => {
            let (_, other) = traceparent(rng);
            let mut headers = vec![header("traceparent", valid_traceparent(rng)), header("traceparent", other)];
            if rng.bool() {
                headers.reverse();
            }
            ("message: traceparent twice", headers)
        }
        5 => (
            "message: oversized traceparent",
            vec![header("traceparent", format!("{}{}", valid_traceparent(rng), "0".repeat(100 * 1024)))],
        ),
        _ => {
            let (kind, value) = traceparent(rng);
            (kind, vec![header("traceparent", value)])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_cases() {
        let render = |cases: Vec<Case>| cases.into_iter().map(|case| (case.kind, case.headers)).collect::<Vec<_>>();
        assert_eq!(render(generate(7, 500)), render(generate(7, 500)));
        assert_ne!(render(generate(7, 500)), render(generate(8, 500)));
    }

    #[test]
    fn every_kind_appears_and_every_http_value_is_sendable() {
        let cases = generate(1, 5000);
        let kinds: std::collections::BTreeSet<&str> = cases.iter().map(|case| case.kind).collect();
        assert!(kinds.len() >= 28, "{kinds:?}");
        for case in cases.iter().filter(|case| case.edge != Edge::Consumer) {
            for (name, value) in &case.headers {
                let value = value.as_deref().expect("HTTP headers have values");
                assert!(reqwest::header::HeaderValue::from_bytes(value).is_ok(), "{name}: {value:?}");
            }
        }
    }

    #[test]
    fn the_foreign_cases_are_seeded_and_judged_by_the_same_rules() {
        let render = |cases: Vec<Case>| cases.into_iter().map(|case| (case.index, case.headers)).collect::<Vec<_>>();
        assert_eq!(render(foreign(7, 100)), render(foreign(7, 100)));
        assert_ne!(render(foreign(7, 100)), render(foreign(8, 100)));
        let cases = foreign(7, 100);
        assert_eq!(cases.len(), 10);
        assert_eq!(cases[0].index, 100);
        for case in &cases {
            let expect = case.expect();
            match case.kind {
                "foreign: valid traceparent" => assert!(matches!(expect, Expect::MayContinue(_))),
                _ => assert_eq!(expect, Expect::NewRoot, "{}", case.kind),
            }
        }
    }

    #[test]
    fn the_gateway_is_expected_to_start_every_trace() {
        let case = Case {
            index: 0,
            edge: Edge::Gateway,
            kind: "traceparent: valid",
            headers: vec![header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
        };
        assert_eq!(case.expect(), Expect::NewRoot);
        let worker = Case { edge: Edge::Worker, ..case };
        let parent = Traceparent { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(), sampled: true };
        assert_eq!(worker.expect(), Expect::MayContinue(parent));
    }
}
