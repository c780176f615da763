//! Everything a page shows comes from whoever can send OTLP. Whatever they
//! put in service names, span names, business keys, attributes, kinds and
//! ids, every page lineage serves shows it as text: never as an element or
//! an attribute of its own, and every link it builds leads to what it names.
//!
//! Each case is sent twice over OTLP/HTTP: as generated, and with every text
//! the pages show replaced by its hex digits (same order, same equalities,
//! nothing to escape). The pages both produce, parsed by a real HTML parser,
//! must have the same elements with the same attributes.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::pages::{all_text, as_parsed, first_difference, skeleton, text_of};
use lineage::{Config, Lineage};
use proptest::prelude::*;
use prost::Message;
use scraper::{ElementRef, Html, Selector};

/// The OTLP messages lineage reads, with every string field as bytes: the
/// same wire format, but a sender can put invalid UTF-8 in them.
mod raw {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 3")]
        pub value: Option<Value>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(bytes = "vec", tag = "1")]
        String(Vec<u8>),
        #[prost(int64, tag = "3")]
        Int(i64),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "5")]
        pub name: Vec<u8>,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, repeated, tag = "13")]
        pub links: Vec<Link>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Link {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
    }
}

/// What an attacker tries, as pieces to combine.
const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<b>",
    "</td></tr></table>",
    "</title>",
    "</style>",
    "<!--",
    "-->",
    "<![CDATA[",
    "\"",
    "'",
    "\" onmouseover=\"alert(1)\" x=\"",
    "' autofocus onfocus='alert(1)",
    "javascript:alert(1)",
    "&amp;",
    "&lt;",
    "&",
    "<",
    ">",
    "=",
    "`",
    "/",
    "//",
    "\\",
    "..",
    ".",
    "?",
    "#",
    "%",
    "%2F",
    "%2e%2e",
    "+",
    " ",
    "\t",
    "\n",
    "\r",
    "\0",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{85}",
    "\u{200b}",
    "\u{202e}",
    "\u{feff}",
    "é",
    "🦀",
];

/// Bytes that are not UTF-8: the wire carries them in string fields too.
const NOT_UTF8: &[&[u8]] = &[&[0xff], &[0xc0, 0x80], &[0xed, 0xa0, 0x80], &[0xe2, 0x82]];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(HOSTILE).prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
            1 => "[a-z0-9]{1,6}",
        ],
        0..5,
    )
    .prop_map(|pieces| pieces.concat())
}

/// A string field as sent: text, sometimes with bytes that are not UTF-8.
#[derive(Clone, Debug)]
struct Field {
    text: String,
    broken: Option<(&'static [u8], usize)>,
}

impl Field {
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.text.clone().into_bytes();
        if let Some((junk, at)) = self.broken {
            let at = (0..=at.min(self.text.len())).rev().find(|&i| self.text.is_char_boundary(i)).unwrap_or(0);
            bytes.splice(at..at, junk.iter().copied());
        }
        bytes
    }

    fn benign(&self) -> Field {
        Field { text: hex::encode(&self.text), broken: self.broken }
    }
}

fn field() -> impl Strategy<Value = Field> {
    (text(), prop::option::weighted(0.03, (prop::sample::select(NOT_UTF8), 0..64usize)))
        .prop_map(|(text, broken)| Field { text, broken })
}

#[derive(Clone, Debug)]
enum Key {
    Text(Field),
    Int(i64),
}

#[derive(Clone, Debug)]
enum Parent {
    Root,
    /// An earlier span of the case (by index, modulo).
    Earlier(usize),
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug)]
struct SpanCase {
    trace: usize,
    /// `None`: the span's index as its id; otherwise these bytes.
    id: Option<Vec<u8>>,
    parent: Parent,
    service: usize,
    name: Field,
    kind: i32,
    key: Option<Key>,
    attribute: Option<(Field, Field)>,
    link: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone, Debug)]
struct Case {
    services: Vec<Field>,
    trace_ids: Vec<Vec<u8>>,
    spans: Vec<SpanCase>,
    /// Asked for as a key (the not-found page, or the key's page if a span
    /// carries it too) and, after an `x`, as a trace id (the malformed-id page).
    probe: String,
}

fn id_bytes(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), len),
        1 => prop::collection::vec(any::<u8>(), 0..20),
        1 => Just(vec![0; len]),
    ]
}

fn span_case() -> impl Strategy<Value = SpanCase> {
    (
        (0..4usize, prop::option::weighted(0.1, id_bytes(8))),
        prop_oneof![
            2 => Just(Parent::Root),
            3 => (0..16usize).prop_map(Parent::Earlier),
            1 => id_bytes(8).prop_map(Parent::Bytes),
        ],
        (0..4usize, field(), prop_oneof![4 => 0..6i32, 1 => any::<i32>()]),
        prop::option::weighted(
            0.7,
            prop_oneof![3 => field().prop_map(Key::Text), 1 => any::<i64>().prop_map(Key::Int)],
        ),
        prop::option::weighted(0.3, (field(), field())),
        prop::option::weighted(0.2, (id_bytes(16), id_bytes(8))),
    )
        .prop_map(|((trace, id), parent, (service, name, kind), key, attribute, link)| SpanCase {
            trace,
            id,
            parent,
            service,
            name,
            kind,
            key,
            attribute,
            link,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            prop_oneof![1 => Just(Field { text: "gateway".to_owned(), broken: None }), 3 => field()],
            1..4,
        ),
        prop::collection::vec(id_bytes(16), 1..4),
        prop::collection::vec(span_case(), 1..10),
        text(),
    )
        .prop_map(|(services, trace_ids, spans, probe)| Case {
            services,
            trace_ids,
            spans,
            probe: format!("<{probe}"),
        })
}

fn string_value(bytes: Vec<u8>) -> Option<raw::AnyValue> {
    Some(raw::AnyValue { value: Some(raw::Value::String(bytes)) })
}

const BASE: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

impl Case {
    /// Every text the pages show, as its hex digits; an int key becomes the
    /// hex of its decimal text, so that equal keys stay equal.
    fn benign(&self) -> Case {
        let mut case = self.clone();
        case.services = self.services.iter().map(Field::benign).collect();
        for span in &mut case.spans {
            span.name = span.name.benign();
            span.key = span.key.as_ref().map(|key| match key {
                Key::Text(field) => Key::Text(field.benign()),
                Key::Int(i) => Key::Text(Field { text: hex::encode(i.to_string()), broken: None }),
            });
        }
        case.probe = hex::encode(&self.probe);
        case
    }

    fn is_utf8(&self) -> bool {
        let fields = self.services.iter().chain(self.spans.iter().flat_map(|span| {
            let key = match &span.key {
                Some(Key::Text(field)) => Some(field),
                _ => None,
            };
            std::iter::once(&span.name).chain(key).chain(span.attribute.iter().flat_map(|(k, v)| [k, v]))
        }));
        fields.into_iter().all(|field| field.broken.is_none())
    }

    fn span_id(&self, index: usize) -> Vec<u8> {
        match &self.spans[index].id {
            Some(bytes) => bytes.clone(),
            None => (index as u64 + 1).to_be_bytes().to_vec(),
        }
    }

    fn trace_id(&self, span: &SpanCase) -> Vec<u8> {
        self.trace_ids[span.trace % self.trace_ids.len()].clone()
    }

    /// One resource per service, as an SDK sends it.
    fn encode(&self) -> Vec<u8> {
        let mut resource_spans: Vec<raw::ResourceSpans> = self
            .services
            .iter()
            .map(|service| raw::ResourceSpans {
                resource: Some(raw::Resource {
                    attributes: vec![raw::KeyValue {
                        key: b"service.name".to_vec(),
                        value: string_value(service.bytes()),
                    }],
                }),
                scope_spans: vec![raw::ScopeSpans::default()],
            })
            .collect();
        for (i, span) in self.spans.iter().enumerate() {
            let mut attributes = Vec::new();
            match &span.key {
                Some(Key::Text(field)) => {
                    attributes.push(raw::KeyValue { key: b"order.id".to_vec(), value: string_value(field.bytes()) })
                }
                Some(Key::Int(i)) => attributes.push(raw::KeyValue {
                    key: b"order.id".to_vec(),
                    value: Some(raw::AnyValue { value: Some(raw::Value::Int(*i)) }),
                }),
                None => {}
            }
            if let Some((key, value)) = &span.attribute {
                attributes.push(raw::KeyValue { key: key.bytes(), value: string_value(value.bytes()) });
            }
            let parent_span_id = match &span.parent {
                Parent::Root => Vec::new(),
                Parent::Earlier(n) => self.span_id(n % (i + 1)),
                Parent::Bytes(bytes) => bytes.clone(),
            };
            let spans = &mut resource_spans[span.service % self.services.len()].scope_spans[0].spans;
            spans.push(raw::Span {
                trace_id: self.trace_id(span),
                span_id: self.span_id(i),
                parent_span_id,
                name: span.name.bytes(),
                kind: span.kind,
                start_time_unix_nano: BASE + i as u64 * MS,
                end_time_unix_nano: BASE + (i as u64 + 3) * MS,
                attributes,
                links: span.link.iter().map(|(t, s)| raw::Link { trace_id: t.clone(), span_id: s.clone() }).collect(),
            });
        }
        raw::Request { resource_spans }.encode_to_vec()
    }
}

/// Two instances that differ only in the entry service's name: the benign
/// copy of a case names it in hex too.
struct Servers {
    runtime: tokio::runtime::Runtime,
    hostile: Lineage,
    benign: Lineage,
    client: reqwest::Client,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let start = |entry: String| {
            let config =
                Config { entry_services: vec![entry], quiet_period: Duration::from_secs(600), ..Config::ephemeral() };
            runtime.block_on(Lineage::start(config)).expect("lineage starts")
        };
        let hostile = start("gateway".to_owned());
        let benign = start(hex::encode("gateway"));
        Servers { runtime, hostile, benign, client: reqwest::Client::new() }
    })
}

struct Page {
    status: u16,
    html: String,
}

impl Servers {
    async fn get(&self, lineage: &Lineage, path: &str) -> Page {
        let url = format!("{}{path}", lineage.http_endpoint());
        let response = self.client.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        Page { status, html: response.text().await.expect("a page is text") }
    }

    /// Sends a case; `None` when lineage refused it (and then holds nothing).
    async fn send(&self, lineage: &Lineage, case: &Case) -> Result<(), TestCaseError> {
        lineage.reset();
        let response = self
            .client
            .post(format!("{}/v1/traces", lineage.http_endpoint()))
            .header("content-type", "application/x-protobuf")
            .body(case.encode())
            .send()
            .await
            .expect("POST /v1/traces");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if case.is_utf8() {
            prop_assert_eq!(status, 200, "{}", body);
        } else {
            prop_assert_eq!(status, 400, "{}", body);
            prop_assert!(body.contains("not valid UTF-8"), "{}", body);
            prop_assert_eq!(lineage.report().spans_received, 0, "a refused request changes nothing");
        }
        lineage.settle_now();
        Ok(())
    }

    /// Every HTML page a case makes: the index, each held trace, each
    /// business key, and the pages the probe asks for.
    async fn pages(&self, lineage: &Lineage, case: &Case) -> Vec<(String, Page)> {
        let mut pages = vec![("/".to_owned(), self.get(lineage, "/").await)];
        for trace_id in &case.trace_ids {
            let path = format!("/traces/{}", hex::encode(trace_id));
            if lineage.trace(&hex::encode(trace_id)).is_some() {
                let page = self.get(lineage, &path).await;
                pages.push((path, page));
            }
        }
        let mut keys: Vec<String> = case
            .trace_ids
            .iter()
            .filter_map(|id| lineage.trace(&hex::encode(id)))
            .flat_map(|trace| trace.business_keys)
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            // In process: the same page `GET /requests/{key}` serves; the
            // links that lead there are followed below.
            let html = lineage.request_page(&key).expect("a held key has a page");
            pages.push((format!("request {key:?}"), Page { status: 200, html }));
        }
        let probe = encode_segment(&case.probe);
        pages.push((format!("key {:?}", case.probe), self.get(lineage, &format!("/requests/{probe}")).await));
        // An `x` keeps the benign copy's hex digits from making a valid id.
        let malformed = format!("/traces/x{probe}");
        pages.push((format!("malformed trace id x{:?}", case.probe), self.get(lineage, &malformed).await));
        pages
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Each link is a path on lineage, percent-encoded, and leads to what it names.
async fn check_links(servers: &Servers, lineage: &Lineage, from: &str, document: &Html) -> Result<(), TestCaseError> {
    let base = reqwest::Url::parse(&lineage.http_endpoint()).unwrap();
    let anchors = Selector::parse("a").unwrap();
    for anchor in document.select(&anchors) {
        let href = anchor.value().attr("href").unwrap_or_default();
        prop_assert!(
            href.starts_with('/') && !href.starts_with("//"),
            "{}: link {:?} is not a path on lineage",
            from,
            href
        );
        let encoded = |b: u8| b.is_ascii_alphanumeric() || b"-_.~/%?=&+".contains(&b);
        prop_assert!(href.bytes().all(encoded), "{}: link {:?} is not percent-encoded", from, href);
        let url = base.join(href).unwrap();
        prop_assert_eq!(url.origin(), base.origin(), "{}: link {:?}", from, href);
        let shown: String = anchor.text().collect();
        let expected = if url.path().starts_with("/requests") {
            format!("order.id = {shown}")
        } else if url.path().starts_with("/traces") {
            shown.clone()
        } else {
            continue;
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let target = servers.get(lineage, &path).await;
        prop_assert_eq!(target.status, 200, "{}: link {:?} ({:?})", from, href, shown);
        let heading = text_of(&Html::parse_document(&target.html), "h1 code");
        prop_assert_eq!(heading.as_deref(), Some(expected.as_str()), "{}: link {:?} leads elsewhere", from, href);
    }
    Ok(())
}

fn check_case(case: &Case) -> Result<(), TestCaseError> {
    let servers = servers();
    servers.runtime.block_on(async {
        servers.send(&servers.hostile, case).await?;
        let hostile = servers.pages(&servers.hostile, case).await;
        let benign_case = case.benign();
        servers.send(&servers.benign, &benign_case).await?;
        let benign = servers.pages(&servers.benign, &benign_case).await;
        prop_assert_eq!(hostile.len(), benign.len(), "the same pages");

        for ((name, page), (_, plain)) in hostile.iter().zip(&benign) {
            prop_assert_eq!(page.status, plain.status, "{}", name);
            let document = Html::parse_document(&page.html);
            let expected = Html::parse_document(&plain.html);
            if let Some(difference) = first_difference(&skeleton(&document), &skeleton(&expected)) {
                return Err(TestCaseError::fail(format!("{name}: the names made markup of their own at {difference}")));
            }
            for element in document.root_element().descendants().filter_map(ElementRef::wrap) {
                let tag = element.value().name();
                prop_assert!(
                    !matches!(tag, "script" | "style" | "iframe" | "object" | "embed" | "img"),
                    "{}: <{}>",
                    name,
                    tag
                );
                for (attribute, _) in element.value().attrs() {
                    prop_assert!(
                        !attribute.starts_with("on") && attribute != "style",
                        "{}: <{} {}>",
                        name,
                        tag,
                        attribute
                    );
                }
            }
            check_links(servers, &servers.hostile, name, &document).await?;
        }

        // Nothing shown is lost: every name is on its trace's page, as text.
        for (path, page) in &hostile {
            let Some(trace_id) = path.strip_prefix("/traces/") else { continue };
            let Some(trace) = servers.hostile.trace(trace_id) else { continue };
            let document = Html::parse_document(&page.html);
            let text = all_text(&document);
            for span in &trace.spans {
                for shown in [&span.service, &span.name] {
                    prop_assert!(text.contains(&as_parsed(shown)), "{}: {:?} is not shown", path, shown);
                }
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_senders_name_is_text_on_every_page(case in case()) {
        check_case(&case)?;
    }
}
