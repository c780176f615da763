//! Judges a run against its step: per service, per boundary, and the shape of
//! the requests.

use lineage::{Boundary, Cause};
use serde::{Deserialize, Serialize};

pub use stitch_model::percent;
use stitch_model::{CheckRun, Step};

use crate::stage::StageVerdict;

/// One row of the per-service table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRow {
    pub service: String,
    pub spans: u64,
    pub orphans: u64,
    pub orphan_rate: f64,
    /// Highest orphan rate that passes, when the step judges this service.
    pub target: Option<f64>,
    pub causes: std::collections::BTreeMap<String, u64>,
    /// Where this service's orphans break, by boundary.
    pub boundaries: std::collections::BTreeMap<String, u64>,
    pub passed: Option<bool>,
}

/// One row of the per-boundary table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoundaryRow {
    pub boundary: Boundary,
    pub breaks: u64,
    pub requests: u64,
    pub break_rate: f64,
    /// The cause most of this boundary's orphans have.
    pub cause: Option<Cause>,
    pub target: Option<f64>,
    pub passed: Option<bool>,
}

/// The verdict of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub services: Vec<ServiceRow>,
    pub boundaries: Vec<BoundaryRow>,
    /// One line per failed target.
    pub failures: Vec<String>,
    /// The stage's claims and notes, when the step has a stage.
    pub stage: Option<StageVerdict>,
}

/// Judges `run` against the targets of `step`.
pub fn judge(step: &Step, run: &CheckRun) -> Verdict {
    let report = &run.report;
    let mut failures = Vec::new();

    if run.requests_failed > 0 {
        failures.push(format!("{} of {} requests failed at the gateway", run.requests_failed, run.requests_sent));
    }
    let accepted = run.orders.len() as u64;
    if report.requests < accepted {
        failures.push(format!(
            "lineage saw {} requests start at the entry service, {} were accepted",
            report.requests, accepted
        ));
    }

    let services = report
        .services
        .iter()
        .map(|service| {
            let target = step.meta.targets.services.get(&service.service).copied();
            let passed = target.map(|max| service.orphan_rate < max);
            if passed == Some(false) {
                failures.push(format!(
                    "{}: orphan rate {} is not under {}",
                    service.service,
                    percent(service.orphan_rate),
                    percent(target.unwrap_or_default())
                ));
            }
            ServiceRow {
                service: service.service.clone(),
                spans: service.spans,
                orphans: service.orphans,
                orphan_rate: service.orphan_rate,
                target,
                causes: Cause::ALL
                    .iter()
                    .map(|&cause| (cause.as_str().to_owned(), service.causes.get(cause)))
                    .collect(),
                boundaries: Boundary::ALL
                    .iter()
                    .map(|&boundary| (boundary.as_str().to_owned(), service.boundaries.get(boundary)))
                    .collect(),
                passed,
            }
        })
        .collect();
    for service in step.meta.targets.services.keys() {
        if !report.services.iter().any(|row| &row.service == service) {
            failures.push(format!("{service}: no spans reached lineage"));
        }
    }

    let boundaries = Boundary::ALL
        .iter()
        .map(|&name| {
            let row = report.boundaries.iter().find(|row| row.boundary == name);
            // Lineage reports every boundary: a report without one (a run
            // recorded by another version) measured nothing there, which is
            // not zero breaks.
            let (breaks, requests, break_rate) =
                row.map_or((0, report.requests, 0.0), |row| (row.breaks, row.requests, row.break_rate));
            let target = step.meta.targets.boundaries.get(&name).copied();
            let passed = target.map(|max| row.is_some() && break_rate < max);
            if row.is_none() {
                failures.push(format!("{name} boundary: lineage's report has no row for it"));
            } else if passed == Some(false) {
                failures.push(format!(
                    "{name} boundary: breaks in {} of requests, target under {}",
                    percent(break_rate),
                    percent(target.unwrap_or_default())
                ));
            }
            BoundaryRow {
                boundary: name,
                breaks,
                requests,
                break_rate,
                cause: dominant_cause(run, name),
                target,
                passed,
            }
        })
        .collect();

    // The shape of each request at the boundaries taught so far.
    failures.extend(crate::flow::failures(&crate::flow::taught_so_far(step), run));

    let stage = run.evidence.as_ref().map(crate::stage::judge);
    if let Some(stage) = &stage {
        failures.extend(stage.failures());
    }

    Verdict { passed: failures.is_empty(), services, boundaries, failures, stage }
}

/// The cause most orphans that break at `boundary` have, over all services.
fn dominant_cause(run: &CheckRun, boundary: Boundary) -> Option<Cause> {
    // Keyed by name: a tie goes to the cause whose name sorts last.
    let mut by_cause = std::collections::BTreeMap::<&str, (Cause, u64)>::new();
    for service in &run.report.services {
        if service.boundaries.get(boundary) == 0 {
            continue;
        }
        for cause in Cause::ALL {
            by_cause.entry(cause.as_str()).or_insert((cause, 0)).1 += service.causes.get(cause);
        }
    }
    by_cause.into_values().filter(|(_, count)| *count > 0).max_by_key(|(_, count)| *count).map(|(cause, _)| cause)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stitch_model::StageData;
    use stitch_model::fixtures::stages;
    use stitch_model::fixtures::{EXPECTED_CHAIN as CHAIN, STEP_1, run, service, step};

    fn fixed() -> CheckRun {
        let services = vec![
            service("consumer", 200, 0, Boundary::Messaging),
            service("gateway", 400, 0, Boundary::Http),
            service("worker", 600, 0, Boundary::Http),
        ];
        run(200, services, [0, 0, 0], &CHAIN)
    }

    #[test]
    fn a_run_under_every_target_passes() {
        let verdict = judge(&step(1, STEP_1), &fixed());
        assert!(verdict.passed, "{:?}", verdict.failures);
        let http = verdict.boundaries.iter().find(|row| row.boundary == Boundary::Http).expect("the http row");
        assert_eq!((http.target, http.passed), (Some(0.01), Some(true)));
        let gateway = verdict.services.iter().find(|row| row.service == "gateway").expect("the gateway row");
        assert_eq!(gateway.passed, Some(true));
        // Services without a target are shown, not judged.
        assert!(verdict.services.iter().any(|row| row.service == "worker" && row.passed.is_none()));
    }

    #[test]
    fn breaks_at_the_taught_boundary_fail_with_their_cause() {
        let services = vec![
            service("consumer", 200, 0, Boundary::Messaging),
            service("gateway", 400, 0, Boundary::Http),
            service("worker", 600, 200, Boundary::Http),
        ];
        let verdict = judge(&step(1, STEP_1), &run(200, services, [200, 0, 0], &CHAIN));
        assert!(!verdict.passed);
        assert_eq!(verdict.failures, ["http boundary: breaks in 100% of requests, target under 1.0%"]);
        let http = verdict.boundaries.iter().find(|row| row.boundary == Boundary::Http).expect("the http row");
        assert_eq!(http.cause, Some(Cause::RootInInternalService));
    }

    #[test]
    fn a_report_without_a_boundary_row_fails_instead_of_reading_zero_breaks() {
        let mut run = fixed();
        run.report.boundaries.retain(|row| row.boundary != Boundary::Http);
        let verdict = judge(&step(1, STEP_1), &run);
        assert_eq!(verdict.failures, ["http boundary: lineage's report has no row for it"]);
        let http = verdict.boundaries.iter().find(|row| row.boundary == Boundary::Http).expect("the http row");
        assert_eq!(http.passed, Some(false));
    }

    #[test]
    fn a_missing_service_failed_requests_and_a_failed_claim_each_fail() {
        let mut run = fixed();
        run.report.services.retain(|row| row.service != "gateway");
        run.requests_failed = 3;
        let mut mesh = stages::mesh();
        (mesh.chained_requests, mesh.requests) = (0, 1);
        mesh.not_chained = vec!["ord-0: no worker:server span".to_owned()];
        run.evidence = Some(StageData::Mesh(mesh));
        let verdict = judge(&step(1, STEP_1), &run);
        assert_eq!(
            verdict.failures,
            [
                "3 of 200 requests failed at the gateway",
                "gateway: no spans reached lineage",
                "every request is gateway:client → envoy:server → envoy:client → worker:server, one trace, parent \
                 by parent: measured 0 of 1 requests",
            ]
        );
    }
}
