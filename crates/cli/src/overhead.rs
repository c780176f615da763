//! `cargo xtask overhead`: what tracing costs the gateway and the worker,
//! in CPU per request and in latency, tracing on against off in
//! alternating rounds, with the rest of the flow on the other core; then
//! the saturation climb, several times (`stitch_campaigns::overhead`).

use std::process::ExitCode;

use stitch_campaigns::overhead::{self, OverheadOptions, OverheadReport, Spread};
use stitch_campaigns::soak::drive::Rate;
use stitch_components::kafka::BrokerKind;
use stitch_components::proc_stat::Cores;
use stitch_runner::flow::Profile;

use crate::table::Table;

/// The book's tables, under `book/src/`.
pub const BOOK_FILE: &str = "generated/overhead.md";
/// The book's table of what each cut saves (`--cuts --book`).
pub const CUTS_BOOK_FILE: &str = "generated/overhead-cuts.md";

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[arg(long, default_value = "tansu")]
    kafka: BrokerKind,
    /// What CI runs and reports: 4 rounds of 5 s at 100 requests/s on the
    /// dev build (the one CI has built already), no climb.
    #[arg(long)]
    short: bool,
    /// Rounds in all, alternating on and off (10, or 4 with --short; 12
    /// with --cuts).
    #[arg(long)]
    rounds: Option<usize>,
    /// What each cut of "What tracing costs" saves: the rounds cycle through
    /// tracing on, off, and on with each cut undone, on the same binary
    /// (no climb; --book writes its own table).
    #[arg(long, conflicts_with = "short")]
    cuts: bool,
    /// Requests per second of each round's open loop (200, or 100 with --short).
    #[arg(long)]
    rps: Option<u32>,
    /// Seconds of each round (20, or 5 with --short).
    #[arg(long)]
    seconds: Option<f64>,
    /// Saturation climbs after the rounds (3, or 0 with --short).
    #[arg(long)]
    climbs: Option<usize>,
    /// The services' build: release (what a team deploys), or dev (--short).
    #[arg(long, value_enum)]
    profile: Option<ProfileArg>,
    /// Print one JSON object on stdout instead of the tables.
    #[arg(long)]
    json: bool,
    /// Write the tables into the book (book/src/generated/overhead.md).
    #[arg(long, conflicts_with = "short")]
    book: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Dev,
    Release,
}

impl Args {
    /// CI's short run.
    pub fn short() -> Args {
        Args {
            kafka: BrokerKind::Tansu,
            short: true,
            rounds: None,
            cuts: false,
            rps: None,
            seconds: None,
            climbs: None,
            profile: None,
            json: false,
            book: false,
        }
    }

    fn options(&self) -> anyhow::Result<OverheadOptions> {
        let cores = Cores::split("overhead")?;
        let (rounds, rps, seconds, climbs, profile) =
            if self.short { (4, 100, 5.0, 0, Profile::Dev) } else { (10, 200, 20.0, 3, Profile::Release) };
        Ok(OverheadOptions {
            kafka: self.kafka.to_string(),
            profile: match self.profile {
                Some(ProfileArg::Dev) => Profile::Dev,
                Some(ProfileArg::Release) => Profile::Release,
                None => profile,
            },
            rate: Rate { rps: self.rps.unwrap_or(rps), seconds: self.seconds.unwrap_or(seconds) },
            rounds: self.rounds.unwrap_or(if self.cuts { 12 } else { rounds }),
            cuts: self.cuts,
            warmup_seconds: if self.short { 1.0 } else { 2.0 },
            climbs: self.climbs.unwrap_or(if self.cuts { 0 } else { climbs }),
            // The soak's long load: the climb's 2× is the soak's 2×.
            climb_load: stitch_campaigns::soak::SoakOptions::long(self.kafka, 0).load,
            climb_seconds: 10.0,
            services_core: cores.measured,
            others: cores.others,
        })
    }
}

/// Runs what `args` asks and returns what it measured.
pub fn measure(args: &Args) -> anyhow::Result<OverheadReport> {
    overhead::run(&args.options()?)
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let report = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    if args.book {
        let file = if args.cuts { CUTS_BOOK_FILE } else { BOOK_FILE };
        let path = stitch_paths::project_root().join("book").join("src").join(file);
        std::fs::write(&path, markdown(&report))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print(report: &OverheadReport) {
    for (title, table) in tables(report) {
        println!("\n{title}\n{}", table.render());
    }
}

fn spread(s: &Spread, decimals: usize) -> String {
    format!("{:.d$} / {:.d$} / {:.d$}", s.min, s.median, s.max, d = decimals)
}

fn ratio(s: &Spread) -> String {
    format!("×{:.3} / ×{:.3} / ×{:.3}", s.min, s.median, s.max)
}

pub fn tables(report: &OverheadReport) -> Vec<(String, Table)> {
    let o = &report.options;
    let mut tables = Vec::new();
    if !report.cuts.is_empty() {
        tables.push(cuts_table(report));
    }
    let mut summary = Table::new(
        &["min / median / max", "tracing on", "tracing off", "on / off (pairs)"],
        &[false, true, true, true],
    );
    let (on, off, r) = (&report.on, &report.off, &report.ratios);
    summary.row(vec![
        "gateway latency p50 (ms)".into(),
        spread(&on.latency_p50_ms, 2),
        spread(&off.latency_p50_ms, 2),
        ratio(&r.latency_p50),
    ]);
    summary.row(vec![
        "gateway latency p99 (ms)".into(),
        spread(&on.latency_p99_ms, 2),
        spread(&off.latency_p99_ms, 2),
        ratio(&r.latency_p99),
    ]);
    summary.row(vec![
        "gateway CPU per request (µs)".into(),
        spread(&on.gateway_cpu_us, 0),
        spread(&off.gateway_cpu_us, 0),
        String::new(),
    ]);
    summary.row(vec![
        "worker CPU per request (µs)".into(),
        spread(&on.worker_cpu_us, 0),
        spread(&off.worker_cpu_us, 0),
        String::new(),
    ]);
    summary.row(vec![
        "both, CPU per request (µs)".into(),
        spread(&on.cpu_us, 0),
        spread(&off.cpu_us, 0),
        ratio(&r.cpu),
    ]);
    let per_span: Vec<String> = report.cpu_us_per_span.iter().map(|(role, us)| format!("{role} {us:.1}")).collect();
    tables.push((
        format!(
            "Tracing on against off, {} rounds of each, alternating, of {} requests/s for {} s on Kafka {} \
             ({} build); gateway and worker on CPU {}, lineage, the broker, the consumer and the load on CPU {}. \
             CPU µs per exported span (median on − median off, over {:.1} spans per request): {}.",
            o.rounds / overhead::cycle(o.cuts).len(),
            o.rate.rps,
            o.rate.seconds,
            o.kafka,
            match o.profile {
                Profile::Dev => "dev",
                Profile::Release => "release",
            },
            o.services_core,
            o.others,
            report.spans_per_request,
            per_span.join(", ")
        ),
        summary,
    ));
    let mut rounds = Table::new(
        &[
            "round",
            "tracing",
            "requests",
            "failed",
            "p50 ms",
            "p99 ms",
            "gateway µs/req",
            "worker µs/req",
            "spans lost by the SDKs",
        ],
        &[true, false, true, true, true, true, true, true, true],
    );
    for (i, round) in report.rounds.iter().enumerate() {
        rounds.row(vec![
            (i + 1).to_string(),
            round.tracing.clone(),
            round.requests.to_string(),
            round.failed.to_string(),
            format!("{:.2}", round.latency_p50_ms),
            format!("{:.2}", round.latency_p99_ms),
            format!("{:.0}", round.cpu_us("gateway").unwrap_or(f64::NAN)),
            format!("{:.0}", round.cpu_us("worker").unwrap_or(f64::NAN)),
            round.spans_lost_by_sdk.map_or("–".to_owned(), |n| n.to_string()),
        ]);
    }
    tables.push(("Each round:".to_owned(), rounds));
    if !report.climbs.is_empty() {
        let mut climbs = Table::new(
            &[
                "climb",
                "rates tried (requests/s)",
                "first rate that lost a span",
                "spans dropped by the SDKs",
                "orphans at 2×",
                "p99 at 2× (ms)",
            ],
            &[true, false, true, true, true, true],
        );
        for (i, climb) in report.climbs.iter().enumerate() {
            let at_2x = climb.steps.iter().find(|s| s.rps == o.climb_load.rps * 2);
            climbs.row(vec![
                (i + 1).to_string(),
                climb.steps.iter().map(|s| s.rps.to_string()).collect::<Vec<_>>().join(", "),
                climb.first_loss_rps.map_or("none".to_owned(), |rps| rps.to_string()),
                climb.spans_dropped_by_sdk.to_string(),
                climb.orphans_at_2x.to_string(),
                at_2x.map_or("–".to_owned(), |s| format!("{:.0}", s.latency_p99_ms)),
            ]);
        }
        let firsts = Spread::of(report.climbs.iter().filter_map(|c| c.first_loss_rps.map(f64::from)));
        tables.push((
            format!(
                "The saturation climb, {} times on the same pinned flow ({} s at each rate from {} requests/s, the \
                 soak's load, up to the first rate that loses a span); first loss min / median / max: {}:",
                report.climbs.len(),
                o.climb_seconds,
                o.climb_load.rps,
                firsts.map_or("none in any climb".to_owned(), |s| spread(&s, 0))
            ),
            climbs,
        ));
    }
    tables
}

/// What each `--tracing` variant is, for the cuts' table.
fn variant(name: &str) -> &'static str {
    match name {
        "on" => "tracing on, both cuts in (what the services run)",
        "off" => "tracing off",
        "two-processors" => "the span counter beside the batch processor, not wrapping it",
        "default-layer" => "the layer's defaults: code location, thread, target, busy and idle times",
        _ => "",
    }
}

fn cuts_table(report: &OverheadReport) -> (String, Table) {
    let o = &report.options;
    let mut table = Table::new(
        &[
            "`--tracing`",
            "what runs",
            "CPU per request, both services (µs)",
            "p50 (ms)",
            "the cut saves per request (µs)",
            "per exported span (µs)",
        ],
        &[false, false, true, true, true, true],
    );
    let row = |name: &str, cpu: &Spread, p50: &Spread, saved: [String; 2]| {
        let [per_request, per_span] = saved;
        vec![name.to_owned(), variant(name).into(), spread(cpu, 0), spread(p50, 2), per_request, per_span]
    };
    table.row(row("on", &report.on.cpu_us, &report.on.latency_p50_ms, ["–".into(), "–".into()]));
    for cut in &report.cuts {
        let saved = [format!("{:.0}", cut.saved_us_per_request), format!("{:.1}", cut.saved_us_per_span)];
        table.row(row(&cut.undone, &cut.cpu_us, &cut.latency_p50_ms, saved));
    }
    table.row(row("off", &report.off.cpu_us, &report.off.latency_p50_ms, ["–".into(), "–".into()]));
    let title = format!(
        "Each cut undone on the same {} build: {} rounds cycling {} ({} of each) at {} requests/s for {} s on Kafka \
         {} (gateway and worker on CPU {}, everything else on CPU {}); min / median / max over each variant's rounds. What a cut saves is the median CPU per \
         request with it undone less tracing on's, and that over the {:.1} spans each request exports:",
        match o.profile {
            Profile::Dev => "dev",
            Profile::Release => "release",
        },
        o.rounds,
        overhead::cycle(true).iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        o.rounds / overhead::cycle(true).len(),
        o.rate.rps,
        o.rate.seconds,
        o.kafka,
        o.services_core,
        o.others,
        report.spans_per_request,
    );
    (title, table)
}

fn markdown(report: &OverheadReport) -> String {
    let command = if report.cuts.is_empty() { "overhead --book" } else { "overhead --cuts --book" };
    let mut out = format!("<!-- generated by `cargo xtask {command}`: do not edit -->\n");
    let mut tables = tables(report);
    if !report.cuts.is_empty() {
        // The chapter shows tracing on against off from the run without cuts.
        tables.remove(1);
    }
    for (title, table) in tables {
        out.push_str(&format!("\n{title}\n\n{}\n", table.markdown()));
    }
    out.push_str(&format!(
        "\n{:.0} s in all; the machine's load average was {:.2} at the start and {:.2} at the end.\n",
        report.elapsed_seconds, report.load_average.0, report.load_average.1
    ));
    out
}
