//! Open-loop traffic: requests leave on a fixed schedule whatever the
//! gateway's answers take, so a slow flow meets the same arrival rate
//! instead of slowing its own load down.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::time::MissedTickBehavior;

use stitch_model::Order;

/// A steady arrival rate for a while.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Rate {
    pub rps: u32,
    pub seconds: f64,
}

impl Rate {
    /// The requests the schedule sends.
    pub fn requests(&self) -> usize {
        (f64::from(self.rps) * self.seconds).round() as usize
    }

    /// An error for a rate that sends nothing or cannot be scheduled.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rps == 0 || self.rps > 10_000 {
            bail!("--rps {}: expected 1 to 10000 requests per second", self.rps);
        }
        if !(self.seconds.is_finite() && self.seconds >= 1.0) {
            bail!("--seconds {}: expected at least 1 second", self.seconds);
        }
        Ok(())
    }
}

/// One scheduled request and how it went.
#[derive(Debug)]
pub struct Sent {
    /// When it left.
    pub sent_at: Instant,
    /// How much later than scheduled it left.
    pub lag: Duration,
    /// From sending to the gateway's answer.
    pub latency: Duration,
    /// The order the gateway accepted, or what went wrong.
    pub outcome: Result<Order, String>,
}

/// Sends `rate` to the gateway's `/orders`, each request in a task of its
/// own, and returns every request once all have answered (or timed out:
/// the order client gives up after 10 s). `progress` counts answers.
pub async fn open_loop(
    gateway: std::net::SocketAddr,
    rate: Rate,
    progress: indicatif::ProgressBar,
) -> anyhow::Result<Vec<Sent>> {
    let client = crate::gateway::client()?;
    let url = format!("http://{gateway}/orders");
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.rps));
    let mut interval = tokio::time::interval(period);
    // Burst: a tick missed because the sender was late is sent at once, so
    // the count stays on schedule and the lateness shows in `lag`.
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(rate.requests());
    for index in 0..rate.requests() {
        interval.tick().await;
        let due = period.mul_f64(index as f64);
        let sent_at = Instant::now();
        let lag = sent_at.duration_since(start).saturating_sub(due);
        let request = crate::gateway::place(client.post(&url));
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = request.await.map_err(|err| format!("{err:#}"));
            progress.inc(1);
            Sent { sent_at, lag, latency: sent_at.elapsed(), outcome }
        }));
    }
    let mut sent = Vec::with_capacity(tasks.len());
    for task in futures::future::join_all(tasks).await {
        sent.push(task.context("a request task panicked")?);
    }
    Ok(sent)
}

/// What a closed loop got through.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub completed: usize,
    pub failed: usize,
    pub seconds: f64,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.seconds
    }
}

/// `callers` each send a request, wait for its answer and send the next,
/// for `seconds`: the rate the flow answers at when nobody waits on a
/// schedule. Answers after the deadline are not counted.
pub async fn closed_loop(gateway: std::net::SocketAddr, callers: usize, seconds: f64) -> anyhow::Result<Throughput> {
    let client = crate::gateway::client()?;
    let url = format!("http://{gateway}/orders");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks = (0..callers.max(1)).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let (mut completed, mut failed) = (0, 0);
            while Instant::now() < deadline {
                let outcome = crate::gateway::place(client.post(&url)).await;
                if Instant::now() > deadline {
                    break;
                }
                match outcome {
                    Ok(_) => completed += 1,
                    Err(_) => failed += 1,
                }
            }
            (completed, failed)
        })
    });
    let mut throughput = Throughput { completed: 0, failed: 0, seconds };
    for task in futures::future::join_all(tasks).await {
        let (completed, failed) = task.context("a caller task panicked")?;
        throughput.completed += completed;
        throughput.failed += failed;
    }
    Ok(throughput)
}

/// The nearest-rank percentile of `values` (`quantile` in 0..=1); `None`
/// when there is nothing to rank.
pub fn percentile(values: &[f64], quantile: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Milliseconds, rounded to the microsecond.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// A progress bar of `total` answers, hidden outside a terminal.
pub fn progress(message: impl Into<std::borrow::Cow<'static, str>>, total: usize) -> indicatif::ProgressBar {
    let message = message.into();
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        eprintln!("· {message}: {total} requests");
        return indicatif::ProgressBar::hidden();
    }
    indicatif::ProgressBar::new(total as u64)
        .with_style(
            indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} requests ({per_sec})")
                .expect("valid template")
                .progress_chars("=> "),
        )
        .with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&values, 1.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_rate_that_sends_nothing_is_refused() {
        assert!(Rate { rps: 0, seconds: 10.0 }.validate().is_err());
        assert!(Rate { rps: 100, seconds: 0.5 }.validate().is_err());
        assert!(Rate { rps: 100, seconds: f64::NAN }.validate().is_err());
        assert_eq!(Rate { rps: 200, seconds: 60.0 }.requests(), 12_000);
    }
}
