//! The HTML pages: a waterfall per trace and per shattered request, and an
//! index. Every page is a maud template, so every name a sender chose is
//! escaped unless the code says otherwise (nothing here does). The pages
//! carry no script and no inline style: their style sheet is
//! [`STYLESHEET`], served at [`STYLESHEET_PATH`].

use std::collections::BTreeSet;

use maud::{DOCTYPE, Markup, html};

use crate::links;
use crate::model::{LineageStatus, format_trace_id};
use crate::report::Report;
use crate::store::Store;
use crate::view::{RequestView, SpanView, TraceView, marker};

pub(crate) const STYLESHEET: &str = include_str!("lineage.css");
pub(crate) const STYLESHEET_PATH: &str = "/lineage.css";

/// Rows drawn per page; the text dump has everything beyond.
const MAX_ROWS: usize = 2_000;
/// Depth classes `.d0` to `.d20` in the style sheet.
const MAX_INDENT_DEPTH: u32 = 20;
/// Service colour classes `.c0` to `.c9` in the style sheet.
const PALETTE_SIZE: usize = 10;

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body { main { (body) } }
        }
    }
    .into_string()
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

struct Palette(Vec<String>);

impl Palette {
    fn for_traces<'a>(traces: impl Iterator<Item = &'a TraceView>) -> Palette {
        let services: BTreeSet<&str> = traces.flat_map(|t| t.spans.iter().map(|s| s.service.as_str())).collect();
        Palette(services.into_iter().map(str::to_owned).collect())
    }

    /// The service's colour class.
    fn class(&self, service: &str) -> String {
        let i = self.0.iter().position(|s| s == service).unwrap_or(0);
        format!("c{}", i % PALETTE_SIZE)
    }

    fn legend(&self) -> Markup {
        html! {
            div.legend {
                @for service in &self.0 {
                    span { i.sw.(self.class(service)) {} (service) }
                }
                span { i.sw.orphan {} "orphan span" }
                span { i.sw."break" {} "✗ break span (where the chain breaks)" }
                span { i.sw.linked {} "linked (root with span links)" }
            }
        }
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

    /// Five ticks, placed by the style sheet at 0, 25, 50, 75 and 100 %.
    fn header(&self) -> Markup {
        html! {
            div.row.axis {
                div { "span" }
                div.ticks {
                    @for q in [0.0, 0.25, 0.5, 0.75, 1.0] { span { (format_ms(self.span * q / 1e6)) } }
                }
                div.dur { "duration" }
                div {}
            }
        }
    }
}

fn span_row(span: &SpanView, axis: &Axis, palette: &Palette) -> Markup {
    let left = axis.percent(span.start_unix_nanos);
    let width = (axis.percent(span.end_unix_nanos) - left).max(0.0);
    let colour = palette.class(&span.service);
    let title = format!(
        "{} {} · span {} · parent {}",
        span.service,
        span.name,
        span.span_id,
        span.parent_span_id.as_deref().unwrap_or("none")
    );
    html! {
        div.row.orphan[span.status == LineageStatus::Orphan].linked[span.status == LineageStatus::Linked]
            ."break"[span.is_break] title=(title) {
            div.(format!("d{}", span.depth.min(MAX_INDENT_DEPTH))) {
                @if span.depth > MAX_INDENT_DEPTH { span.kind { "[" (span.depth) "]" } " " }
                i.sw.(colour) {}
                span.svc { (span.service) } " " (span.name) " "
                span.kind { (span.kind.to_uppercase()) }
            }
            div.track {
                svg {
                    rect.(colour) x=(format!("{left:.3}%")) width=(format!("{width:.3}%")) y="7" height="11" rx="3" {}
                }
            }
            div.dur { (format_ms(span.duration_ms)) }
            div.mark { (marker(span)) }
        }
    }
}

fn trace_card(trace: &TraceView, heading: Markup, axis: &Axis, palette: &Palette, budget: &mut usize) -> Markup {
    let class = if trace.orphans > 0 {
        "broken"
    } else if trace.linked > 0 {
        "linkedfrag"
    } else {
        "request"
    };
    let shown = trace.spans.len().min(*budget);
    *budget -= shown;
    html! {
        section.card.(class) {
            h2 { (heading) }
            div.wf {
                (axis.header())
                @for span in &trace.spans[..shown] { (span_row(span, axis, palette)) }
            }
            @if shown < trace.spans.len() {
                p.note {
                    (trace.spans.len() - shown) " more spans not drawn; see "
                    a href=(links::trace_dump(&trace.trace_id)) { "the text dump" } "."
                }
            }
        }
    }
}

fn fragment_tags(trace: &TraceView) -> Markup {
    html! {
        @for f in &trace.fragments {
            @match f.status {
                LineageStatus::Connected => span.tag.ok { "request" },
                LineageStatus::Linked => span.tag.link { "⇢ linked" },
                LineageStatus::Orphan => span.tag.bad {
                    "✗ " (f.cause.map_or("?", |c| c.as_str())) " / " (f.boundary.map_or("?", |b| b.as_str()))
                },
            }
        }
    }
}

fn trace_heading(trace: &TraceView, label: Option<Markup>) -> Markup {
    let top = trace.fragments.first();
    html! {
        @if let Some(label) = label { (label) }
        a.mono href=(links::trace_page(&trace.trace_id)) { (trace.trace_id) }
        (fragment_tags(trace))
        span.meta {
            @if let Some(f) = top { (f.service) " " (f.kind.to_uppercase()) " " (f.name) }
            " · " (trace.spans.len()) " span" (plural(trace.spans.len()))
            " · " (if trace.settled { "settled" } else { "open" })
        }
    }
}

pub(crate) fn trace_page(trace: &TraceView) -> String {
    let axis = Axis::for_traces(std::iter::once(trace));
    let palette = Palette::for_traces(std::iter::once(trace));
    let mut budget = MAX_ROWS;
    let body = html! {
        div.crumbs { a href="/" { "lineage" } " › trace" }
        h1 { "Trace " code { (trace.trace_id) } }
        p.summary {
            (trace.spans.len()) " spans: " (trace.connected) " connected, " (trace.linked) " linked, "
            b.bad[trace.orphans > 0] { (trace.orphans) " orphan" }
            " · " (trace.fragments.len()) " fragment" (plural(trace.fragments.len()))
            @if !trace.business_keys.is_empty() {
                " · key "
                @for (i, key) in trace.business_keys.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href=(links::request_page(key)) { (key) }
                }
            }
        }
        (palette.legend())
        (trace_card(trace, trace_heading(trace, None), &axis, &palette, &mut budget))
        p.note {
            a href=(links::trace_json(&trace.trace_id)) { "JSON" } " · "
            a href=(links::trace_dump(&trace.trace_id)) { "text dump" }
        }
    };
    page(&format!("lineage · trace {}", trace.trace_id), body)
}

pub(crate) fn request_page(business_key: &str, request: &RequestView) -> String {
    let axis = Axis::for_traces(request.traces.iter());
    let palette = Palette::for_traces(request.traces.iter());
    let mut budget = MAX_ROWS;
    let cards: Vec<Markup> = request
        .traces
        .iter()
        .enumerate()
        .map(|(i, trace)| {
            let label = html! { span.tag { "fragment " (i + 1) " of " (request.traces.len()) } };
            trace_card(trace, trace_heading(trace, Some(label)), &axis, &palette, &mut budget)
        })
        .collect();
    let body = html! {
        div.crumbs { a href="/" { "lineage" } " › request" }
        h1 { "Request " code { (business_key) " = " (request.key) } }
        p.summary { (request.summary) }
        (palette.legend())
        @for card in cards { (card) }
        p.note {
            a href=(links::request_json(&request.key)) { "JSON" } " · "
            a href=(links::request_dump(&request.key)) { "text dump" }
        }
    };
    page(&format!("lineage · {business_key}={}", request.key), body)
}

pub(crate) fn index_page(store: &Store, report: &Report) -> String {
    let body = html! {
        h1 { "lineage" }
        p.summary {
            (report.spans_settled) " spans settled in " (report.traces_settled) " traces · "
            (report.requests) " requests · orphan-span rate "
            b.bad[report.orphans() > 0] { (format!("{:.1} %", report.orphan_rate() * 100.0)) }
            " · " (report.held.traces) " traces held (" (report.traces_open) " open)"
        }
        div.grid2 {
            section.card {
                h2 { "Services" }
                table {
                    tr {
                        th { "service" } th.num { "spans" } th.num { "connected" } th.num { "linked" }
                        th.num { "orphans" } th.num { "orphan rate" }
                    }
                    @for s in &report.services {
                        tr {
                            td { (s.service) } td.num { (s.spans) } td.num { (s.connected) } td.num { (s.linked) }
                            td.num { (s.orphans) } td.num { (format!("{:.1} %", s.orphan_rate * 100.0)) }
                        }
                    }
                }
            }
            section.card {
                h2 { "Boundaries" }
                table {
                    tr {
                        th { "boundary" } th.num { "broken requests" } th.num { "break rate" }
                        th.num { "request root missing" } th.num { "unattributed breaks" }
                    }
                    @for b in &report.boundaries {
                        tr {
                            td { (b.boundary) } td.num { (b.breaks) } td.num { (format!("{:.1} %", b.break_rate * 100.0)) }
                            td.num { (report.request_root_missing.get(b.boundary)) }
                            td.num { (report.unattributed_breaks.get(b.boundary)) }
                        }
                    }
                }
                p.note {
                    (format!(
                        "completeness latency: p50 {:.1} ms · p99 {:.1} ms · max {:.1} ms ({} requests)",
                        report.completeness.p50_ms,
                        report.completeness.p99_ms,
                        report.completeness.max_ms,
                        report.completeness.count
                    ))
                }
            }
        }
        div.grid2 {
            section.card {
                h2 { "Recent requests " span.meta { "by " (store.config.business_key) } }
                table {
                    tr { th { "key" } th.num { "traces" } }
                    @for (key, traces, _) in store.recent_keys(50) {
                        tr {
                            td { a href=(links::request_page(key)) { (key) } }
                            td.num { (traces) @if traces > 1 { " " span.tag.bad { "shattered" } } }
                        }
                    }
                }
            }
            section.card {
                h2 { "Recent traces" }
                table {
                    tr { th { "trace" } th { "first span" } th.num { "spans" } th { "state" } }
                    @for (id, trace) in store.recent_traces(50) {
                        @let id = format_trace_id(id);
                        tr {
                            td { a.mono href=(links::trace_page(&id)) { (id) } }
                            td {
                                @if let Some(first) = trace.spans.iter().min_by_key(|s| (s.start, s.span_id)) {
                                    (store.service_name(first.service)) " " (store.span_name(first.name))
                                }
                            }
                            td.num { (trace.spans.len()) }
                            td { (if trace.settled { "settled" } else { "open" }) }
                        }
                    }
                }
            }
        }
        p.note { a href="/api/report" { "report (JSON)" } " · " a href="/metrics" { "metrics" } }
    };
    page("lineage", body)
}

pub(crate) fn not_found_page(message: &str) -> String {
    let body = html! {
        div.crumbs { a href="/" { "lineage" } }
        h1 { "Not found" }
        p { (message) }
    };
    page("lineage · not found", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_style_sheet_has_every_class_the_pages_use() {
        for i in 0..PALETTE_SIZE {
            assert!(STYLESHEET.contains(&format!(".c{i}{{color:")), "colour class c{i}");
        }
        for depth in 0..=MAX_INDENT_DEPTH {
            assert!(STYLESHEET.contains(&format!(".d{depth}{{padding-left:")), "depth class d{depth}");
        }
    }

    #[test]
    fn names_are_text() {
        let html = not_found_page("no held trace carries order.id=\"<script>alert(1)</script>\"");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
    }
}
