//! The synchronous core: spans grouped by trace, settling, eviction and counters.
//! Building the report and reading traces back live in `store/`.

mod lookup;
mod report;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::Config;
use crate::classify::{FragmentClass, classify, fragment_class};
use crate::histogram::LatencyHistogram;
use crate::ingest::{IngestOutcome, PayloadError, Prepared, RejectReason, prepare, prepare_protobuf};
use crate::model::{Boundary, IdMap, IdSet, Interner, LinkRec, SpanRec, StrMap, TraceId, flags, now_unix_nanos};
use crate::report::Evictions;
use crate::trace::Trace;

/// Distinct business keys remembered per trace; more are ignored for that trace.
const MAX_KEYS_PER_TRACE: usize = 256;
const MAX_SERVICES: usize = 10_000;
const MAX_SPAN_NAMES: usize = 100_000;

#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceCounters {
    pub spans: u64,
    pub connected: u64,
    pub linked: u64,
    pub orphans: u64,
    /// Orphan spans by [cause][boundary].
    pub orphans_by: [[u64; 3]; 2],
}

/// What is known about one business key across the traces held.
#[derive(Debug, Default)]
pub(crate) struct KeyEntry {
    /// A set: a value shared by many traces (a constant attribute used as
    /// the key) must not make each eviction scan all of them.
    pub traces: IdSet<TraceId>,
    has_request: bool,
    /// Boundaries at which an orphan fragment with this key broke.
    broken: u8,
    /// Boundaries already added to `breaks`.
    counted: u8,
}

impl KeyEntry {
    /// Boundaries broken under this key while no request carries it.
    fn waiting(&self) -> u8 {
        if self.has_request { 0 } else { self.broken }
    }
}

/// Counters and the business-key index: everything settling updates.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub entry_services: Vec<u32>,
    pub spans_received: u64,
    pub spans_settled: u64,
    pub traces_settled: u64,
    pub requests: u64,
    pub late_spans: u64,
    pub duplicate_spans: u64,
    pub services: Vec<ServiceCounters>,
    pub breaks: [u64; 3],
    pub unattributed: [u64; 3],
    /// (key, boundary) pairs broken while no request with the key is held.
    pub root_missing_held: [u64; 3],
    /// The same, for keys that left memory without their request ever arriving.
    pub root_missing_evicted: [u64; 3],
    pub completeness: LatencyHistogram,
    pub evictions: Evictions,
    pub rejected_payloads: BTreeMap<RejectReason, u64>,
    pub rejected_spans: u64,
    pub keys: StrMap<KeyEntry>,
}

impl Tally {
    pub fn is_entry(&self, service: u32) -> bool {
        self.entry_services.contains(&service)
    }

    pub fn class_of(&self, trace: &Trace, top: u32) -> FragmentClass {
        fragment_class(&trace.spans[top as usize], |s| self.is_entry(s))
    }

    /// Keyed breaks whose request is not held, waiting or evicted.
    pub fn request_root_missing(&self) -> [u64; 3] {
        std::array::from_fn(|b| self.root_missing_held[b] + self.root_missing_evicted[b])
    }

    fn service_mut(&mut self, service: u32) -> &mut ServiceCounters {
        let i = service as usize;
        if self.services.len() <= i {
            self.services.resize_with(i + 1, ServiceCounters::default);
        }
        &mut self.services[i]
    }

    /// Adds every not-yet-counted span of `trace` to the counters.
    fn account(&mut self, trace: &mut Trace) {
        if trace.all_counted() {
            return;
        }
        let classification = classify(trace);
        let mut new_tops = Vec::new();
        for i in 0..trace.spans.len() {
            if trace.spans[i].has(flags::COUNTED) {
                continue;
            }
            let top = classification.top[i];
            let class = self.class_of(trace, top);
            let service = self.service_mut(trace.spans[i].service);
            service.spans += 1;
            match class {
                FragmentClass::Request => service.connected += 1,
                FragmentClass::Linked => service.linked += 1,
                FragmentClass::Broken { cause, boundary } => {
                    service.orphans += 1;
                    service.orphans_by[cause.index()][boundary.index()] += 1;
                }
            }
            self.spans_settled += 1;
            trace.spans[i].flags |= flags::COUNTED;
            if top as usize == i {
                new_tops.push((i, class));
            }
        }
        if new_tops.is_empty() {
            return;
        }
        let fragment_keys = trace.fragment_keys(&classification.top);
        let last_arrival = if new_tops.iter().any(|(_, c)| *c == FragmentClass::Request) {
            let mut last = vec![0u32; trace.spans.len()];
            for (i, span) in trace.spans.iter().enumerate() {
                let top = classification.top[i] as usize;
                last[top] = last[top].max(span.arrival_offset_us);
            }
            last
        } else {
            Vec::new()
        };
        // Requests first, so that a break found in the same pass has its request.
        for &(top, class) in &new_tops {
            if class != FragmentClass::Request {
                continue;
            }
            self.requests += 1;
            let root = &trace.spans[top];
            let arrival = trace.first_arrival + u64::from(last_arrival[top]) * 1_000;
            self.completeness.record(arrival.saturating_sub(root.end));
            if let Some(key) = trace.key(fragment_keys[top]) {
                self.mark_key(key, |e| e.has_request = true);
            }
        }
        // A break belongs to the request of its own trace first (its trace id
        // is the request's), and only otherwise to the request of its business key.
        let request_root = trace.request_root(|s| self.is_entry(s));
        for (top, class) in new_tops {
            let FragmentClass::Broken { boundary, .. } = class else { continue };
            match request_root {
                Some(root) => match trace.key(fragment_keys[root]) {
                    Some(key) => self.mark_key(key, |e| e.broken |= boundary.bit()),
                    None => {
                        if trace.request_breaks & boundary.bit() == 0 {
                            trace.request_breaks |= boundary.bit();
                            self.breaks[boundary.index()] += 1;
                        }
                    }
                },
                None => match trace.key(fragment_keys[top]) {
                    Some(key) => self.mark_key(key, |e| e.broken |= boundary.bit()),
                    None => self.unattributed[boundary.index()] += 1,
                },
            }
        }
    }

    /// Updates a key and counts each (key, boundary) break once, as soon as
    /// the key has both a request and an orphan fragment at that boundary.
    /// Until then the pair waits in `root_missing_held`.
    fn mark_key(&mut self, key: &str, update: impl FnOnce(&mut KeyEntry)) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        let waiting_before = entry.waiting();
        update(entry);
        let waiting_after = entry.waiting();
        let new = if entry.has_request { entry.broken & !entry.counted } else { 0 };
        entry.counted |= new;
        for boundary in Boundary::ALL {
            let bit = boundary.bit();
            let i = boundary.index();
            if new & bit != 0 {
                self.breaks[i] += 1;
            }
            match (waiting_before & bit != 0, waiting_after & bit != 0) {
                (false, true) => self.root_missing_held[i] += 1,
                (true, false) => self.root_missing_held[i] -= 1,
                _ => {}
            }
        }
    }

    /// A key leaves the index: breaks still waiting for its request stay
    /// counted as root-missing for good.
    fn forget_key(&mut self, entry: &KeyEntry) {
        let waiting = entry.waiting();
        for boundary in Boundary::ALL {
            if waiting & boundary.bit() != 0 {
                self.root_missing_held[boundary.index()] -= 1;
                self.root_missing_evicted[boundary.index()] += 1;
            }
        }
    }
}

/// Spans grouped by trace, settled and counted; no servers, no clock of its own.
///
/// Every method that depends on time takes `now` (unix nanoseconds on
/// lineage's clock), so tests and benches control it.
#[derive(Debug)]
pub struct Store {
    pub(crate) config: Config,
    pub(crate) traces: IdMap<TraceId, Trace>,
    /// (trace, incarnation) in order of first arrival; entries of traces that
    /// settled or left are dropped lazily.
    open_order: VecDeque<(TraceId, u64)>,
    /// (trace, incarnation) in order of settling.
    settled_order: VecDeque<(TraceId, u64)>,
    next_incarnation: u64,
    pub(crate) spans_held: u64,
    pub(crate) services: Interner,
    pub(crate) names: Interner,
    pub(crate) tally: Tally,
}

impl Store {
    pub fn new(mut config: Config) -> Store {
        config.max_traces = config.max_traces.max(1);
        config.max_spans = config.max_spans.max(1);
        let mut services = Interner::new(MAX_SERVICES, "(other services)");
        let entry_services = config.entry_services.iter().map(|s| services.intern(s)).collect();
        Store {
            config,
            traces: IdMap::default(),
            open_order: VecDeque::new(),
            settled_order: VecDeque::new(),
            next_incarnation: 0,
            spans_held: 0,
            services,
            names: Interner::new(MAX_SPAN_NAMES, "(other span names)"),
            tally: Tally { entry_services, ..Tally::default() },
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stores every valid span of a decoded export request, as received at `now`.
    pub fn ingest(&mut self, request: &ExportTraceServiceRequest, now: u64) -> IngestOutcome {
        let prepared = prepare(request, &self.config.business_key);
        self.insert(prepared, now)
    }

    /// Stores every valid span of an uncompressed protobuf export request,
    /// reading only the fields lineage keeps; malformed bytes change nothing.
    pub fn ingest_protobuf(&mut self, body: &[u8], now: u64) -> Result<IngestOutcome, PayloadError> {
        let prepared = prepare_protobuf(body, &self.config.business_key)?;
        Ok(self.insert(prepared, now))
    }

    pub(crate) fn insert(&mut self, prepared: Prepared<'_>, now: u64) -> IngestOutcome {
        let mut outcome = IngestOutcome { rejected: prepared.rejected, ..IngestOutcome::default() };
        self.tally.rejected_spans += prepared.rejected;
        let mut late_traces = Vec::new();
        for span in prepared.spans {
            let held = self.traces.get(&span.trace_id);
            if held.is_some_and(|t| t.position(span.span_id).is_some()) {
                outcome.duplicates += 1;
                continue;
            }
            self.make_room(held.is_none());
            let service = self.services.intern(span.service);
            let name = self.names.intern(span.name);
            let trace = match self.traces.entry(span.trace_id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    self.next_incarnation += 1;
                    self.open_order.push_back((span.trace_id, self.next_incarnation));
                    e.insert(Trace::new(self.next_incarnation, now))
                }
            };
            let key = match span.key {
                Some(key) => key_slot(trace, &mut self.tally.keys, span.trace_id, &key),
                None => 0,
            };
            let position = trace.spans.len() as u32;
            let mut span_flags = 0;
            if span.messaging {
                span_flags |= flags::MESSAGING;
            }
            if !span.links.is_empty() {
                span_flags |= flags::LINKS;
                trace.links.extend(span.links.iter().map(|&(trace_id, span_id)| LinkRec {
                    span: position,
                    trace_id,
                    span_id,
                }));
            }
            let offset_us = now.saturating_sub(trace.first_arrival) / 1_000;
            trace.push(SpanRec {
                span_id: span.span_id,
                parent_id: span.parent_id,
                start: span.start,
                end: span.end,
                arrival_offset_us: offset_us.min(u64::from(u32::MAX)) as u32,
                service,
                name,
                key,
                kind: span.kind,
                status: span.status,
                flags: span_flags,
            });
            trace.last_arrival = trace.last_arrival.max(now);
            self.spans_held += 1;
            self.tally.spans_received += 1;
            outcome.accepted += 1;
            if trace.settled {
                outcome.late += 1;
                self.tally.late_spans += 1;
                late_traces.push(span.trace_id);
            }
        }
        self.tally.duplicate_spans += outcome.duplicates;
        late_traces.sort_unstable();
        late_traces.dedup();
        for trace_id in late_traces {
            if let Some(trace) = self.traces.get_mut(&trace_id) {
                self.tally.account(trace);
            }
        }
        outcome
    }

    /// Evicts until one more span (and, if `new_trace`, one more trace) fits.
    fn make_room(&mut self, new_trace: bool) {
        loop {
            let traces_full = new_trace && self.traces.len() >= self.config.max_traces;
            let spans_full = self.spans_held >= self.config.max_spans as u64;
            if !(traces_full || spans_full) || !self.evict_oldest() {
                return;
            }
        }
    }

    /// Evicts the oldest settled trace, or else force-settles and evicts the oldest open one.
    fn evict_oldest(&mut self) -> bool {
        while let Some((id, incarnation)) = self.settled_order.pop_front() {
            if self.traces.get(&id).is_some_and(|t| t.incarnation == incarnation) {
                self.evict(id);
                return true;
            }
        }
        while let Some((id, incarnation)) = self.open_order.pop_front() {
            if self.traces.get(&id).is_some_and(|t| t.incarnation == incarnation && !t.settled) {
                self.evict(id);
                return true;
            }
        }
        false
    }

    fn evict(&mut self, id: TraceId) {
        let Some(mut trace) = self.traces.remove(&id) else {
            return;
        };
        self.tally.account(&mut trace);
        if trace.settled {
            self.tally.evictions.settled += 1;
        } else {
            self.tally.traces_settled += 1;
            self.tally.evictions.unsettled += 1;
        }
        self.spans_held -= trace.spans.len() as u64;
        for key in &trace.keys {
            if let Some(entry) = self.tally.keys.get_mut(&**key) {
                entry.traces.remove(&id);
                if entry.traces.is_empty()
                    && let Some(entry) = self.tally.keys.remove(&**key)
                {
                    self.tally.forget_key(&entry);
                }
            }
        }
    }

    /// Settles open traces whose quiet period or max age has elapsed at `now`.
    ///
    /// Only the oldest open traces can be due: none is before its first span
    /// is the shorter of the two periods old, and `open_order` is in order of
    /// first arrival. The scan stops at the first trace younger than that, so
    /// a tick costs what is due, not every open trace (at a high intake, the
    /// full scan every tick was a quarter of lineage's CPU). Arrival times
    /// taken by concurrent requests can be out of order by the time it takes
    /// one to reach the lock; such a trace settles a tick later.
    pub fn settle_due(&mut self, now: u64) -> usize {
        let quiet = duration_nanos(self.config.quiet_period);
        let max_age = duration_nanos(self.config.max_age);
        let youngest_due = quiet.min(max_age);
        let traces = &self.traces;
        let scan = self
            .open_order
            .iter()
            .position(|(id, incarnation)| {
                traces.get(id).is_some_and(|t| {
                    t.incarnation == *incarnation && !t.settled && now < t.first_arrival.saturating_add(youngest_due)
                })
            })
            .unwrap_or(self.open_order.len());
        self.settle_where(scan, |t| {
            now >= t.last_arrival.saturating_add(quiet) || now >= t.first_arrival.saturating_add(max_age)
        })
    }

    /// Settles every open trace now, whatever its age.
    pub fn settle_all(&mut self) -> usize {
        self.settle_where(self.open_order.len(), |_| true)
    }

    /// Settles the traces among the first `scan` entries of `open_order`
    /// that are `due`, and drops the entries of traces no longer open there.
    fn settle_where(&mut self, scan: usize, due: impl Fn(&Trace) -> bool) -> usize {
        let ids: Vec<TraceId> = self
            .open_order
            .iter()
            .take(scan)
            .filter(|(id, incarnation)| {
                self.traces.get(id).is_some_and(|t| t.incarnation == *incarnation && !t.settled && due(t))
            })
            .map(|&(id, _)| id)
            .collect();
        for &id in &ids {
            if let Some(trace) = self.traces.get_mut(&id) {
                self.tally.account(trace);
                trace.settled = true;
                self.tally.traces_settled += 1;
                self.settled_order.push_back((id, trace.incarnation));
            }
        }
        if scan > 0 {
            let traces = &self.traces;
            let open = |(id, incarnation): &(TraceId, u64)| {
                traces.get(id).is_some_and(|t| t.incarnation == *incarnation && !t.settled)
            };
            let kept: Vec<(TraceId, u64)> = self.open_order.drain(..scan).filter(open).collect();
            for entry in kept.into_iter().rev() {
                self.open_order.push_front(entry);
            }
        }
        ids.len()
    }

    /// Counts a payload refused as a whole; nothing else changes.
    pub fn record_rejected_payload(&mut self, reason: RejectReason) {
        *self.tally.rejected_payloads.entry(reason).or_default() += 1;
    }

    /// Forgets every trace and every counter.
    pub fn reset(&mut self) {
        *self = Store::new(self.config.clone());
    }

    pub fn held_traces(&self) -> usize {
        self.traces.len()
    }

    pub fn held_spans(&self) -> u64 {
        self.spans_held
    }

    pub fn open_traces(&self) -> usize {
        self.traces.values().filter(|t| !t.settled).count()
    }

    pub(crate) fn service_name(&self, id: u32) -> &str {
        self.services.get(id)
    }

    pub(crate) fn span_name(&self, id: u32) -> &str {
        self.names.get(id)
    }

    /// Convenience for tests and tools: ingest at the current wall-clock time.
    pub fn ingest_now(&mut self, request: &ExportTraceServiceRequest) -> IngestOutcome {
        self.ingest(request, now_unix_nanos())
    }
}

/// The slot (index + 1) of `key` in the trace, registering the trace under the key.
fn key_slot(trace: &mut Trace, keys: &mut StrMap<KeyEntry>, trace_id: TraceId, key: &str) -> u16 {
    if let Some(i) = trace.keys.iter().position(|k| &**k == key) {
        return i as u16 + 1;
    }
    if trace.keys.len() >= MAX_KEYS_PER_TRACE {
        return 0;
    }
    trace.keys.push(key.into());
    match keys.get_mut(key) {
        Some(entry) => {
            entry.traces.insert(trace_id);
        }
        None => {
            let mut entry = KeyEntry::default();
            entry.traces.insert(trace_id);
            keys.insert(key.into(), entry);
        }
    }
    trace.keys.len() as u16
}

fn duration_nanos(d: std::time::Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}
