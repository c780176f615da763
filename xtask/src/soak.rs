//! `cargo xtask soak`: the final flow under load, faults and malformed
//! context, one table per scenario (or one JSON object).

use std::process::ExitCode;

use stitch_harness::kafka::BrokerKind;
use stitch_harness::soak::drive::Rate;
use stitch_harness::soak::{self, SoakOptions, SoakReport};

use crate::table::Table;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "tansu")]
    pub kafka: BrokerKind,
    /// What CI runs: 100 requests/s for 15 s, the worker fault, 2,000 fuzz cases.
    #[arg(long)]
    pub short: bool,
    /// The load's requests per second (200, or 100 with --short).
    #[arg(long)]
    pub rps: Option<u32>,
    /// The load's seconds (60, or 15 with --short).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Fuzz cases (10,000, or 2,000 with --short).
    #[arg(long)]
    pub fuzz_cases: Option<usize>,
    /// Replays a fuzz run: the seed it printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object on stdout instead of the tables.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn options(&self) -> SoakOptions {
        let seed = self.seed.unwrap_or_else(new_seed);
        let mut options =
            if self.short { SoakOptions::short(self.kafka, seed) } else { SoakOptions::long(self.kafka, seed) };
        options.load =
            Rate { rps: self.rps.unwrap_or(options.load.rps), seconds: self.seconds.unwrap_or(options.load.seconds) };
        options.fuzz_cases = self.fuzz_cases.unwrap_or(options.fuzz_cases);
        options
    }
}

/// A seed from the clock and the process id: each run fuzzes afresh, and
/// prints the seed that replays it.
fn new_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let options = args.options();
    eprintln!("soak on {}: fuzz seed {} (replay with --seed {})", options.kafka, options.seed, options.seed);
    let report = soak::run(&options)?;
    let problems = report.problems();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
        if problems.is_empty() {
            println!("\nsoak: every claim held");
        } else {
            println!("\nsoak: {} claims failed:", problems.len());
            for problem in &problems {
                println!("  - {problem}");
            }
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The scenarios' tables, as the terminal shows them.
pub fn print(report: &SoakReport) {
    for (title, table) in tables(report) {
        println!("\n{title}\n{}", table.render());
    }
    if let Some(fuzz) = &report.fuzz {
        for example in &fuzz.examples {
            println!("  ! {example}");
        }
    }
}

/// One titled table per scenario that ran.
pub fn tables(report: &SoakReport) -> Vec<(String, Table)> {
    let mut tables = Vec::new();
    if let Some(load) = &report.load {
        let mut table = Table::new(&["", "measured"], &[false, true]);
        let rows = [
            ("requests", load.requests.to_string()),
            ("failed", load.failed.to_string()),
            ("spans expected", load.spans_expected.to_string()),
            ("spans received", load.spans_received.to_string()),
            ("orphan spans", load.orphans.to_string()),
            ("incomplete requests", load.incomplete_requests.to_string()),
            ("gateway latency p50", format!("{:.1} ms", load.latency_p50_ms)),
            ("gateway latency p99", format!("{:.1} ms", load.latency_p99_ms)),
            ("completeness p99", format!("{:.1} ms", load.completeness_p99_ms)),
            ("send lag p99 / max", format!("{:.1} / {:.1} ms", load.send_lag_p99_ms, load.send_lag_max_ms)),
        ];
        for (name, value) in rows {
            table.row(vec![name.to_owned(), value]);
        }
        let title = format!("Load: {} requests/s for {} s on {}", load.rps, load.seconds, report.kafka);
        tables.push((title, table));
    }
    if !report.faults.is_empty() {
        let mut table = Table::new(
            &[
                "fault",
                "requests",
                "failed",
                "orphans",
                "spans lost",
                "spans extra",
                "hurt",
                "explained",
                "down",
                "recovered",
            ],
            &[false, true, true, true, true, true, true, false, true, true],
        );
        for fault in &report.faults {
            table.row(vec![
                fault.fault.clone(),
                fault.requests.to_string(),
                fault.failed.to_string(),
                fault.orphans.to_string(),
                fault.spans_lost.to_string(),
                fault.spans_extra.to_string(),
                fault.requests_hurt.to_string(),
                if fault.explained {
                    "yes".to_owned()
                } else {
                    format!("NO ({} outside)", fault.requests_hurt_outside_window)
                },
                format!("{:.1} s", fault.down_s),
                fault.recovered_s.map_or_else(|| "not in the run".to_owned(), |seconds| format!("{seconds:.1} s")),
            ]);
        }
        tables.push(("Faults, each under load (a kill a third of the way in, restarted at once)".to_owned(), table));
    }
    if let Some(fuzz) = &report.fuzz {
        let mut table = Table::new(
            &["edge", "cases", "continued", "continued, unsampled", "new trace", "refused (4xx)", "violations"],
            &[false, true, true, true, true, true, true],
        );
        for edge in &fuzz.edges {
            table.row(vec![
                format!("{:?}", edge.edge).to_lowercase(),
                edge.cases.to_string(),
                edge.continued.to_string(),
                edge.continued_unsampled.to_string(),
                edge.new_root.to_string(),
                edge.refused.to_string(),
                edge.violations.to_string(),
            ]);
        }
        table.row(vec![
            "all".to_owned(),
            fuzz.cases.to_string(),
            fuzz.continued.to_string(),
            fuzz.continued_unsampled.to_string(),
            (fuzz.rejected - fuzz.refused_statuses.values().sum::<usize>()).to_string(),
            fuzz.refused_statuses.values().sum::<usize>().to_string(),
            fuzz.violations.to_string(),
        ]);
        let title = format!(
            "Fuzz: seed {}, {} crashes, {} handled, {} valid contexts not continued",
            fuzz.seed, fuzz.crashes, fuzz.handled, fuzz.valid_not_continued
        );
        tables.push((title, table));
    }
    tables
}
