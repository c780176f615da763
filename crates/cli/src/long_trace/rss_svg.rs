//! The long mode's picture: tier-2 RSS over time, one line per run and
//! collector, an OOM kill marked where one happened.

use super::{LongRun, wait_seconds};

/// One plotted line: its legend, its colour, its (minutes, MiB) points, and
/// where its collector was OOM-killed (minutes), if it was.
type Line = (String, &'static str, Vec<(f64, f64)>, Option<f64>);

/// Tier-2 RSS over time, one line per run and collector, from the samples.
pub(super) fn rss_svg(runs: &[&LongRun]) -> anyhow::Result<String> {
    let (width, height) = (840.0, 380.0);
    let (left, right, top, bottom) = (60.0, 200.0, 20.0, 50.0);
    let mut lines: Vec<Line> = Vec::new();
    for run in runs {
        let data = run.data()?;
        let all = &data.samples;
        let collectors: std::collections::BTreeSet<&String> = all.iter().map(|s| &s.collector).collect();
        lines.extend(collectors.into_iter().enumerate().map(|(index, collector)| {
            let naive = !run.solution && data.decision_wait_ms > 30_000;
            let colour = match (run.solution, naive, index) {
                (false, true, 0) => "#c0392b",
                (false, true, _) => "#e67e22",
                (false, false, 0) => "#7d3c98",
                (false, false, _) => "#af7ac5",
                (true, _, 0) => "#1f618d",
                (true, _, _) => "#17a589",
            };
            let killed_at = data
                .hard_limit
                .iter()
                .flat_map(|hard| &hard.collectors)
                .find(|c| &c.collector == collector)
                .and_then(|c| c.died_at_seconds)
                .map(|t| t / 60.0);
            let points = all
                .iter()
                .filter(|sample| &sample.collector == collector)
                .map(|sample| (sample.t / 60.0, sample.rss_bytes / (1024.0 * 1024.0)))
                .collect();
            let flow = if run.solution { "solution" } else { "unsolved" };
            (format!("{collector}, {flow}, wait {} s", wait_seconds(data)), colour, points, killed_at)
        }));
    }
    let max_t = lines.iter().flat_map(|(_, _, points, _)| points.iter().map(|p| p.0)).fold(1.0, f64::max).ceil();
    let max_y = (lines.iter().flat_map(|(_, _, points, _)| points.iter().map(|p| p.1)).fold(10.0, f64::max) / 25.0)
        .ceil()
        * 25.0;
    let x = |t: f64| left + t / max_t * (width - left - right);
    let y = |mib: f64| height - bottom - mib / max_y * (height - top - bottom);
    let mut parts = Vec::new();
    for minute in 0..=max_t as u32 {
        let px = x(f64::from(minute));
        parts.push(format!(
            "<line x1='{px:.1}' y1='{top}' x2='{px:.1}' y2='{:.1}' stroke='#eee'/>\
             <text x='{px:.1}' y='{:.1}' text-anchor='middle' font-size='11'>{minute}</text>",
            height - bottom,
            height - bottom + 16.0
        ));
    }
    let mut mib = 0.0;
    while mib <= max_y {
        let py = y(mib);
        parts.push(format!(
            "<line x1='{left}' y1='{py:.1}' x2='{:.1}' y2='{py:.1}' stroke='#eee'/>\
             <text x='{:.1}' y='{:.1}' text-anchor='end' font-size='11'>{mib:.0}</text>",
            width - right,
            left - 6.0,
            py + 4.0
        ));
        mib += 25.0;
    }
    for (index, (label, colour, points, killed_at)) in lines.iter().enumerate() {
        let path: Vec<String> = points.iter().map(|(t, mib)| format!("{:.1},{:.1}", x(*t), y(*mib))).collect();
        parts.push(format!("<polyline fill='none' stroke='{colour}' stroke-width='2' points='{}'/>", path.join(" ")));
        // The kill: a cross at the collector's last reading, at the time it was found dead.
        if let (Some(at), Some(&(_, last))) = (killed_at, points.last()) {
            let (px, py) = (x(*at), y(last));
            parts.push(format!(
                "<path d='M{:.1},{:.1} l10,10 m0,-10 l-10,10' stroke='{colour}' stroke-width='3'/>\
                 <text x='{:.1}' y='{:.1}' font-size='11' fill='{colour}'>OOM kill</text>",
                px - 5.0,
                py - 5.0,
                px + 8.0,
                py - 8.0
            ));
        }
        let ly = top + 10.0 + index as f64 * 22.0;
        parts.push(format!(
            "<line x1='{:.1}' y1='{ly:.1}' x2='{:.1}' y2='{ly:.1}' stroke='{colour}' stroke-width='3'/>\
             <text x='{:.1}' y='{:.1}' font-size='11'>{label}</text>",
            width - right + 10.0,
            width - right + 30.0,
            width - right + 36.0,
            ly + 4.0
        ));
    }
    Ok(format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='12'>\
         <rect width='{width}' height='{height}' fill='white'/>{}\
         <line x1='{left}' y1='{:.1}' x2='{:.1}' y2='{:.1}' stroke='#333'/>\
         <line x1='{left}' y1='{top}' x2='{left}' y2='{:.1}' stroke='#333'/>\
         <text x='{:.1}' y='{:.1}' text-anchor='middle'>minutes since the workload started</text>\
         <text x='14' y='{:.1}' transform='rotate(-90 14 {:.1})' text-anchor='middle'>tier-2 RSS, MiB</text></svg>\n",
        parts.join(""),
        height - bottom,
        width - right,
        height - bottom,
        height - bottom,
        (left + width - right) / 2.0,
        height - 12.0,
        (top + height - bottom) / 2.0,
        (top + height - bottom) / 2.0
    ))
}
