//! Wall-clock time per phase of a CI run, printed at its end: where a run's
//! minutes went.

use std::time::{Duration, Instant};

pub(super) struct Clock {
    started: Instant,
    last: Instant,
    laps: Vec<(String, Duration)>,
    /// What `cargo xtask` spent building this command before it started.
    before: Duration,
}

impl Clock {
    pub(super) fn start() -> Clock {
        let now = Instant::now();
        let before = crate::ci_time::since_xtask_started();
        let laps =
            before.iter().map(|took| ("building the commands (`cargo xtask` → stitch)".to_owned(), *took)).collect();
        Clock { started: now, last: now, laps, before: before.unwrap_or_default() }
    }

    /// Ends the phase called `name` now.
    pub(super) fn lap(&mut self, name: &str) {
        let now = Instant::now();
        self.laps.push((name.to_owned(), now - self.last));
        self.last = now;
    }

    pub(super) fn print(&self) {
        for (name, took) in &self.laps {
            println!("  {:>7.1} s  {name}", took.as_secs_f64());
        }
        println!("  {:>7.1} s  in all", self.total().as_secs_f64());
    }

    /// From `cargo xtask` handing the command on to now.
    pub(super) fn total(&self) -> Duration {
        self.started.elapsed() + self.before
    }

    pub(super) fn laps(&self) -> &[(String, Duration)] {
        &self.laps
    }
}
