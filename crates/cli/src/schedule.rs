//! The one-day schedule of the instructors' page, planned, not typed: each
//! step's slot is its chapter's reading time, the attendee's tries (each a
//! few minutes of editing, then a check as long as `cargo xtask agenda`
//! measured it) and the step's discussion. What is assumed rather than
//! measured (how many tries, how long each, the breaks) is in
//! `book/schedule.toml`, and the page says so.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use stitch_runner::step::Step;

use crate::agenda::Measured;

/// `book/schedule.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// `HH:MM`.
    pub start: String,
    pub opening_minutes: u32,
    pub checks_per_step: u32,
    pub minutes_per_try: u32,
    pub discussion_minutes: u32,
    pub closing_minutes: u32,
    pub round_to_minutes: u32,
    /// Step numbers, in the day's order.
    pub order: Vec<u8>,
    #[serde(default)]
    pub breaks: Vec<Break>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Break {
    pub after_step: u8,
    pub minutes: u32,
    pub what: String,
}

pub const PLAN: &str = "book/schedule.toml";

pub fn plan() -> anyhow::Result<Plan> {
    let path = stitch_paths::project_root().join(PLAN);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Minutes since midnight of `HH:MM`.
fn clock(text: &str) -> anyhow::Result<u32> {
    let (hours, minutes) = text.split_once(':').with_context(|| format!("`{text}` is not HH:MM"))?;
    let (hours, minutes): (u32, u32) = (hours.parse()?, minutes.parse()?);
    if hours > 23 || minutes > 59 {
        bail!("`{text}` is not a time of day");
    }
    Ok(hours * 60 + minutes)
}

fn hh_mm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}

fn round_up(minutes: f64, to: u32) -> u32 {
    let to = f64::from(to.max(1));
    ((minutes / to).ceil() * to) as u32
}

/// One step's slot, in minutes.
struct Slot {
    reading: u32,
    tries: u32,
    checks: f64,
    total: u32,
}

fn slot(plan: &Plan, reading: u32, first_s: f64, again_s: f64) -> Slot {
    let checks = (first_s + f64::from(plan.checks_per_step.saturating_sub(1)) * again_s) / 60.0;
    let tries = plan.checks_per_step * plan.minutes_per_try;
    let total = round_up(
        f64::from(reading) + f64::from(tries) + checks + f64::from(plan.discussion_minutes),
        plan.round_to_minutes,
    );
    Slot { reading, tries, checks, total }
}

/// The schedule as Markdown: a table from the opening to the end, and what
/// it was planned from. `reading` is each step's reading time in minutes.
pub fn render(plan: &Plan, steps: &[Step], reading: &BTreeMap<u8, u32>, measured: &Measured) -> anyhow::Result<String> {
    let by_number: BTreeMap<u8, &Step> = steps.iter().map(|step| (step.number, step)).collect();
    for number in by_number.keys() {
        if !plan.order.contains(number) {
            bail!("{PLAN}: `order` leaves out step {number}: a day that skips a step says so by removing it here");
        }
    }
    let mut table = String::from(
        "| time | | reading | tries: editing + the checks' own time | discussion | slot |\n|---|---|---:|---:|---:|---:|\n",
    );
    let mut now = clock(&plan.start)?;
    table.push_str(&format!(
        "| {} | opening: `cargo xtask doctor`, the introduction, `cargo xtask demo` | | | | {} min |\n",
        hh_mm(now),
        plan.opening_minutes
    ));
    now += plan.opening_minutes;
    for number in &plan.order {
        let step = by_number
            .get(number)
            .with_context(|| format!("{PLAN}: `order` names step {number}, which does not exist"))?;
        let timed = measured.steps.iter().find(|timed| timed.step == step.short_name()).with_context(|| {
            format!("{}: no check time for {}: run `cargo xtask agenda`", crate::agenda::DATA, step.short_name())
        })?;
        let minutes = *reading.get(number).with_context(|| format!("no reading time for step {number}"))?;
        let slot = slot(plan, minutes, timed.first_s, timed.again_s);
        table.push_str(&format!(
            "| {} | step {number}: {} | {} min | {} + {:.1} min | {} min | {} min |\n",
            hh_mm(now),
            step.meta.title,
            slot.reading,
            slot.tries,
            slot.checks,
            plan.discussion_minutes,
            slot.total
        ));
        now += slot.total;
        for pause in plan.breaks.iter().filter(|pause| pause.after_step == *number) {
            table.push_str(&format!("| {} | {} | | | | {} min |\n", hh_mm(now), pause.what, pause.minutes));
            now += pause.minutes;
        }
    }
    for pause in &plan.breaks {
        if !plan.order.contains(&pause.after_step) {
            bail!("{PLAN}: a {} after step {}, which is not in `order`", pause.what, pause.after_step);
        }
    }
    table.push_str(&format!(
        "| {} | closing | | | | {} min |\n| {} | end | | | | |",
        hh_mm(now),
        plan.closing_minutes,
        hh_mm(now + plan.closing_minutes)
    ));
    Ok(format!(
        "{table}\n\nPlanned from each chapter's reading time (its words at {} a minute), each step's check times as \
         `cargo xtask agenda` measured them on a {}-core machine (the first check of a step after a clean build, then \
         warm ones; load average {:.1} when it started), and what `{PLAN}` assumes: {} checks per step, {} minutes \
         of editing before each, {} minutes of discussion after each step, slots rounded up to {} minutes.",
        crate::facts::WORDS_PER_MINUTE,
        measured.cores,
        measured.load_before[0],
        plan.checks_per_step,
        plan.minutes_per_try,
        plan.discussion_minutes,
        plan.round_to_minutes
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agenda::MeasuredStep;

    fn plan(order: Vec<u8>) -> Plan {
        Plan {
            start: "09:00".to_owned(),
            opening_minutes: 30,
            checks_per_step: 4,
            minutes_per_try: 5,
            discussion_minutes: 5,
            closing_minutes: 15,
            round_to_minutes: 5,
            order,
            breaks: vec![Break { after_step: 0, minutes: 15, what: "break".to_owned() }],
        }
    }

    #[test]
    fn a_slot_is_reading_tries_checks_and_discussion_rounded_up() {
        // 4 min reading, 4 × 5 min editing, 60 s + 3 × 20 s of checks, 5 min talk: 31 → 35.
        let slot = slot(&plan(vec![]), 4, 60.0, 20.0);
        assert_eq!((slot.reading, slot.tries, slot.total), (4, 20, 35));
        assert!((slot.checks - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_day_runs_from_the_start_through_each_step_and_break() {
        let steps: Vec<Step> = stitch_runner::step::all().unwrap().into_iter().take(2).collect();
        let reading = BTreeMap::from([(0, 2), (1, 4)]);
        let measured = Measured {
            cores: 2,
            load_before: [1.0, 1.0, 1.0],
            load_after: [1.0, 1.0, 1.0],
            steps: vec![
                MeasuredStep { step: "step-0".to_owned(), first_s: 3.0, again_s: 2.0 },
                MeasuredStep { step: "step-1".to_owned(), first_s: 3.0, again_s: 2.0 },
            ],
        };
        let text = render(&plan(vec![0, 1]), &steps, &reading, &measured).unwrap();
        assert!(text.contains("| 09:00 | opening"), "{text}");
        // 2 + 20 + 0.15 (shown 0.1) + 5 = 27.15 → 30 min; then the break.
        assert!(
            text.contains("| 09:30 | step 0: The broken baseline | 2 min | 20 + 0.1 min | 5 min | 30 min |"),
            "{text}"
        );
        assert!(text.contains("| 10:00 | break | | | | 15 min |"), "{text}");
        assert!(text.contains("| 10:15 | step 1: The HTTP hop |"), "{text}");
        assert!(text.contains("| 10:45 | closing |") && text.contains("| 11:00 | end |"), "{text}");
        let missing = render(&plan(vec![0]), &steps, &reading, &measured).unwrap_err().to_string();
        assert!(missing.contains("leaves out step 1"), "{missing}");
        assert!(clock("25:00").is_err() && clock("9").is_err());
    }
}
