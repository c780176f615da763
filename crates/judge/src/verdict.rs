//! Judges a run against its step: per service, per boundary, and the shape of
//! the requests.

use std::collections::BTreeMap;

use lineage::{Boundary, Cause};
use serde::{Deserialize, Serialize, Serializer};

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
    /// This service's orphans by cause.
    #[serde(serialize_with = "in_name_order")]
    pub causes: BTreeMap<Cause, u64>,
    /// Where this service's orphans break, by boundary.
    #[serde(serialize_with = "in_name_order")]
    pub boundaries: BTreeMap<Boundary, u64>,
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

/// A typed key of a row's counts, and the name it is shown and written by.
pub trait Named: Copy + Ord {
    fn name(self) -> &'static str;
}

impl Named for Cause {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for Boundary {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// `counts` in the order of their keys' names: the order the tables show
/// and the JSON lists them in (`async` before `http`), whatever the enum's.
pub fn by_name<K: Named>(counts: &BTreeMap<K, u64>) -> Vec<(K, u64)> {
    let mut sorted: Vec<(K, u64)> = counts.iter().map(|(&key, &count)| (key, count)).collect();
    sorted.sort_by_key(|(key, _)| key.name());
    sorted
}

fn in_name_order<K: Named, S: Serializer>(counts: &BTreeMap<K, u64>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(by_name(counts).into_iter().map(|(key, count)| (key.name(), count)))
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
                causes: Cause::ALL.iter().map(|&cause| (cause, service.causes.get(cause))).collect(),
                boundaries: Boundary::ALL
                    .iter()
                    .map(|&boundary| (boundary, service.boundaries.get(boundary)))
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
        .filter_map(|&name| {
            // Lineage reports every boundary: a missing row is a report this
            // judge cannot read, not a boundary without breaks.
            let Some(row) = report.boundaries.iter().find(|row| row.boundary == name) else {
                failures.push(format!("{name} boundary: lineage's report has no row for it"));
                return None;
            };
            let (breaks, requests, break_rate) = (row.breaks, row.requests, row.break_rate);
            let target = step.meta.targets.boundaries.get(&name).copied();
            let passed = target.map(|max| break_rate < max);
            if passed == Some(false) {
                failures.push(format!(
                    "{name} boundary: breaks in {} of requests, target under {}",
                    percent(break_rate),
                    percent(target.unwrap_or_default())
                ));
            }
            Some(BoundaryRow {
                boundary: name,
                breaks,
                requests,
                break_rate,
                cause: dominant_cause(run, name),
                target,
                passed,
            })
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
    fn a_boundary_missing_from_lineages_report_fails_and_shows_no_row() {
        let mut run = fixed();
        run.report.boundaries.retain(|row| row.boundary != Boundary::Async);
        let verdict = judge(&step(1, STEP_1), &run);
        assert_eq!(verdict.failures, ["async boundary: lineage's report has no row for it"]);
        assert!(verdict.boundaries.iter().all(|row| row.boundary != Boundary::Async));
    }

    #[test]
    fn counts_are_written_by_name_as_the_tables_show_them() {
        let verdict = judge(&step(1, STEP_1), &fixed());
        let written = serde_json::to_string(&verdict.services[0]).unwrap();
        let at = |name: &str| written.find(&format!("\"{name}\"")).unwrap_or_else(|| panic!("{name} in {written}"));
        assert!(at("async") < at("http") && at("http") < at("messaging"), "{written}");
        assert!(at("missing-parent") < at("root-in-internal-service"), "{written}");
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
