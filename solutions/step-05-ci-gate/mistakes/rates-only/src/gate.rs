//! The end-to-end gate of the final flow: given one recorded run, every
//! reason it must not pass CI.
//!
//! A wrong fix: rates only. It asks for requests, the 1% limit and the
//! committed baseline, and nothing of each request's shape, so a flow that
//! loses a hop while staying connected gets through.

use stitch_model::percent;
use stitch_model::{Baseline, CheckRun, ORPHAN_RATE_LIMIT};

/// Every reason `run` fails the gate; empty when it passes.
pub fn violations(run: &CheckRun, baseline: &Baseline) -> Vec<String> {
    let mut violations = Vec::new();
    if run.orders.is_empty() {
        violations.push("no request was accepted".to_owned());
    }
    violations.extend(orphan_violations(run, baseline));
    violations
}

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
