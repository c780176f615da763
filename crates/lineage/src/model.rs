//! Compact span representation, identifiers and the vocabulary of the metric.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};

/// Where propagation broke, judged from the kind and attributes of the break span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Boundary {
    /// The break span is a SERVER span: an HTTP/RPC call lost its context.
    Http,
    /// Neither SERVER nor messaging: a task, thread or timer lost its context.
    Async,
    /// The break span is a CONSUMER span or carries `messaging.*` attributes.
    Messaging,
}

impl Boundary {
    /// All boundaries, in the order reports list them.
    pub const ALL: [Boundary; 3] = [Boundary::Http, Boundary::Async, Boundary::Messaging];

    pub fn as_str(self) -> &'static str {
        match self {
            Boundary::Http => "http",
            Boundary::Async => "async",
            Boundary::Messaging => "messaging",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn bit(self) -> u8 {
        1 << self.index()
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the chain of an orphan span breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The break span has no parent and runs in a non-entry service.
    RootInInternalService,
    /// The break span names a parent that never arrived (or its parent chain loops).
    MissingParent,
}

impl Cause {
    pub const ALL: [Cause; 2] = [Cause::RootInInternalService, Cause::MissingParent];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::RootInInternalService => "root-in-internal-service",
            Cause::MissingParent => "missing-parent",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classification of one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineageStatus {
    /// Its parent chain reaches a root span of an entry service.
    Connected,
    /// Its parent chain reaches a root span of a non-entry service that carries span links.
    Linked,
    /// Anything else.
    Orphan,
}

impl LineageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineageStatus::Connected => "connected",
            LineageStatus::Linked => "linked",
            LineageStatus::Orphan => "orphan",
        }
    }
}

impl fmt::Display for LineageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// OTLP span kind values (`opentelemetry.proto.trace.v1.Span.SpanKind`).
pub(crate) mod kind {
    pub const UNSPECIFIED: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const SERVER: u8 = 2;
    pub const CLIENT: u8 = 3;
    pub const PRODUCER: u8 = 4;
    pub const CONSUMER: u8 = 5;

    pub fn name(kind: u8) -> &'static str {
        match kind {
            INTERNAL => "internal",
            SERVER => "server",
            CLIENT => "client",
            PRODUCER => "producer",
            CONSUMER => "consumer",
            _ => "unspecified",
        }
    }

    pub fn from_otlp(kind: i32) -> u8 {
        match kind {
            1..=5 => kind as u8,
            _ => UNSPECIFIED,
        }
    }
}

/// OTLP status code values (`opentelemetry.proto.trace.v1.Status.StatusCode`).
pub(crate) mod status_code {
    pub fn name(code: u8) -> &'static str {
        match code {
            1 => "ok",
            2 => "error",
            _ => "unset",
        }
    }

    pub fn from_otlp(code: i32) -> u8 {
        match code {
            1 | 2 => code as u8,
            _ => 0,
        }
    }
}

pub(crate) mod flags {
    /// The span has at least one `messaging.*` attribute.
    pub const MESSAGING: u8 = 1;
    /// The span carries at least one valid span link.
    pub const LINKS: u8 = 2;
    /// The span has been added to the counters; it is never added again.
    pub const COUNTED: u8 = 4;
}

/// A 16-byte trace id, big-endian, never zero.
pub type TraceId = u128;
/// An 8-byte span id, big-endian, never zero (zero means "no parent").
pub type SpanId = u64;

pub(crate) fn trace_id_from_bytes(bytes: &[u8]) -> Option<TraceId> {
    let array: [u8; 16] = bytes.try_into().ok()?;
    let id = u128::from_be_bytes(array);
    (id != 0).then_some(id)
}

pub(crate) fn span_id_from_bytes(bytes: &[u8]) -> Option<SpanId> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    let id = u64::from_be_bytes(array);
    (id != 0).then_some(id)
}

/// Parses a 32-digit hex trace id, as printed in views and URLs.
pub fn parse_trace_id(hex_id: &str) -> Option<TraceId> {
    if hex_id.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(hex_id, &mut bytes).ok()?;
    trace_id_from_bytes(&bytes)
}

pub fn format_trace_id(id: TraceId) -> String {
    format!("{id:032x}")
}

pub fn format_span_id(id: SpanId) -> String {
    format!("{id:016x}")
}

/// One span as held by the store: only what the metric and the views need.
#[derive(Clone, Debug)]
pub(crate) struct SpanRec {
    pub span_id: SpanId,
    /// Zero when the span is a root.
    pub parent_id: SpanId,
    pub start: u64,
    pub end: u64,
    /// Microseconds after the first span of the trace arrived, saturating.
    pub arrival_offset_us: u32,
    pub service: u32,
    pub name: u32,
    /// Index + 1 into the trace's business keys; 0 when the span has none.
    pub key: u16,
    pub kind: u8,
    pub status: u8,
    pub flags: u8,
}

impl SpanRec {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Clone, Debug)]
pub(crate) struct LinkRec {
    pub span: u32,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// Hashes span and trace ids: they are random already, so a keyed multiply-mix
/// is enough and several times cheaper than SipHash on the ingest path.
#[derive(Clone, Debug)]
pub(crate) struct IdHashBuilder {
    seed: u64,
}

impl Default for IdHashBuilder {
    fn default() -> Self {
        // The seed keeps crafted ids from colliding on purpose.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x006c_696e_6561_6765_u64);
        IdHashBuilder { seed }
    }
}

impl BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.seed)
    }
}

pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_u128(&mut self, value: u128) {
        self.write_u64(value as u64);
        self.write_u64((value >> 64) as u64);
    }
}

pub(crate) type IdMap<K, V> = HashMap<K, V, IdHashBuilder>;
pub(crate) type IdSet<K> = std::collections::HashSet<K, IdHashBuilder>;

/// A map keyed by strings from the wire, hashed with a seed of its own.
pub(crate) type StrMap<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// Interns strings (service names, span names) as dense `u32` ids.
///
/// Span names can be high-cardinality in the wild (ids in URLs); past `limit`
/// distinct strings every new one maps to a single overflow entry, so memory
/// stays bounded.
#[derive(Debug)]
pub(crate) struct Interner {
    ids: StrMap<u32>,
    strings: Vec<Box<str>>,
    limit: usize,
    overflow: Option<u32>,
    overflow_label: &'static str,
}

impl Interner {
    pub fn new(limit: usize, overflow_label: &'static str) -> Interner {
        Interner { ids: StrMap::default(), strings: Vec::new(), limit, overflow: None, overflow_label }
    }

    pub fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        if self.strings.len() >= self.limit {
            if let Some(id) = self.overflow {
                return id;
            }
            let id = self.push(self.overflow_label);
            self.overflow = Some(id);
            return id;
        }
        self.push(value)
    }

    fn push(&mut self, value: &str) -> u32 {
        let id = self.strings.len() as u32;
        self.strings.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    pub fn get(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("?", |s| s)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.strings.len()
    }
}

pub(crate) fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_wrong_length_and_zero() {
        assert_eq!(trace_id_from_bytes(&[0; 16]), None);
        assert_eq!(trace_id_from_bytes(&[1; 15]), None);
        assert_eq!(span_id_from_bytes(&[]), None);
        assert_eq!(span_id_from_bytes(&[0; 8]), None);
        assert_eq!(span_id_from_bytes(&[0, 0, 0, 0, 0, 0, 0, 1]), Some(1));
    }

    #[test]
    fn trace_id_hex_round_trip() {
        let id = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128;
        assert_eq!(parse_trace_id(&format_trace_id(id)), Some(id));
        assert_eq!(parse_trace_id("xyz"), None);
        assert_eq!(parse_trace_id(&"0".repeat(32)), None);
        assert_eq!(parse_trace_id(&"g".repeat(32)), None);
    }

    #[test]
    fn interner_is_bounded() {
        let mut interner = Interner::new(2, "(other)");
        let a = interner.intern("a");
        assert_eq!(interner.intern("a"), a);
        interner.intern("b");
        let c = interner.intern("c");
        assert_eq!(interner.get(c), "(other)");
        assert_eq!(interner.intern("d"), c);
        assert_eq!(interner.len(), 3);
    }
}
