//! Wall-clock time per phase of a CI run, printed at its end: where a run's
//! minutes went.

use std::time::{Duration, Instant};

pub(super) struct Clock {
    started: Instant,
    last: Instant,
    laps: Vec<(String, Duration)>,
}

impl Clock {
    pub(super) fn start() -> Clock {
        let now = Instant::now();
        Clock { started: now, last: now, laps: Vec::new() }
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
        println!("  {:>7.1} s  in all", self.started.elapsed().as_secs_f64());
    }
}
