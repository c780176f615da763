//! What a check prints: one screen, tables first, the hint last.

use serde_json::json;
use stitch_judge::stage::StageVerdict;
use stitch_judge::verdict::{Named as _, Verdict, by_name, percent};
use stitch_model::CheckRun;
use stitch_runner::step::Step;

/// A plain-text table with right-aligned numbers.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns aligned to the right.
    numeric: Vec<bool>,
}

impl Table {
    pub fn new(header: &[&str], numeric: &[bool]) -> Table {
        Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new(), numeric: numeric.to_vec() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "a row of {} cells under {:?}", cells.len(), self.header);
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.header.len())
            .map(|column| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    pub fn render(&self) -> String {
        let widths = self.widths();
        let line = |row: &Vec<String>| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(column, cell)| {
                    let pad = widths[column].saturating_sub(cell.chars().count());
                    if self.numeric.get(column).copied().unwrap_or(false) {
                        format!("{}{cell}", " ".repeat(pad))
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    }
                })
                .collect();
            format!("  {}", cells.join("  ").trim_end())
        };
        let mut out = vec![line(&self.header)];
        out.extend(self.rows.iter().map(line));
        out.join("\n")
    }

    /// The same table as Markdown.
    pub fn markdown(&self) -> String {
        let line = |row: &Vec<String>| format!("| {} |", row.join(" | "));
        let rule: Vec<&str> = self.numeric.iter().map(|&numeric| if numeric { "---:" } else { "---" }).collect();
        let mut out = vec![line(&self.header), format!("| {} |", rule.join(" | "))];
        out.extend(self.rows.iter().map(line));
        out.join("\n")
    }
}

fn target(max: Option<f64>) -> String {
    max.map_or_else(|| "—".to_owned(), |max| format!("< {}", percent(max)))
}

fn mark(passed: Option<bool>) -> String {
    match passed {
        Some(true) => "pass".to_owned(),
        Some(false) => "FAIL".to_owned(),
        None => String::new(),
    }
}

/// Where a service's orphans break: `http 200, async 400`.
fn breaks(counts: &std::collections::BTreeMap<lineage::Boundary, u64>) -> String {
    let parts: Vec<String> = by_name(counts)
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(boundary, count)| format!("{} {count}", boundary.name()))
        .collect();
    if parts.is_empty() { "—".to_owned() } else { parts.join(", ") }
}

pub fn services_table(verdict: &Verdict) -> Table {
    let mut table = Table::new(
        &["service", "spans", "orphans", "rate", "breaks at", "cause", "target", "verdict"],
        &[false, true, true, true, false, false, false, false],
    );
    for row in &verdict.services {
        let causes: Vec<&str> =
            by_name(&row.causes).into_iter().filter(|(_, count)| *count > 0).map(|(cause, _)| cause.name()).collect();
        table.row(vec![
            row.service.clone(),
            row.spans.to_string(),
            row.orphans.to_string(),
            percent(row.orphan_rate),
            breaks(&row.boundaries),
            if causes.is_empty() { "—".to_owned() } else { causes.join(", ") },
            target(row.target),
            mark(row.passed),
        ]);
    }
    table
}

pub fn boundaries_table(verdict: &Verdict) -> Table {
    let mut table = Table::new(
        &["boundary", "breaks", "requests", "break rate", "cause", "target", "verdict"],
        &[false, true, true, true, false, false, false],
    );
    for row in &verdict.boundaries {
        table.row(vec![
            row.boundary.to_string(),
            row.breaks.to_string(),
            row.requests.to_string(),
            percent(row.break_rate),
            row.cause.map_or_else(|| "—".to_owned(), |cause| cause.to_string()),
            target(row.target),
            mark(row.passed),
        ]);
    }
    table
}

/// The spans the services' SDKs lost before export: lineage never sees
/// them, so only the services can say.
pub fn sdk_export_line(services: &[stitch_runner::sdk_export::ServiceExport]) -> String {
    let each: Vec<String> = services
        .iter()
        .map(|service| {
            let counts = &service.counts;
            format!("{} {} of {}", service.role, counts.lost(), counts.ended)
        })
        .collect();
    format!(
        "spans lost before export (the SDK's queue full, or the export failed): {} ({})",
        stitch_runner::sdk_export::total_lost(services),
        each.join(" · ")
    )
}

pub fn print_check(step: &Step, run: &CheckRun, verdict: &Verdict) {
    let which = if run.solution { "solution" } else { "your crate" };
    println!(
        "\n{} · {} · {} ({which}) · Kafka: {} · {} requests in {:.1} s\n",
        step.short_name(),
        step.meta.title,
        run.package,
        run.kafka,
        run.requests_sent,
        run.elapsed_seconds
    );
    println!("{}\n", services_table(verdict).render());
    println!("{}\n", boundaries_table(verdict).render());
    let completeness = &run.report.completeness;
    println!(
        "  completeness (entry span end → last connected span): p50 {:.0} ms, p99 {:.0} ms over {} requests\n",
        completeness.p50_ms, completeness.p99_ms, completeness.count
    );
    if !run.sdk_export.is_empty() {
        println!("  {}\n", sdk_export_line(&run.sdk_export));
    }
    print_service_logs(run);
    match (&run.sample_dump, run.orders.first()) {
        (Some(dump), _) => {
            println!("  one request, as lineage sees it:\n");
            for line in dump.lines() {
                println!("    {line}");
            }
            println!();
        }
        (None, Some(order)) => {
            println!("  lineage holds no span of {}, the first request: it left no trace there.\n", order.order_id)
        }
        // No request was accepted: the verdict says so.
        (None, None) => {}
    }
    if let Some(stage) = &verdict.stage {
        print_evidence(stage);
    }
    if verdict.passed {
        println!("PASSED: every judged rate is under its target, and every judged shape and claim holds.");
    } else {
        println!("FAILED:");
        for failure in &verdict.failures {
            println!("  - {failure}");
        }
        let hint = crate::hint::after_failure(step);
        if !hint.is_empty() {
            println!("\n{hint}");
        }
    }
}

/// What each service said at WARN and ERROR, each distinct line once with
/// its count, and where its whole log is.
pub fn print_service_logs(run: &CheckRun) {
    for log in run.service_logs.iter().filter(|log| !log.lines.is_empty()) {
        println!("  {} logged ({}):", log.role, log.path.display());
        for line in &log.lines {
            println!("    {:>5} × {} {}", line.count, line.level, line.text);
        }
        println!();
    }
}

/// The stage's claims as its judge made them: one row per claim.
pub fn evidence_table(stage: &StageVerdict) -> Table {
    let mut table = Table::new(&["claim", "measured", ""], &[false, false, false]);
    for claim in &stage.claims {
        table.row(vec![claim.claim.clone(), claim.measured.clone(), mark(Some(claim.passed))]);
    }
    table
}

/// The stage's notes, then its claims.
pub fn print_evidence(stage: &StageVerdict) {
    for note in &stage.notes {
        println!("  {}", note.replace('\n', "\n    "));
    }
    if !stage.notes.is_empty() {
        println!();
    }
    println!("{}\n", evidence_table(stage).render());
}

/// The `--json` object of a run: the check's verdict, then what it measured.
pub fn json(step: &Step, run: &CheckRun, verdict: &Verdict) -> anyhow::Result<serde_json::Value> {
    let head = crate::check_json::CheckVerdict {
        step: step.short_name(),
        package: run.package.clone(),
        solution: run.solution,
        kafka: run.kafka.clone(),
        passed: verdict.passed,
        failures: verdict.failures.clone(),
    };
    // No request accepted, no rate: the run failed before (`check::run` errs).
    let spans_per_request = (!run.orders.is_empty()).then(|| run.report.spans_settled as f64 / run.orders.len() as f64);
    crate::check_json::object(
        &head,
        json!({
            "requests": run.requests_sent,
            "requests_failed": run.requests_failed,
            "spans_per_request": spans_per_request,
            "services": verdict.services,
            "boundaries": verdict.boundaries,
            "completeness_p50_ms": run.report.completeness.p50_ms,
            "completeness_p99_ms": run.report.completeness.p99_ms,
            "sample": run.orders.first(),
            "evidence": run.evidence,
            "stage": verdict.stage,
        }),
    )
}

/// Before/after: one column per run, one row per service.
pub fn demo_table(runs: &[(Step, CheckRun)]) -> Table {
    let mut header = vec!["service".to_owned()];
    header.extend(runs.iter().map(|(step, run)| {
        if run.solution { format!("{} fixed", step.short_name()) } else { format!("{} (baseline)", step.short_name()) }
    }));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let numeric: Vec<bool> = std::iter::once(false).chain(runs.iter().map(|_| true)).collect();
    let mut table = Table::new(&header_refs, &numeric);
    let mut services: Vec<String> =
        runs.iter().flat_map(|(_, run)| run.report.services.iter().map(|row| row.service.clone())).collect();
    services.sort();
    services.dedup();
    for service in services {
        let mut cells = vec![service.clone()];
        for (_, run) in runs {
            let rate = run.report.services.iter().find(|row| row.service == service).map(|row| row.orphan_rate);
            cells.push(rate.map_or_else(|| "—".to_owned(), percent));
        }
        table.row(cells);
    }
    let mut fragments = vec!["traces per request".to_owned()];
    for (_, run) in runs {
        let traces: usize = run.shapes.iter().map(|shape| shape.traces).sum();
        fragments.push(format!("{:.1}", traces as f64 / run.shapes.len().max(1) as f64));
    }
    table.row(fragments);
    table
}

pub fn print_demo(runs: &[(Step, CheckRun)]) {
    println!("\nOrphan-span rate per service, before and after each fix:\n");
    println!("{}\n", demo_table(runs).render());
}

#[cfg(test)]
mod tests {
    use lineage::{Boundary, Cause};
    use stitch_judge::verdict::{ServiceRow, Verdict};

    /// The book's tables list a row's counts by name, as they always did:
    /// `async` before `http`, `missing-parent` before `root-in-internal-service`.
    #[test]
    fn a_services_row_lists_its_breaks_and_causes_by_name() {
        let row = ServiceRow {
            service: "worker".to_owned(),
            spans: 600,
            orphans: 600,
            orphan_rate: 1.0,
            target: None,
            causes: [(Cause::RootInInternalService, 400), (Cause::MissingParent, 200)].into(),
            boundaries: [(Boundary::Http, 200), (Boundary::Async, 400), (Boundary::Messaging, 0)].into(),
            passed: None,
        };
        let verdict =
            Verdict { passed: true, services: vec![row], boundaries: Vec::new(), failures: Vec::new(), stage: None };
        let table = super::services_table(&verdict).markdown();
        assert!(
            table.contains(
                "| worker | 600 | 600 | 100% | async 400, http 200 | missing-parent, root-in-internal-service |"
            ),
            "{table}"
        );
    }
}
