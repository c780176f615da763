//! Completeness latency: a coarse Prometheus histogram plus a fine log-scale
//! histogram for percentiles (about 1 % relative error, fixed memory).

/// Upper bounds (seconds) of the exported `lineage_completeness_seconds` buckets.
pub const PROMETHEUS_BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Each fine bucket spans a factor of `GROWTH` in microseconds.
const GROWTH: f64 = 1.02;
/// 1.02^1200 µs is about 6 hours; slower values share the last bucket.
const FINE_BUCKETS: usize = 1202;

#[derive(Clone, Debug)]
pub(crate) struct LatencyHistogram {
    /// Non-cumulative counts per `PROMETHEUS_BUCKETS` entry; the overflow is `count - sum`.
    pub coarse: [u64; PROMETHEUS_BUCKETS.len()],
    /// Bucket 0 holds values below 1 µs; bucket i ≥ 1 holds [GROWTH^(i-1), GROWTH^i) µs.
    fine: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
    pub max_nanos: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            coarse: [0; PROMETHEUS_BUCKETS.len()],
            fine: vec![0; FINE_BUCKETS],
            count: 0,
            sum_seconds: 0.0,
            max_nanos: 0,
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, nanos: u64) {
        let seconds = nanos as f64 / 1e9;
        if let Some(i) = PROMETHEUS_BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.coarse[i] += 1;
        }
        self.fine[fine_index(nanos)] += 1;
        self.count += 1;
        self.sum_seconds += seconds;
        self.max_nanos = self.max_nanos.max(nanos);
    }

    /// Nearest-rank percentile in milliseconds: the geometric middle of the
    /// fine bucket holding the rank, never above the exact maximum.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((quantile * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.fine.iter().enumerate() {
            seen += n;
            if seen >= rank {
                if i == 0 {
                    return 0.0;
                }
                let low = GROWTH.powi(i as i32 - 1);
                let middle_us = low * GROWTH.sqrt();
                return (middle_us / 1e3).min(self.max_ms());
            }
        }
        self.max_ms()
    }

    pub fn max_ms(&self) -> f64 {
        self.max_nanos as f64 / 1e6
    }
}

fn fine_index(nanos: u64) -> usize {
    let micros = nanos as f64 / 1e3;
    if micros < 1.0 {
        return 0;
    }
    let i = (micros.ln() / GROWTH.ln()).floor() as usize + 1;
    i.min(FINE_BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_two_percent() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=1000u64 {
            h.record(ms * 1_000_000);
        }
        let p50 = h.percentile_ms(0.5);
        let p99 = h.percentile_ms(0.99);
        assert!((p50 - 500.0).abs() / 500.0 < 0.02, "p50 {p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.02, "p99 {p99}");
        assert_eq!(h.max_ms(), 1000.0);
        assert_eq!(h.count, 1000);
        assert_eq!(h.coarse.iter().sum::<u64>(), 1000);
    }

    #[test]
    fn zero_and_huge_values() {
        let mut h = LatencyHistogram::default();
        h.record(0);
        assert_eq!(h.percentile_ms(0.5), 0.0);
        h.record(u64::MAX);
        assert!(h.percentile_ms(1.0) > 0.0);
        assert_eq!(h.coarse.iter().sum::<u64>(), 1);
    }
}
