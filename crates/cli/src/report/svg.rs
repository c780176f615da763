//! Step 4's tier as one run measured it, drawn as SVG.

use stitch_model::CheckRun;
use stitch_model::stage::tier::TierData;

/// The tier as one run measured it: who sent how much where.
pub(super) fn routing_svg(run: &CheckRun, tier: &TierData) -> String {
    let spans = run.report.spans_received;
    let box_ = |x: u32, y: u32, w: u32, title: &str, detail: &str| {
        format!(
            "<rect x='{x}' y='{y}' width='{w}' height='56' rx='8' fill='#f4f6fb' stroke='#4a5a85'/>\
             <text x='{}' y='{}' text-anchor='middle' font-weight='bold'>{title}</text>\
             <text x='{}' y='{}' text-anchor='middle' font-size='12'>{detail}</text>",
            x + w / 2,
            y + 23,
            x + w / 2,
            y + 42
        )
    };
    let arrow = |x1: u32, y1: u32, x2: u32, y2: u32, label: &str| {
        format!(
            "<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='#4a5a85' marker-end='url(#head)'/>\
             <text x='{}' y='{}' text-anchor='middle' font-size='11' fill='#333'>{label}</text>",
            (x1 + x2) / 2,
            (y1 + y2) / 2 - 6
        )
    };
    let mut parts = vec![
        box_(10, 112, 150, "services", &format!("{} requests", run.orders.len())),
        box_(230, 112, 150, "tier 1", "load_balancing"),
        box_(230, 232, 150, "lineage", &format!("{spans} spans, all")),
        arrow(160, 140, 230, 140, "OTLP"),
        arrow(305, 168, 305, 232, "unsampled"),
        box_(670, 112, 150, "Jaeger", &format!("{} traces kept", tier.kept_total)),
    ];
    for (index, row) in tier.routing.iter().enumerate() {
        let y = 30 + index as u32 * 164;
        let (received, kept, name) = (row.traces_received, row.traces_kept, &row.collector);
        parts.push(box_(450, y, 150, name, &format!("{received} in, {kept} kept")));
        parts.push(arrow(380, 140, 450, y + 28, "by trace id"));
        parts.push(arrow(600, y + 28, 670, 140, &format!("{kept}")));
    }
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='840' height='300' font-family='sans-serif' font-size='14'>\
         <defs><marker id='head' markerWidth='8' markerHeight='8' refX='8' refY='4' orient='auto'>\
         <path d='M0,0 L8,4 L0,8 z' fill='#4a5a85'/></marker></defs>\
         <rect width='840' height='300' fill='white'/>{}</svg>\n",
        parts.join("")
    )
}
