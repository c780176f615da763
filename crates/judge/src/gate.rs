//! The CI gate: the final solution must stitch every request into ONE trace
//! with the expected parent chain, and no internal service may orphan spans.

pub use stitch_model::{Baseline, EXPECTED_CHAIN, ORPHAN_RATE_LIMIT};
use stitch_model::{CheckRun, percent};

/// Every reason `run` fails the gate; empty when it passes.
pub fn violations(run: &CheckRun, baseline: &Baseline) -> Vec<String> {
    let mut violations = Vec::new();
    if run.orders.is_empty() {
        violations.push("no request was accepted".to_owned());
    }

    let expected: Vec<String> = EXPECTED_CHAIN.iter().map(|link| (*link).to_owned()).collect();
    let shattered: Vec<_> = run.shapes.iter().filter(|shape| shape.traces != 1).collect();
    if let Some(first) = shattered.first() {
        violations.push(format!(
            "{} of {} requests are not one trace (e.g. {} is {} fragments)",
            shattered.len(),
            run.shapes.len(),
            first.order_id,
            first.traces
        ));
    }
    let miscounted: Vec<_> =
        run.shapes.iter().filter(|shape| shape.traces == 1 && shape.spans != EXPECTED_CHAIN.len()).collect();
    if let Some(first) = miscounted.first() {
        violations.push(format!(
            "{} requests do not have {} spans (e.g. {} has {})",
            miscounted.len(),
            EXPECTED_CHAIN.len(),
            first.order_id,
            first.spans
        ));
    }
    let misparented: Vec<_> = run
        .shapes
        .iter()
        .filter(|shape| shape.traces == 1 && shape.spans == EXPECTED_CHAIN.len())
        .filter(|shape| shape.chain.as_ref() != Some(&expected))
        .collect();
    if let Some(first) = misparented.first() {
        violations.push(format!(
            "{} requests have the wrong parent chain (e.g. {}: {})",
            misparented.len(),
            first.order_id,
            first.chain.as_ref().map_or("not a single chain".to_owned(), |chain| chain.join(" → "))
        ));
    }

    for (service, allowed) in &baseline.services {
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
                "{service}: orphan rate {} rose above the committed baseline {} ({})",
                percent(row.orphan_rate),
                percent(*allowed),
                Baseline::PATH
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use lineage::Boundary;

    use super::*;
    use stitch_model::fixtures::{run, service};

    fn baseline() -> Baseline {
        toml::from_str("[services]\nworker = 0.0\nconsumer = 0.0\n").expect("a valid baseline")
    }

    fn final_flow(worker_orphans: u64) -> CheckRun {
        let services = vec![
            service("consumer", 200, 0, Boundary::Messaging),
            service("gateway", 400, 0, Boundary::Http),
            service("worker", 600, worker_orphans, Boundary::Async),
        ];
        run(200, services, [0, 0, 0], &EXPECTED_CHAIN)
    }

    #[test]
    fn the_stitched_final_flow_passes_the_gate() {
        assert_eq!(violations(&final_flow(0), &baseline()), Vec::<String>::new());
    }

    #[test]
    fn shattered_requests_fail_the_gate() {
        let mut run = final_flow(0);
        run.shapes[7].traces = 2;
        run.shapes[7].chain = None;
        assert_eq!(violations(&run, &baseline()), ["1 of 200 requests are not one trace (e.g. ord-7 is 2 fragments)"]);
    }

    #[test]
    fn a_wrong_parent_chain_fails_the_gate() {
        let mut run = final_flow(0);
        let chain = run.shapes[0].chain.as_mut().expect("a chain");
        chain.swap(3, 4);
        let problems = violations(&run, &baseline());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("1 requests have the wrong parent chain (e.g. ord-0: "), "{problems:?}");
    }

    #[test]
    fn orphans_above_the_baseline_or_the_limit_fail_the_gate() {
        // 3 of 600: under the 1% limit, above the committed 0%.
        let problems = violations(&final_flow(3), &baseline());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("worker: orphan rate 0.5% rose above the committed baseline 0%"));
        let problems = violations(&final_flow(60), &baseline());
        assert_eq!(problems, ["worker: orphan rate 10% reaches the 1.0% limit"]);
    }
}
