//! Self-contained HTML pages (inline CSS, no scripts): a waterfall per trace
//! and per shattered request, and an index.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::model::{LineageStatus, format_trace_id};
use crate::report::Report;
use crate::store::Store;
use crate::view::{RequestView, SpanView, TraceView, marker};

/// Rows drawn per page; the text dump has everything beyond.
const MAX_ROWS: usize = 2_000;
const MAX_INDENT_DEPTH: u32 = 20;

/// Colour-blind-friendly hues; red is left out because it marks breaks.
const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#86bcb6", "#8c8c8c", "#d4a6c8"];

const STYLE: &str = r#"
:root{--ink:#1d2330;--muted:#687085;--line:#e3e6ec;--bad:#c62828;--badbg:#fdecec;--link:#1f5fbf;--linkbg:#edf3fd}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#f5f6f8}
main{max-width:1320px;margin:0 auto;padding:22px 28px 40px}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
h1{font-size:21px;margin:0 0 4px;font-weight:650}
h2{font-size:14.5px;margin:0 0 10px;font-weight:600;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.crumbs{font-size:12.5px;color:var(--muted);margin-bottom:6px}
.summary{font-size:16px;margin:4px 0 14px}
.summary b.bad{color:var(--bad)}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center;font-size:12.5px;color:var(--muted);margin:0 0 14px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.sw.orphan{background:var(--badbg);border:1px solid #f3b9b9}
.sw.linked{background:var(--linkbg);border:1px solid #b9cdf3}
.sw.break{background:#fff;outline:2px solid var(--bad);outline-offset:-2px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:0 0 14px}
.card.broken{border-left:4px solid var(--bad)}
.card.linkedfrag{border-left:4px solid var(--link)}
.card.request{border-left:4px solid #2e7d32}
.tag{font-size:11.5px;font-weight:600;padding:1px 7px;border-radius:10px;background:#eceff3;color:var(--ink)}
.tag.bad{background:var(--badbg);color:var(--bad)}
.tag.ok{background:#e8f4ea;color:#2e7d32}
.tag.link{background:var(--linkbg);color:var(--link)}
.meta{font-weight:400;color:var(--muted)}
.wf{display:grid;grid-template-columns:minmax(240px,28%) 1fr 72px 290px;font-size:12.5px}
.row{display:contents}
.row>div{padding:3px 6px;border-bottom:1px solid #f0f1f4;min-height:25px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.row.orphan>div{background-color:var(--badbg)}
.row.linked>div{background-color:var(--linkbg)}
.row.break>div:first-child{box-shadow:inset 3px 0 0 var(--bad)}
.svc{font-weight:600}
.kind{font-size:10.5px;color:var(--muted);letter-spacing:.03em;margin-left:4px}
.row>div.track{overflow:visible}
.track{position:relative;background-image:linear-gradient(to right,#eceef2 1px,transparent 1px);background-size:25% 100%}
.bar{position:absolute;top:7px;height:11px;border-radius:3px;min-width:2px}
.row.break .bar{outline:2px solid var(--bad);outline-offset:1px}
.dur{text-align:right;color:var(--muted);font-variant-numeric:tabular-nums}
.mark{color:var(--bad);font-weight:600}
.row.linked .mark{color:var(--link)}
.row.orphan:not(.break) .mark{font-weight:400}
.axis>div{border-bottom:1px solid var(--line);color:var(--muted);font-size:11px;min-height:20px}
.ticks{position:relative}
.ticks span{position:absolute;top:3px;transform:translateX(-50%)}
.ticks span:first-child{transform:none}
.ticks span:last-child{transform:translateX(-100%)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #eef0f3}
th{color:var(--muted);font-weight:600;font-size:12px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:var(--muted);font-size:12.5px;margin-top:8px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}
"#;

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (business keys may hold anything).
fn encode_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n{body}</main></body></html>\n",
        escape(title)
    )
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

struct Palette(Vec<String>);

impl Palette {
    fn for_traces<'a>(traces: impl Iterator<Item = &'a TraceView>) -> Palette {
        let services: BTreeSet<&str> = traces.flat_map(|t| t.spans.iter().map(|s| s.service.as_str())).collect();
        Palette(services.into_iter().map(str::to_owned).collect())
    }

    fn colour(&self, service: &str) -> &'static str {
        let i = self.0.iter().position(|s| s == service).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }

    fn legend(&self) -> String {
        let mut out = String::from("<div class=\"legend\">");
        for service in &self.0 {
            let _ = write!(
                out,
                "<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>",
                self.colour(service),
                escape(service)
            );
        }
        out.push_str(
            "<span><i class=\"sw orphan\"></i>orphan span</span>\
             <span><i class=\"sw break\"></i>✗ break span (where the chain breaks)</span>\
             <span><i class=\"sw linked\"></i>linked (root with span links)</span></div>\n",
        );
        out
    }
}

/// A shared time axis for every fragment on the page.
struct Axis {
    start: u64,
    span: f64,
}

impl Axis {
    fn for_traces<'a>(traces: impl Iterator<Item = &'a TraceView> + Clone) -> Axis {
        let start = traces.clone().map(|t| t.start_unix_nanos).min().unwrap_or(0);
        let end = traces.map(|t| t.end_unix_nanos).max().unwrap_or(start);
        Axis { start, span: (end.saturating_sub(start)).max(1) as f64 }
    }

    fn percent(&self, at: u64) -> f64 {
        (at.saturating_sub(self.start) as f64 / self.span * 100.0).clamp(0.0, 100.0)
    }

    fn header(&self) -> String {
        let mut ticks = String::new();
        for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let _ = write!(ticks, "<span style=\"left:{:.2}%\">{}</span>", q * 100.0, format_ms(self.span * q / 1e6));
        }
        format!(
            "<div class=\"row axis\"><div>span</div><div class=\"ticks\">{ticks}</div>\
             <div class=\"dur\">duration</div><div></div></div>\n"
        )
    }
}

fn span_row(out: &mut String, span: &SpanView, axis: &Axis, palette: &Palette) {
    let mut classes = vec!["row"];
    match span.status {
        LineageStatus::Orphan => classes.push("orphan"),
        LineageStatus::Linked => classes.push("linked"),
        LineageStatus::Connected => {}
    }
    if span.is_break {
        classes.push("break");
    }
    let indent = 6 + 14 * span.depth.min(MAX_INDENT_DEPTH);
    let deep = if span.depth > MAX_INDENT_DEPTH {
        format!("<span class=\"kind\">[{}]</span> ", span.depth)
    } else {
        String::new()
    };
    let left = axis.percent(span.start_unix_nanos);
    let right = axis.percent(span.end_unix_nanos);
    let colour = palette.colour(&span.service);
    let title = format!(
        "{} {} · span {} · parent {}",
        span.service,
        span.name,
        span.span_id,
        span.parent_span_id.as_deref().unwrap_or("none")
    );
    let _ = writeln!(
        out,
        "<div class=\"{}\" title=\"{}\"><div style=\"padding-left:{indent}px\">{deep}\
         <i class=\"sw\" style=\"background:{colour}\"></i><span class=\"svc\">{}</span> {} \
         <span class=\"kind\">{}</span></div>\
         <div class=\"track\"><div class=\"bar\" style=\"left:{left:.3}%;width:{:.3}%;background:{colour}\"></div></div>\
         <div class=\"dur\">{}</div><div class=\"mark\">{}</div></div>",
        classes.join(" "),
        escape(&title),
        escape(&span.service),
        escape(&span.name),
        span.kind.to_uppercase(),
        (right - left).max(0.0),
        format_ms(span.duration_ms),
        escape(&marker(span)),
    );
}

fn trace_card(out: &mut String, trace: &TraceView, heading: &str, axis: &Axis, palette: &Palette, budget: &mut usize) {
    let class = if trace.orphans > 0 {
        "card broken"
    } else if trace.linked > 0 {
        "card linkedfrag"
    } else {
        "card request"
    };
    let _ = writeln!(out, "<section class=\"{class}\"><h2>{heading}</h2><div class=\"wf\">");
    out.push_str(&axis.header());
    let shown = trace.spans.len().min(*budget);
    for span in &trace.spans[..shown] {
        span_row(out, span, axis, palette);
    }
    *budget -= shown;
    out.push_str("</div>");
    if shown < trace.spans.len() {
        let _ = write!(
            out,
            "<p class=\"note\">{} more spans not drawn; see <a href=\"/api/traces/{id}/dump\">the text dump</a>.</p>",
            trace.spans.len() - shown,
            id = trace.trace_id
        );
    }
    out.push_str("</section>\n");
}

fn fragment_tags(trace: &TraceView) -> String {
    let mut tags = String::new();
    for f in &trace.fragments {
        let (class, text) = match f.status {
            LineageStatus::Connected => ("tag ok", "request".to_owned()),
            LineageStatus::Linked => ("tag link", "⇢ linked".to_owned()),
            LineageStatus::Orphan => (
                "tag bad",
                format!("✗ {} / {}", f.cause.map_or("?", |c| c.as_str()), f.boundary.map_or("?", |b| b.as_str())),
            ),
        };
        let _ = write!(tags, "<span class=\"{class}\">{}</span>", escape(&text));
    }
    tags
}

fn trace_heading(trace: &TraceView, label: &str) -> String {
    let top = trace.fragments.first();
    format!(
        "{label}<a class=\"mono\" href=\"/traces/{id}\">{id}</a>{tags}\
         <span class=\"meta\">{top} · {n} span{s} · {state}</span>",
        id = trace.trace_id,
        tags = fragment_tags(trace),
        top = top.map_or(String::new(), |f| escape(&format!("{} {} {}", f.service, f.kind.to_uppercase(), f.name))),
        n = trace.spans.len(),
        s = if trace.spans.len() == 1 { "" } else { "s" },
        state = if trace.settled { "settled" } else { "open" },
    )
}

pub(crate) fn trace_page(trace: &TraceView) -> String {
    let axis = Axis::for_traces(std::iter::once(trace));
    let palette = Palette::for_traces(std::iter::once(trace));
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<div class=\"crumbs\"><a href=\"/\">lineage</a> › trace</div>\
         <h1>Trace <code>{}</code></h1>",
        trace.trace_id
    );
    let keys: Vec<String> = trace
        .business_keys
        .iter()
        .map(|k| format!("<a href=\"/requests/{}\">{}</a>", encode_segment(k), escape(k)))
        .collect();
    let _ = writeln!(
        body,
        "<p class=\"summary\">{} spans: {} connected, {} linked, <b class=\"{}\">{} orphan</b> · {} fragment{}{}</p>",
        trace.spans.len(),
        trace.connected,
        trace.linked,
        if trace.orphans > 0 { "bad" } else { "" },
        trace.orphans,
        trace.fragments.len(),
        if trace.fragments.len() == 1 { "" } else { "s" },
        if keys.is_empty() { String::new() } else { format!(" · key {}", keys.join(", ")) },
    );
    body.push_str(&palette.legend());
    let mut budget = MAX_ROWS;
    trace_card(&mut body, trace, &trace_heading(trace, ""), &axis, &palette, &mut budget);
    let _ = writeln!(
        body,
        "<p class=\"note\"><a href=\"/api/traces/{id}\">JSON</a> · <a href=\"/api/traces/{id}/dump\">text dump</a></p>",
        id = trace.trace_id
    );
    page(&format!("lineage · trace {}", trace.trace_id), &body)
}

pub(crate) fn request_page(business_key: &str, request: &RequestView) -> String {
    let axis = Axis::for_traces(request.traces.iter());
    let palette = Palette::for_traces(request.traces.iter());
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<div class=\"crumbs\"><a href=\"/\">lineage</a> › request</div>\
         <h1>Request <code>{} = {}</code></h1>\
         <p class=\"summary\">{}</p>",
        escape(business_key),
        escape(&request.key),
        escape(&request.summary)
    );
    body.push_str(&palette.legend());
    let mut budget = MAX_ROWS;
    for (i, trace) in request.traces.iter().enumerate() {
        let label = format!("<span class=\"tag\">fragment {} of {}</span>", i + 1, request.traces.len());
        trace_card(&mut body, trace, &trace_heading(trace, &label), &axis, &palette, &mut budget);
    }
    let _ = writeln!(
        body,
        "<p class=\"note\"><a href=\"/api/requests/{k}\">JSON</a> · <a href=\"/api/requests/{k}/dump\">text dump</a></p>",
        k = encode_segment(&request.key)
    );
    page(&format!("lineage · {business_key}={}", request.key), &body)
}

pub(crate) fn index_page(store: &Store, report: &Report) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>lineage</h1><p class=\"summary\">{} spans settled in {} traces · {} requests · \
         orphan-span rate <b class=\"{}\">{:.1} %</b> · {} traces held ({} open)</p>",
        report.spans_settled,
        report.traces_settled,
        report.requests,
        if report.orphans() > 0 { "bad" } else { "" },
        report.orphan_rate() * 100.0,
        report.held.traces,
        report.traces_open,
    );
    body.push_str(
        "<div class=\"grid2\"><section class=\"card\"><h2>Services</h2><table><tr><th>service</th>\
        <th class=\"num\">spans</th><th class=\"num\">connected</th><th class=\"num\">linked</th>\
        <th class=\"num\">orphans</th><th class=\"num\">orphan rate</th></tr>\n",
    );
    for s in &report.services {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{:.1} %</td></tr>",
            escape(&s.service),
            s.spans,
            s.connected,
            s.linked,
            s.orphans,
            s.orphan_rate * 100.0
        );
    }
    body.push_str("</table></section><section class=\"card\"><h2>Boundaries</h2><table><tr><th>boundary</th>\
        <th class=\"num\">broken requests</th><th class=\"num\">break rate</th><th class=\"num\">request root missing</th><th class=\"num\">unattributed breaks</th></tr>\n");
    for b in &report.boundaries {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1} %</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            b.boundary,
            b.breaks,
            b.break_rate * 100.0,
            report.request_root_missing.get(b.boundary),
            report.unattributed_breaks.get(b.boundary)
        );
    }
    let _ = writeln!(
        body,
        "</table><p class=\"note\">completeness latency: p50 {:.1} ms · p99 {:.1} ms · max {:.1} ms ({} requests)</p></section></div>",
        report.completeness.p50_ms, report.completeness.p99_ms, report.completeness.max_ms, report.completeness.count
    );

    let _ = writeln!(
        body,
        "<div class=\"grid2\"><section class=\"card\"><h2>Recent requests <span class=\"meta\">by {}</span></h2>\
         <table><tr><th>key</th><th class=\"num\">traces</th></tr>",
        escape(&store.config.business_key)
    );
    for (key, traces, _) in store.recent_keys(50) {
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/requests/{}\">{}</a></td><td class=\"num\">{}{}</td></tr>",
            encode_segment(key),
            escape(key),
            traces,
            if traces > 1 { " <span class=\"tag bad\">shattered</span>" } else { "" }
        );
    }
    body.push_str(
        "</table></section><section class=\"card\"><h2>Recent traces</h2><table>\
        <tr><th>trace</th><th>first span</th><th class=\"num\">spans</th><th>state</th></tr>\n",
    );
    for (id, trace) in store.recent_traces(50) {
        let first = trace.spans.iter().min_by_key(|s| (s.start, s.span_id));
        let label =
            first.map_or(String::new(), |s| format!("{} {}", store.service_name(s.service), store.span_name(s.name)));
        let _ = writeln!(
            body,
            "<tr><td><a class=\"mono\" href=\"/traces/{id}\">{id}</a></td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            label,
            trace.spans.len(),
            if trace.settled { "settled" } else { "open" },
            id = format_trace_id(id)
        );
    }
    body.push_str(
        "</table></section></div><p class=\"note\"><a href=\"/api/report\">report (JSON)</a> · \
         <a href=\"/metrics\">metrics</a></p>\n",
    );
    page("lineage", &body)
}

pub(crate) fn not_found_page(message: &str) -> String {
    page(
        "lineage · not found",
        &format!("<div class=\"crumbs\"><a href=\"/\">lineage</a></div><h1>Not found</h1><p>{}</p>", escape(message)),
    )
}
