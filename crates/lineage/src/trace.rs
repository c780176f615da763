//! One held trace: its spans, the index that finds them by id, and its business keys.
//! Its own module so that classifying, storing and viewing share it without
//! importing each other.

use crate::model::{IdMap, LinkRec, SpanId, SpanRec, flags};

/// Traces up to this many spans find spans by linear scan; bigger ones build an index.
const INDEX_FROM: usize = 16;

/// All spans of one trace held in memory.
#[derive(Debug)]
pub(crate) struct Trace {
    /// Distinguishes a trace from an earlier, evicted trace with the same id.
    pub incarnation: u64,
    pub first_arrival: u64,
    pub last_arrival: u64,
    pub settled: bool,
    pub spans: Vec<SpanRec>,
    index: IdMap<SpanId, u32>,
    pub keys: Vec<Box<str>>,
    pub links: Vec<LinkRec>,
    /// Boundaries already counted as breaks of this trace's request when
    /// that request has no business key to count them under.
    pub request_breaks: u8,
}

impl Trace {
    pub fn new(incarnation: u64, now: u64) -> Trace {
        Trace {
            incarnation,
            first_arrival: now,
            last_arrival: now,
            settled: false,
            spans: Vec::new(),
            index: IdMap::default(),
            keys: Vec::new(),
            links: Vec::new(),
            request_breaks: 0,
        }
    }

    pub fn position(&self, span_id: SpanId) -> Option<u32> {
        if self.spans.len() <= INDEX_FROM {
            self.spans.iter().position(|s| s.span_id == span_id).map(|p| p as u32)
        } else {
            self.index.get(&span_id).copied()
        }
    }

    pub fn push(&mut self, span: SpanRec) {
        let position = self.spans.len() as u32;
        self.spans.push(span);
        if self.spans.len() > INDEX_FROM {
            if self.index.is_empty() {
                self.index.reserve(self.spans.len());
                for (i, s) in self.spans.iter().enumerate() {
                    self.index.insert(s.span_id, i as u32);
                }
            } else {
                self.index.insert(self.spans[position as usize].span_id, position);
            }
        }
    }

    pub fn key(&self, slot: u16) -> Option<&str> {
        (slot > 0).then(|| self.keys.get(slot as usize - 1).map(|k| &**k)).flatten()
    }

    pub fn arrival(&self, span: &SpanRec) -> u64 {
        self.first_arrival + u64::from(span.arrival_offset_us) * 1_000
    }

    /// The entry root of this trace (the smallest span id if there are
    /// several): the request every orphan fragment of the trace belongs to.
    pub fn request_root(&self, is_entry: impl Fn(u32) -> bool) -> Option<usize> {
        self.spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.parent_id == 0 && is_entry(s.service))
            .min_by_key(|(_, s)| s.span_id)
            .map(|(i, _)| i)
    }

    pub fn all_counted(&self) -> bool {
        self.spans.iter().all(|s| s.has(flags::COUNTED))
    }

    /// Per top span (`tops` as from `classify`): the smallest business key among the spans of its
    /// fragment, so the choice does not depend on arrival order.
    pub fn fragment_keys(&self, tops: &[u32]) -> Vec<u16> {
        let mut best = vec![0u16; self.spans.len()];
        if self.keys.is_empty() {
            return best;
        }
        for (i, span) in self.spans.iter().enumerate() {
            if span.key == 0 {
                continue;
            }
            let top = tops[i] as usize;
            let current = best[top];
            if current == 0 || self.keys[span.key as usize - 1] < self.keys[current as usize - 1] {
                best[top] = span.key;
            }
        }
        best
    }
}
