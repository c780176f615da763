//! The end-to-end gate of the final flow: given one recorded run, every
//! reason it must not pass CI.
//!
//! A run passes only when at least one request was accepted, every request is
//! one trace with the expected spans in the expected parent chain, and every
//! internal service of the baseline is under the 1% limit and not above its
//! committed baseline.

use stitch_model::percent;
use stitch_model::{Baseline, EXPECTED_CHAIN, ORPHAN_RATE_LIMIT};
use stitch_model::{CheckRun, RequestShape};

/// Every reason `run` fails the gate; empty when it passes.
pub fn violations(run: &CheckRun, baseline: &Baseline) -> Vec<String> {
    let mut violations = Vec::new();
    if run.orders.is_empty() {
        violations.push("no request was accepted".to_owned());
    }
    violations.extend(shape_violations(&run.shapes));
    violations.extend(orphan_violations(run, baseline));
    violations
}

// ANCHOR: shapes
/// One line per way requests are malformed, with a count and one example.
/// A request is judged by its first failing assertion only: a shattered
/// request has the wrong span count too, and saying so twice adds nothing.
fn shape_violations(shapes: &[RequestShape]) -> Vec<String> {
    let expected: Vec<String> = EXPECTED_CHAIN.iter().map(|link| (*link).to_owned()).collect();
    let shattered: Vec<&RequestShape> = shapes.iter().filter(|shape| shape.traces != 1).collect();
    let miscounted: Vec<&RequestShape> =
        shapes.iter().filter(|shape| shape.traces == 1 && shape.spans != expected.len()).collect();
    let misparented: Vec<&RequestShape> = shapes
        .iter()
        .filter(|shape| shape.traces == 1 && shape.spans == expected.len())
        .filter(|shape| shape.chain.as_ref() != Some(&expected))
        .collect();

    let mut violations = Vec::new();
    if let Some(first) = shattered.first() {
        violations.push(format!(
            "{} of {} requests are not one trace (e.g. {} is {} fragments)",
            shattered.len(),
            shapes.len(),
            first.order_id,
            first.traces
        ));
    }
    if let Some(first) = miscounted.first() {
        violations.push(format!(
            "{} requests do not have {} spans (e.g. {} has {})",
            miscounted.len(),
            expected.len(),
            first.order_id,
            first.spans
        ));
    }
    if let Some(first) = misparented.first() {
        let chain = first.chain.as_ref().map_or("not a single chain".to_owned(), |chain| chain.join(" → "));
        violations.push(format!(
            "{} requests have the wrong parent chain (e.g. {}: {chain})",
            misparented.len(),
            first.order_id
        ));
    }
    violations
}
// ANCHOR_END: shapes

// ANCHOR: orphans
/// One line per internal service of the baseline that is missing, at the
/// limit, or above what the baseline allows.
fn orphan_violations(run: &CheckRun, baseline: &Baseline) -> Vec<String> {
    let mut violations = Vec::new();
    for (service, allowed) in &baseline.services {
        // A service with no row did not report at all: that fails, it is not 0%.
        let Some(row) = run.report.services.iter().find(|row| &row.service == service) else {
            violations.push(format!("{service}: no spans reached lineage"));
            continue;
        };
        if row.orphan_rate >= ORPHAN_RATE_LIMIT {
            violations.push(format!(
                "{service}: orphan rate {} reaches the {} limit",
                percent(row.orphan_rate),
                percent(ORPHAN_RATE_LIMIT)
            ));
        } else if row.orphan_rate > *allowed {
            violations.push(format!(
                "{service}: orphan rate {} rose above the committed baseline {} (ci/gate-baseline.toml)",
                percent(row.orphan_rate),
                percent(*allowed)
            ));
        }
    }
    violations
}
// ANCHOR_END: orphans
