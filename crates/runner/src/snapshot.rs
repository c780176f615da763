//! What lineage shows of a run once its traces settled: each request's
//! shape, the report, and one request's dump and page.

use std::path::Path;

use anyhow::Context as _;
use stitch_model::{Hop, Order, RequestShape, RequestSpan};

/// What lineage shows of a run's requests, once settled.
pub(crate) struct Snapshot {
    pub(crate) shapes: Vec<RequestShape>,
    pub(crate) report: lineage::Report,
    /// The first order's dump; `None` when lineage holds no span of it.
    pub(crate) sample_dump: Option<String>,
    /// The first order's page; `None` likewise.
    pub(crate) sample_page: Option<String>,
}

impl Snapshot {
    /// Lineage's view of `orders`; the first one's dump, when long, is
    /// summarised and written whole into `logs`.
    pub(crate) fn of(lineage: &lineage::Lineage, orders: &[Order], logs: &Path) -> anyhow::Result<Snapshot> {
        let first = orders.first().map(|order| order.order_id.as_str());
        let sample_dump = match first.and_then(|key| Some((key, lineage.request_dump(key)?))) {
            None => None,
            Some((key, dump)) if dump.lines().count() > DUMP_LINES => {
                let request =
                    lineage.request(key).with_context(|| format!("lineage printed {key}'s spans but shows no view"))?;
                let whole = logs.join("one-request.txt");
                std::fs::write(&whole, &dump).with_context(|| format!("writing {}", whole.display()))?;
                Some(summarise_dump(&dump, &request, &whole))
            }
            Some((_, dump)) => Some(dump),
        };
        Ok(Snapshot {
            shapes: orders
                .iter()
                .map(|order| request_shape(lineage, &order.order_id))
                .collect::<anyhow::Result<_>>()?,
            report: lineage.report(),
            sample_dump,
            sample_page: first.and_then(|key| lineage.request_page(key)),
        })
    }
}

/// A request dump longer than this is summarised on the screen.
const DUMP_LINES: usize = 40;

/// A long request dump as a screen shows it: its first and last lines, how
/// many were left out, and the request's spans counted by what lineage made
/// of them; the whole dump is in `whole`.
fn summarise_dump(dump: &str, request: &lineage::RequestView, whole: &Path) -> String {
    const HEAD: usize = 16;
    const TAIL: usize = 8;
    let lines: Vec<&str> = dump.lines().collect();
    let (connected, linked, orphans) = request
        .traces
        .iter()
        .fold((0, 0, 0), |(c, l, o), trace| (c + trace.connected, l + trace.linked, o + trace.orphans));
    let spans: usize = request.traces.iter().map(|trace| trace.spans.len()).sum();
    let mut out: Vec<String> = lines[..HEAD].iter().map(|line| (*line).to_owned()).collect();
    out.push(format!("… {} lines left out …", lines.len() - HEAD - TAIL));
    out.extend(lines[lines.len() - TAIL..].iter().map(|line| (*line).to_owned()));
    out.push(String::new());
    out.push(format!(
        "{} traces, {spans} spans: {connected} connected, {linked} linked, {orphans} orphans; the whole dump ({} \
         lines): {}",
        request.traces.len(),
        lines.len(),
        whole.display()
    ));
    out.join("\n")
}

/// Reads one request's fragments from lineage.
pub fn request_shape(lineage: &lineage::Lineage, order_id: &str) -> anyhow::Result<RequestShape> {
    let traces = lineage.request_traces(order_id);
    let spans = traces.iter().map(|trace| trace.spans.len()).sum();
    let chain = match traces.as_slice() {
        [trace] => stitch_judge::chain::linear_chain(&stitch_judge::chain::TraceHops::of(trace)),
        _ => None,
    };
    let tree = traces
        .iter()
        .flat_map(|trace| trace.spans.iter().map(move |span| (trace, span)))
        .map(|(trace, span)| {
            Ok(RequestSpan {
                trace_id: trace.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                hop: Hop { service: span.service.clone(), kind: span.kind.parse().map_err(anyhow::Error::msg)? },
                name: span.name.clone(),
                start_unix_nanos: span.start_unix_nanos,
                end_unix_nanos: span.end_unix_nanos,
                links: span.links.len(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("reading the spans of {order_id}"))?;
    Ok(RequestShape { order_id: order_id.to_owned(), traces: traces.len(), spans, chain, tree })
}
