//! The numbers the chapters' prose states about the code and the configs
//! (a check's `decision_wait`, a policy's threshold, spans per request, which
//! steps the gate covers), written into `book/src/generated/facts.md` where
//! the chapters include them by anchor. A number typed into a chapter drifts
//! the day the code changes; an included one cannot.
//!
//! Only what the code and the files say goes here: measured numbers come
//! from runs, through `cargo xtask report`. One exception, the day's
//! schedule (`schedule.rs`): it is planned from the chapters, the check
//! times `cargo xtask agenda` recorded and `book/schedule.toml`, and is
//! rewritten with the rest, so that it is never stale.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use stitch_campaigns::soak::SoakOptions;
use stitch_campaigns::soak::drive::Rate;
use stitch_campaigns::soak::faults::{Fault, IN_FLIGHT_BEFORE_KILL, LINEAGE_DOWN};
use stitch_components::kafka::BrokerKind;
use stitch_judge::gate::ORPHAN_RATE_LIMIT;
use stitch_judge::verdict::percent;
use stitch_runner::check::SETTLE_AFTER;
use stitch_runner::gate_judge::JudgeKind;
use stitch_runner::long_trace::LongTraceOptions;
use stitch_runner::stages::StageKind;
use stitch_runner::step::{self, Step};
use stitch_runner::tier::TierOptions;

fn path() -> PathBuf {
    stitch_paths::project_root().join("book/src/generated/facts.md")
}

/// `10 s`, `2.5 s`, `250 ms`: as the prose says it.
fn duration(value: Duration) -> String {
    let millis = value.as_millis();
    match millis {
        m if m % 1000 == 0 => format!("{} s", m / 1000),
        m if m >= 1000 => format!("{} s", value.as_secs_f64()),
        m => format!("{m} ms"),
    }
}

/// What the chapters quote of step 4's second tier
/// (`infra/collector/tier2.yaml`), read as YAML: serde ignores the rest.
#[derive(Debug, serde::Deserialize)]
struct Tier2 {
    processors: Tier2Processors,
}

#[derive(Debug, serde::Deserialize)]
struct Tier2Processors {
    tail_sampling: TailSampling,
}

#[derive(Debug, serde::Deserialize)]
struct TailSampling {
    decision_wait: String,
}

const TIER2: &str = "infra/collector/tier2.yaml";

impl Tier2 {
    fn parse(text: &str) -> anyhow::Result<Tier2> {
        serde_saphyr::from_str(text).with_context(|| format!("parsing {TIER2}"))
    }

    fn read() -> anyhow::Result<Tier2> {
        let path = stitch_paths::project_root().join(TIER2);
        Tier2::parse(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
    }

    /// `decision_wait`'s default (`${env:STITCH_DECISION_WAIT:-30s}`).
    fn decision_wait(&self) -> anyhow::Result<Duration> {
        let value = env_default(&self.processors.tail_sampling.decision_wait, "STITCH_DECISION_WAIT")?;
        value
            .strip_suffix('s')
            .and_then(|secs| secs.parse::<u64>().ok())
            .map(Duration::from_secs)
            .with_context(|| format!("{TIER2}: decision_wait defaults to {value:?}, not whole seconds (`30s`)"))
    }
}

/// What the chapters quote of `compose.yaml`: the environment its services
/// run with, read as YAML.
#[derive(Debug, serde::Deserialize)]
struct Compose {
    services: std::collections::BTreeMap<String, ComposeService>,
}

#[derive(Debug, serde::Deserialize)]
struct ComposeService {
    #[serde(default)]
    environment: std::collections::BTreeMap<String, String>,
}

impl Compose {
    fn parse(text: &str) -> anyhow::Result<Compose> {
        serde_saphyr::from_str(text).context("parsing compose.yaml")
    }

    fn read() -> anyhow::Result<Compose> {
        let path = stitch_paths::project_root().join("compose.yaml");
        Compose::parse(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
    }

    /// The `slow` threshold the tier-2 collectors run with under compose
    /// (`STITCH_SLOW_MS`, the same in each).
    fn slow_threshold(&self) -> anyhow::Result<Duration> {
        let mut values = std::collections::BTreeSet::new();
        for name in ["tier2-a", "tier2-b"] {
            let service = self.services.get(name).with_context(|| format!("compose.yaml has no service {name}"))?;
            let value = service
                .environment
                .get("STITCH_SLOW_MS")
                .with_context(|| format!("compose.yaml's {name} sets no STITCH_SLOW_MS"))?;
            values.insert(
                value
                    .parse::<u64>()
                    .with_context(|| format!("compose.yaml's {name}: STITCH_SLOW_MS is {value:?}, not milliseconds"))?,
            );
        }
        match values.into_iter().collect::<Vec<_>>().as_slice() {
            [millis] => Ok(Duration::from_millis(*millis)),
            several => bail!("compose.yaml's tier-2 collectors set different STITCH_SLOW_MS: {several:?}"),
        }
    }
}

/// The default of a collector value written `${env:NAME:-default}`.
fn env_default<'a>(value: &'a str, name: &str) -> anyhow::Result<&'a str> {
    let marker = format!("${{env:{name}:-");
    value
        .trim()
        .strip_prefix(&marker)
        .and_then(|rest| rest.strip_suffix('}'))
        .with_context(|| format!("{TIER2}: {value:?} is not `{marker}default}}`"))
}

/// `200 requests/s for 60 s`.
fn rate(rate: Rate) -> String {
    format!("{} requests/s for {}", rate.rps, duration(Duration::from_secs_f64(rate.seconds)))
}

/// `the worker kill, the lineage restart and the broker restart`.
fn fault_names(faults: &[Fault]) -> String {
    let names: Vec<String> = faults.iter().map(|fault| format!("the {}", fault.name())).collect();
    match names.split_last() {
        None => "no fault".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// `1×, 1.5×, 2×`.
fn multiples(multiples: &[f64]) -> String {
    let each: Vec<String> = multiples.iter().map(|m| format!("{m}×")).collect();
    each.join(", ")
}

/// `2,000`.
fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `0–3` for a run of numbers, `0, 2 and 5` otherwise.
fn numbers(steps: &[&Step]) -> String {
    let numbers: Vec<u8> = steps.iter().map(|step| step.number).collect();
    match numbers.as_slice() {
        [] => String::new(),
        [only] => only.to_string(),
        [first, .., last] if numbers.windows(2).all(|pair| pair[1] == pair[0] + 1) => format!("{first}–{last}"),
        [init @ .., last] => {
            format!("{} and {last}", init.iter().map(u8::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}

/// Reading speed the agenda assumes for technical prose, in words per minute.
pub const WORDS_PER_MINUTE: usize = 200;

/// Words of a chapter's own prose: outside code blocks, without include
/// directives (what a learner reads, not the code and tables it shows).
fn prose_words(text: &str) -> usize {
    let mut in_code = false;
    let mut words = 0;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || line.trim_start().starts_with("{{#") {
            continue;
        }
        words += line.split_whitespace().filter(|word| word.chars().any(char::is_alphanumeric)).count();
    }
    words
}

fn fact(out: &mut String, name: &str, value: &str) {
    out.push_str(&format!("ANCHOR: {name}\n{value}\nANCHOR_END: {name}\n"));
}

/// The whole file, from the code and the configs as they are now.
pub fn render() -> anyhow::Result<String> {
    let steps = step::all()?;
    let tier = TierOptions::default();
    let long = LongTraceOptions::check();
    let tier2 = Tier2::read()?;
    let mut out = String::from(
        "<!-- generated by `cargo xtask facts` from the code and the configs: do not edit. The chapters \
         include each value by its anchor. -->\n",
    );
    fact(&mut out, "files_decision_wait", &duration(tier2.decision_wait()?));
    fact(&mut out, "compose_slow_threshold", &duration(Compose::read()?.slow_threshold()?));
    fact(&mut out, "long_trace_slow_threshold", &duration(stitch_runner::long_trace::SLOW_THRESHOLD));
    fact(&mut out, "check_decision_wait", &duration(tier.decision_wait));
    fact(&mut out, "check_slow_threshold", &duration(tier.slow_threshold));
    fact(&mut out, "check_slow_delay", &duration(tier.slow_delay));
    let Some(step4) = steps.iter().find(|step| step.meta.stage == Some(StageKind::TailSampling)) else {
        bail!("no step with the tail-sampling stage")
    };
    fact(&mut out, "tail_sampling_requests", &step4.default_requests().to_string());
    // The tolerance for all of step 4's requests: the two injected ones are
    // not baseline traffic, which moves the bounds by nothing at this size.
    let requests = step4.default_requests();
    let (low, high) = stitch_judge::stage::tier::baseline_tolerance(requests);
    let odds = 1.0 / stitch_judge::stage::tier::baseline_false_failure(requests);
    fact(
        &mut out,
        "baseline_tolerance",
        &format!(
            "{low} to {high} of {} ordinary traces, outside which a correct tier falls about once in {} runs",
            thousands(requests),
            thousands(((odds / 1000.0).round() * 1000.0) as usize)
        ),
    );
    fact(&mut out, "long_trace_decision_wait", &duration(long.decision_wait));
    let workload = &long.workload;
    let Some(step8) = steps.iter().find(|step| step.meta.stage == Some(StageKind::LongTrace)) else {
        bail!("no step with the long-trace stage")
    };
    let orders = workload.orders.unwrap_or(step8.default_requests());
    fact(
        &mut out,
        "long_trace_workload",
        &format!(
            "`decision_wait` {}, batches of {} items, one every {} ({}), {} of them {} apart, and {orders} orders \
             alongside, spread over the {}",
            duration(long.decision_wait),
            workload.items,
            duration(workload.interval),
            duration(workload.batch_length()),
            workload.batches,
            duration(workload.batch_every),
            duration(workload.span()),
        ),
    );
    fact(&mut out, "long_trace_batch_length", &duration(workload.batch_length()));
    fact(
        &mut out,
        "long_trace_batch_over_wait",
        &format!("{:.0}", workload.batch_length().as_secs_f64() / long.decision_wait.as_secs_f64()),
    );
    fact(&mut out, "long_trace_fail_from", &workload.fail_from.to_string());
    let Some(hard_limit) = &long.hard_limit else { bail!("step 8's check runs without a hard memory limit") };
    fact(&mut out, "long_trace_limit_margin", &format!("{} MiB", hard_limit.margin_mib));
    fact(&mut out, "long_trace_gogc", &format!("`GOGC={}`", hard_limit.gogc));

    let flow: Vec<&Step> = steps.iter().filter(|step| step.is_flow()).collect();
    let staged: Vec<&Step> = steps.iter().filter(|step| step.meta.stage.is_some()).collect();
    let Some(last) = flow.last() else { bail!("no step without a stage: there is no flow") };
    fact(&mut out, "gate_steps", &format!("steps {}", numbers(&flow)));
    fact(&mut out, "staged_steps", &format!("steps {}", numbers(&staged)));
    fact(&mut out, "final_flow_step", &format!("step {}", last.number));
    fact(&mut out, "final_flow_spans", &last.full_expectation()?.spans_per_request.to_string());
    fact(&mut out, "gate_orphan_limit", &percent(ORPHAN_RATE_LIMIT));
    let Some(gate_step) = steps.iter().find(|step| step.meta.judge == Some(JudgeKind::CiGate)) else {
        bail!("no step judged by the CI gate's judge")
    };
    fact(&mut out, "gate_step", &format!("step {}", gate_step.number));
    fact(&mut out, "ingest_saturated", &format!("{:.0}%", crate::ingest_bench::SATURATED_PERCENT));
    fact(&mut out, "gate_requests_per_flow", &gate_step.default_requests().to_string());

    // A judged step (step 5) runs no flow of its own: it has no span counts.
    let with_runs: Vec<&Step> = steps.iter().filter(|step| step.meta.judge.is_none()).collect();
    let mut table = String::from("| step | stage | spans per request, unsolved | solved |\n|---|---|---:|---:|\n");
    for step in &with_runs {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            step.short_name(),
            step.meta.stage.map_or("—", StageKind::name),
            step.meta.unsolved.as_ref().context("no [unsolved] in step.toml")?.spans_per_request,
            step.meta.solved.as_ref().map_or_else(|| "—".to_owned(), |solved| solved.spans_per_request.to_string())
        ));
    }
    fact(&mut out, "spans_per_request", table.trim_end());
    for step in &with_runs {
        let solved = step.full_expectation()?.spans_per_request;
        fact(&mut out, &format!("step{}_spans", step.number), &solved.to_string());
    }

    let long_soak = SoakOptions::long(BrokerKind::Tansu, 0);
    let short_soak = SoakOptions::short(BrokerKind::Tansu, 0);
    fact(&mut out, "soak_load", &rate(long_soak.load));
    fact(
        &mut out,
        "soak_short",
        &format!(
            "{}, the overhead for {} a side, {}, {} at {} the load, {} cases",
            rate(short_soak.load),
            duration(Duration::from_secs_f64(short_soak.overhead_load.seconds)),
            fault_names(&short_soak.faults),
            duration(Duration::from_secs_f64(short_soak.saturation_seconds)),
            multiples(&short_soak.saturation_multiples),
            thousands(short_soak.fuzz_cases),
        ),
    );
    fact(&mut out, "saturation_multiples", &multiples(&long_soak.saturation_multiples));
    fact(&mut out, "soak_long_faults", &fault_names(&long_soak.faults));
    fact(&mut out, "soak_in_flight", &duration(IN_FLIGHT_BEFORE_KILL));
    fact(&mut out, "soak_lineage_down", &duration(LINEAGE_DOWN));
    fact(&mut out, "export_delay", &duration(stitch_telemetry::EXPORT_DELAY));
    fact(&mut out, "span_queue", &stitch_telemetry::MAX_QUEUE_SIZE.to_string());
    fact(&mut out, "settle_after", &duration(SETTLE_AFTER));
    fact(&mut out, "consumer_ask_again", &duration(stitch_flow::CONSUMER_ASK_AGAIN_AFTER));
    fact(&mut out, "consumer_commit_every", &duration(stitch_flow::CONSUMER_COMMIT_EVERY));
    fact(&mut out, "consumer_session_timeout", &duration(stitch_flow::CONSUMER_SESSION_TIMEOUT));
    // The versions the chapter's account of librdkafka's crash names.
    let root = stitch_paths::project_root();
    let tansu = crate::clients::locked_version(&root.join("crates").join("broker").join("Cargo.lock"), "tansu-broker")?;
    fact(&mut out, "tansu_version", &tansu);
    fact(&mut out, "rdkafka_version", &crate::clients::locked_version(&root.join("Cargo.lock"), "rdkafka")?);
    fact(&mut out, "librdkafka_version", &rdkafka::util::get_rdkafka_version().1);
    fact(&mut out, "apache_kafka_version", stitch_components::kafka::APACHE_KAFKA_VERSION);

    let mut agenda = format!("| step | chapter | reading, at {WORDS_PER_MINUTE} words/min |\n|---|---|---:|\n");
    let mut reading = std::collections::BTreeMap::new();
    for step in &steps {
        let path = stitch_paths::project_root().join(&step.meta.chapter);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let minutes = prose_words(&text).div_ceil(WORDS_PER_MINUTE);
        reading.insert(step.number, u32::try_from(minutes)?);
        agenda.push_str(&format!("| {} | `{}` | {minutes} min |\n", step.short_name(), step.meta.chapter));
    }
    fact(&mut out, "reading_times", agenda.trim_end());
    fact(&mut out, "trap_count", &crate::traps::TRAPS.len().to_string());
    let plan = crate::schedule::plan()?;
    fact(&mut out, "schedule", &crate::schedule::render(&plan, &steps, &reading, &crate::agenda::measured()?)?);
    Ok(out)
}

/// `cargo xtask facts` (and `cargo xtask report`): rewrites the file.
pub fn write() -> anyhow::Result<()> {
    let path = path();
    std::fs::write(&path, render()?).with_context(|| format!("writing {}", path.display()))
}

pub fn command() -> anyhow::Result<ExitCode> {
    write()?;
    println!("wrote {}", path().display());
    Ok(ExitCode::SUCCESS)
}

/// Fails when the committed file is not what the code and configs say now.
pub fn check() -> anyhow::Result<()> {
    let path = path();
    let committed = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if committed != render()? {
        bail!("{} is stale: run `cargo xtask facts` and commit it", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_facts_are_current() {
        check().unwrap();
    }

    #[test]
    fn the_tiers_defaults_are_read_as_yaml_and_a_missing_one_is_named() {
        let tier2 = Tier2::read().unwrap();
        assert_eq!(tier2.decision_wait().unwrap(), Duration::from_secs(30));
        let read = Tier2::parse("processors:\n  tail_sampling:\n    decision_wait: ${env:STITCH_DECISION_WAIT:-5s}\n");
        assert_eq!(read.unwrap().decision_wait().unwrap(), Duration::from_secs(5));
        let fixed = Tier2::parse("processors:\n  tail_sampling:\n    decision_wait: 30s\n").unwrap();
        assert!(fixed.decision_wait().unwrap_err().to_string().contains("STITCH_DECISION_WAIT"));
        assert!(Tier2::parse("processors: {}\n").is_err(), "no tail_sampling is an error");
    }

    #[test]
    fn composes_slow_threshold_is_read_from_both_collectors() {
        assert_eq!(Compose::read().unwrap().slow_threshold().unwrap(), Duration::from_millis(2000));
        let compose = |a: &str, b: &str| {
            format!(
                "services:\n  tier2-a:\n    environment:\n      STITCH_SLOW_MS: \"{a}\"\n  tier2-b:\n    \
                 environment:\n      STITCH_SLOW_MS: \"{b}\"\n"
            )
        };
        assert_eq!(
            Compose::parse(&compose("250", "250")).unwrap().slow_threshold().unwrap(),
            Duration::from_millis(250)
        );
        let different = Compose::parse(&compose("250", "300")).unwrap().slow_threshold().unwrap_err();
        assert!(different.to_string().contains("different"), "{different}");
        let missing = Compose::parse("services:\n  tier2-a: {}\n").unwrap().slow_threshold().unwrap_err();
        assert!(missing.to_string().contains("sets no STITCH_SLOW_MS"), "{missing}");
    }

    #[test]
    fn prose_words_skip_code_and_includes() {
        assert_eq!(prose_words("One two, three.\n```rust\nlet x = 1;\n```\n{{#include a.rs}}\n- four 5 —\n"), 5);
    }

    #[test]
    fn durations_read_as_prose() {
        assert_eq!(duration(Duration::from_secs(10)), "10 s");
        assert_eq!(duration(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(duration(Duration::from_millis(250)), "250 ms");
    }

    #[test]
    fn counts_and_lists_read_as_prose() {
        assert_eq!(thousands(2000), "2,000");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(fault_names(&[Fault::KillWorker]), "the worker SIGKILL + restart");
        assert_eq!(
            fault_names(&[Fault::KillWorker, Fault::KillConsumer, Fault::RestartBroker]),
            "the worker SIGKILL + restart, the consumer SIGKILL + restart and the broker restart"
        );
        assert_eq!(multiples(&[1.0, 1.5, 2.0]), "1×, 1.5×, 2×");
    }
}
