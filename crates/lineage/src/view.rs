//! Span trees of traces and requests, as serde types and as text dumps.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::classify::{FragmentClass, classify};
use crate::model::{Boundary, Cause, LineageStatus, TraceId, format_span_id, format_trace_id, kind, status_code};
use crate::store::Store;
use crate::trace::Trace;

/// One trace as a tree.
///
/// `spans` is a flat depth-first pre-order list: `depth`, `parent` and
/// `children` (indices into `spans`) encode the tree, so a 10 000-deep chain
/// serializes, deserializes and drops without recursion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    pub trace_id: String,
    /// False while lineage still waits for spans; classifications may change until then.
    pub settled: bool,
    /// Distinct business-key values seen in the trace, sorted.
    pub business_keys: Vec<String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub connected: u64,
    pub linked: u64,
    pub orphans: u64,
    /// The top of each fragment (entry root, linked root or break span), by start time.
    pub fragments: Vec<FragmentView>,
    pub spans: Vec<SpanView>,
}

impl TraceView {
    /// When its first and its last span reached lineage, in Unix
    /// nanoseconds; `None` for a trace without spans.
    pub fn arrival_range(&self) -> Option<(u64, u64)> {
        let arrivals = self.spans.iter().map(|span| span.arrival_unix_nanos);
        Some((arrivals.clone().min()?, arrivals.max()?))
    }
}

/// The span heading one fragment of a trace, with what the fragment is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FragmentView {
    pub trace_id: String,
    /// Index of the top span in `TraceView::spans` of its trace.
    pub index: usize,
    pub span_id: String,
    pub service: String,
    pub name: String,
    pub kind: String,
    pub status: LineageStatus,
    pub cause: Option<Cause>,
    pub boundary: Option<Boundary>,
    /// The fragment is a request (its top is a root span of an entry service).
    pub is_request: bool,
    /// Number of spans in the fragment.
    pub spans: u64,
    pub business_key: Option<String>,
    pub start_unix_nanos: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanView {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub duration_ms: f64,
    /// OTel span status: `unset`, `ok` or `error`.
    pub span_status: String,
    /// Lineage classification.
    pub status: LineageStatus,
    /// For orphans: cause and boundary of the break span of their fragment.
    pub cause: Option<Cause>,
    pub boundary: Option<Boundary>,
    /// This span is where its fragment's chain breaks.
    pub is_break: bool,
    pub business_key: Option<String>,
    /// When lineage received the span (unix nanoseconds, lineage's clock).
    pub arrival_unix_nanos: u64,
    pub links: Vec<LinkView>,
    pub depth: u32,
    /// Index of the parent in `TraceView::spans`, when the parent is held.
    pub parent: Option<usize>,
    pub children: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub trace_id: String,
    pub span_id: String,
}

/// The fragments (traces) of one business key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestView {
    pub key: String,
    /// Entry roots carrying the key.
    pub requests: u64,
    /// Fragments carrying the key, across all traces, by start time: each
    /// names its top span (entry root, linked root or break span) and status.
    pub fragments: Vec<FragmentView>,
    /// Boundary of each orphan fragment carrying the key, by start time.
    pub breaks: Vec<Boundary>,
    /// E.g. `1 request → 4 fragments, 3 breaks: http, async, messaging`.
    pub summary: String,
    pub traces: Vec<TraceView>,
}

pub(crate) fn trace_view(store: &Store, trace_id: TraceId, trace: &Trace) -> TraceView {
    let classification = classify(trace);
    let fragment_keys = trace.fragment_keys(&classification.top);
    let n = trace.spans.len();
    let span_key = |slot: u16| trace.key(slot).map(str::to_owned);

    let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut is_top_level = vec![false; n];
    for (i, span) in trace.spans.iter().enumerate() {
        match (span.parent_id != 0).then(|| trace.position(span.parent_id)).flatten() {
            Some(p) if p as usize != i => children[p as usize].push(i as u32),
            _ => is_top_level[i] = true,
        }
    }
    let by_start = |&a: &u32, &b: &u32| {
        let (sa, sb) = (&trace.spans[a as usize], &trace.spans[b as usize]);
        (sa.start, sa.span_id).cmp(&(sb.start, sb.span_id))
    };
    for list in &mut children {
        list.sort_by(by_start);
    }
    // Tops first; then fragment heads inside parent cycles, which no top reaches.
    let mut starts: Vec<u32> = (0..n as u32).filter(|&i| is_top_level[i as usize]).collect();
    starts.sort_by(by_start);
    let mut cycle_heads: Vec<u32> =
        (0..n as u32).filter(|&i| !is_top_level[i as usize] && classification.top[i as usize] == i).collect();
    cycle_heads.sort_by(by_start);
    starts.extend(cycle_heads);

    let mut order: Vec<(u32, u32, Option<usize>)> = Vec::with_capacity(n);
    let mut position = vec![usize::MAX; n];
    let mut stack: Vec<(u32, u32, Option<usize>)> = Vec::new();
    for start in starts.into_iter().chain(0..n as u32) {
        if position[start as usize] != usize::MAX {
            continue;
        }
        stack.push((start, 0, None));
        while let Some((i, depth, parent)) = stack.pop() {
            if position[i as usize] != usize::MAX {
                continue;
            }
            position[i as usize] = order.len();
            order.push((i, depth, parent));
            let here = order.len() - 1;
            for &c in children[i as usize].iter().rev() {
                if position[c as usize] == usize::MAX {
                    stack.push((c, depth + 1, Some(here)));
                }
            }
        }
    }

    let mut links: Vec<Vec<LinkView>> = vec![Vec::new(); n];
    for link in &trace.links {
        links[link.span as usize]
            .push(LinkView { trace_id: format_trace_id(link.trace_id), span_id: format_span_id(link.span_id) });
    }

    let mut counts = [0u64; 3];
    let mut fragment_sizes = vec![0u64; n];
    let mut spans: Vec<SpanView> = Vec::with_capacity(n);
    for &(i, depth, parent) in &order {
        let i = i as usize;
        let span = &trace.spans[i];
        let top = classification.top[i];
        fragment_sizes[top as usize] += 1;
        let class = store.tally.class_of(trace, top);
        let status = class.status();
        counts[status as usize] += 1;
        spans.push(SpanView {
            span_id: format_span_id(span.span_id),
            parent_span_id: (span.parent_id != 0).then(|| format_span_id(span.parent_id)),
            service: store.service_name(span.service).to_owned(),
            name: store.span_name(span.name).to_owned(),
            kind: kind::name(span.kind).to_owned(),
            start_unix_nanos: span.start,
            end_unix_nanos: span.end,
            duration_ms: span.end.saturating_sub(span.start) as f64 / 1e6,
            span_status: status_code::name(span.status).to_owned(),
            status,
            cause: class.cause(),
            boundary: class.boundary(),
            is_break: top as usize == i && status == LineageStatus::Orphan,
            business_key: span_key(span.key),
            arrival_unix_nanos: trace.arrival(span),
            links: std::mem::take(&mut links[i]),
            depth,
            parent,
            children: Vec::new(),
        });
    }
    for (pos, &(_, _, parent)) in order.iter().enumerate() {
        if let Some(p) = parent {
            spans[p].children.push(pos);
        }
    }

    let mut fragments: Vec<FragmentView> = order
        .iter()
        .enumerate()
        .filter(|(_, (i, _, _))| classification.top[*i as usize] == *i)
        .map(|(pos, &(i, _, _))| {
            let span = &trace.spans[i as usize];
            let class = store.tally.class_of(trace, i);
            FragmentView {
                trace_id: format_trace_id(trace_id),
                index: pos,
                span_id: format_span_id(span.span_id),
                service: store.service_name(span.service).to_owned(),
                name: store.span_name(span.name).to_owned(),
                kind: kind::name(span.kind).to_owned(),
                status: class.status(),
                cause: class.cause(),
                boundary: class.boundary(),
                is_request: class == FragmentClass::Request,
                spans: fragment_sizes[i as usize],
                business_key: span_key(fragment_keys[i as usize]),
                start_unix_nanos: span.start,
            }
        })
        .collect();
    fragments.sort_by(|a, b| (a.start_unix_nanos, &a.span_id).cmp(&(b.start_unix_nanos, &b.span_id)));

    let mut business_keys: Vec<String> = trace.keys.iter().map(|k| k.to_string()).collect();
    business_keys.sort();
    TraceView {
        trace_id: format_trace_id(trace_id),
        settled: trace.settled,
        business_keys,
        start_unix_nanos: trace.spans.iter().map(|s| s.start).min().unwrap_or(0),
        end_unix_nanos: trace.spans.iter().map(|s| s.end).max().unwrap_or(0),
        connected: counts[LineageStatus::Connected as usize],
        linked: counts[LineageStatus::Linked as usize],
        orphans: counts[LineageStatus::Orphan as usize],
        fragments,
        spans,
    }
}

pub(crate) fn request_view(key: &str, traces: Vec<TraceView>) -> RequestView {
    let mut mine: Vec<FragmentView> = traces
        .iter()
        .flat_map(|t| t.fragments.iter())
        .filter(|f| f.business_key.as_deref() == Some(key))
        .cloned()
        .collect();
    mine.sort_by(|a, b| {
        (a.start_unix_nanos, &a.trace_id, &a.span_id).cmp(&(b.start_unix_nanos, &b.trace_id, &b.span_id))
    });
    let requests = mine.iter().filter(|f| f.is_request).count() as u64;
    let breaks: Vec<Boundary> = mine.iter().filter_map(|f| f.boundary).collect();
    let summary = summary_line(requests, mine.len() as u64, &breaks);
    RequestView { key: key.to_owned(), requests, fragments: mine, breaks, summary, traces }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary_line(requests: u64, fragments: u64, breaks: &[Boundary]) -> String {
    let mut line = format!(
        "{} → {}, {}",
        plural(requests, "request", "requests"),
        plural(fragments, "fragment", "fragments"),
        plural(breaks.len() as u64, "break", "breaks"),
    );
    if !breaks.is_empty() {
        let names: Vec<&str> = breaks.iter().map(|b| b.as_str()).collect();
        let _ = write!(line, ": {}", names.join(", "));
    }
    line
}

/// Deeper spans stop indenting and show their depth instead, so deep chains stay readable.
const MAX_INDENT_DEPTH: u32 = 24;

/// What the dump prints at the end of a span's line.
pub(crate) fn marker(span: &SpanView) -> String {
    match (span.status, span.is_break) {
        (LineageStatus::Orphan, true) => {
            format!("✗ BREAK {}/{}", span.cause.map_or("?", |c| c.as_str()), span.boundary.map_or("?", |b| b.as_str()))
        }
        (LineageStatus::Orphan, false) => "· orphan".to_owned(),
        (LineageStatus::Linked, _) if !span.links.is_empty() && span.parent_span_id.is_none() => {
            let link = &span.links[0];
            format!("⇢ LINKED to {}/{}", link.trace_id, link.span_id)
        }
        (LineageStatus::Linked, _) => "· linked".to_owned(),
        (LineageStatus::Connected, _) => String::new(),
    }
}

fn format_duration_ms(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.2} ms") }
}

/// The text span dump of one trace: a header line, then one line per span,
/// indented by depth, with orphans and break points marked.
pub fn dump_trace(trace: &TraceView) -> String {
    let mut out = String::new();
    let keys = if trace.business_keys.is_empty() {
        String::new()
    } else {
        format!(" · key {}", trace.business_keys.join(", "))
    };
    let _ = writeln!(
        out,
        "trace {}{keys} · {}: {} connected, {} linked, {} orphan · {}",
        trace.trace_id,
        plural(trace.spans.len() as u64, "span", "spans"),
        trace.connected,
        trace.linked,
        trace.orphans,
        if trace.settled { "settled" } else { "open" },
    );
    let lefts: Vec<String> = trace
        .spans
        .iter()
        .map(|s| {
            let indent = "  ".repeat(s.depth.min(MAX_INDENT_DEPTH) as usize + 1);
            let deep = if s.depth > MAX_INDENT_DEPTH { format!("[{}] ", s.depth) } else { String::new() };
            format!("{indent}{deep}{} {} {}", s.service, s.kind.to_uppercase(), s.name)
        })
        .collect();
    let width = lefts.iter().map(|l| l.chars().count()).max().unwrap_or(0).min(72);
    for (span, left) in trace.spans.iter().zip(&lefts) {
        let pad = width.saturating_sub(left.chars().count());
        let mut line = format!(
            "{left}{:pad$}  span {} parent {:<16}  {:>10}",
            "",
            span.span_id,
            span.parent_span_id.as_deref().unwrap_or("-"),
            format_duration_ms(span.duration_ms),
        );
        let mark = marker(span);
        if !mark.is_empty() {
            line.push_str("  ");
            line.push_str(&mark);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The text span dump of all fragments of one business key.
pub fn dump_request(business_key: &str, request: &RequestView) -> String {
    let mut out = format!("request {business_key}={}: {}\n", request.key, request.summary);
    for trace in &request.traces {
        out.push('\n');
        out.push_str(&dump_trace(trace));
    }
    out
}
