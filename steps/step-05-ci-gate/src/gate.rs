//! The end-to-end gate of the final flow: given one recorded run, every
//! reason it must not pass CI.
//!
//! TODO(step-5): this gate asserts too little. It only asks that some request
//! was accepted, so a flow that shatters every request into fragments passes
//! it, and so does one that loses a hop while staying connected. After your
//! change, a run passes only when all of this holds:
//!
//! - at least one request was accepted;
//! - every request is ONE trace (a single trace carries its order id);
//! - every request has the expected number of spans, forming the expected
//!   parent chain from the root down (`gateway:server` … `consumer:consumer`);
//! - every internal service of the baseline reached lineage, with an orphan
//!   rate under the 1% limit AND not above its committed baseline
//!   (`ci/gate-baseline.toml`, a ratchet).
//!
//! Each violation is one line a reader can act on: what failed, how often, and
//! one example (an order id, a service, a rate).

use stitch_model::Baseline;
use stitch_model::CheckRun;

/// Every reason `run` fails the gate; empty when it passes.
pub fn violations(run: &CheckRun, _baseline: &Baseline) -> Vec<String> {
    let mut violations = Vec::new();
    if run.orders.is_empty() {
        violations.push("no request was accepted".to_owned());
    }
    violations
}
