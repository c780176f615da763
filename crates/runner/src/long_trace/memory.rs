//! Tier 2's memory over a run, from the samples taken while the workload
//! ran: per collector, its RSS and its slope; under a cgroup, the bytes
//! charged per span held.

use std::collections::BTreeSet;

use stitch_model::stage::long_trace::{MemorySummary, Sample};

/// Samples a slope of bytes per held span needs: ten seconds at the check's
/// one a second. Over three, the collector's own start-up growth under load
/// made the solved flow's slope 8 to 16 KB a span.
const MIN_SLOPE_SAMPLES: usize = 10;

/// Bytes charged per span held: the slope of the cgroup's usage over the
/// spans accepted, in the samples before `until` seconds (the first decision).
pub fn bytes_per_held_span(samples: &[Sample], collector: &str, until: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|sample| sample.collector == collector && sample.t < until)
        .filter_map(|sample| Some((sample.accepted_spans, sample.cgroup_bytes?)))
        .collect();
    if points.len() < MIN_SLOPE_SAMPLES {
        return None;
    }
    let n = points.len() as f64;
    let (mean_x, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance)
}

/// Least-squares slope of `(t seconds, bytes)` in MiB per minute.
pub fn slope_mib_per_minute(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mean_t, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = points.iter().map(|(t, y)| (t - mean_t) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if variance == 0.0 { 0.0 } else { covariance / variance * 60.0 / (1024.0 * 1024.0) }
}

pub fn memory_summary(samples: &[Sample]) -> Vec<MemorySummary> {
    let collectors: BTreeSet<&String> = samples.iter().map(|sample| &sample.collector).collect();
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    collectors
        .into_iter()
        .map(|collector| {
            let mine: Vec<&Sample> = samples.iter().filter(|sample| &sample.collector == collector).collect();
            let points: Vec<(f64, f64)> = mine.iter().map(|sample| (sample.t, sample.rss_bytes)).collect();
            let max = |f: fn(&Sample) -> f64| mine.iter().map(|sample| f(sample)).fold(0.0, f64::max);
            MemorySummary {
                collector: collector.clone(),
                // A collector is listed for its samples: it has a first and a last.
                first_rss_mib: mib(mine[0].rss_bytes),
                last_rss_mib: mib(mine[mine.len() - 1].rss_bytes),
                max_rss_mib: mib(max(|sample| sample.rss_bytes)),
                max_heap_mib: mib(max(|sample| sample.heap_bytes)),
                slope_mib_per_min: slope_mib_per_minute(&points),
                max_traces_on_memory: max(|sample| sample.traces_on_memory),
                refused_spans: max(|sample| sample.refused_spans),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_in_mib_per_minute() {
        let mib = 1024.0 * 1024.0;
        let rising: Vec<(f64, f64)> = (0..10).map(|i| (i as f64 * 6.0, 100.0 * mib + i as f64 * mib)).collect();
        assert!((slope_mib_per_minute(&rising) - 10.0).abs() < 1e-9);
        assert_eq!(slope_mib_per_minute(&[(0.0, 5.0)]), 0.0);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 7.0 * mib)).collect();
        assert_eq!(slope_mib_per_minute(&flat), 0.0);
    }

    #[test]
    fn bytes_per_held_span_is_the_slope_of_usage_over_spans_before_the_decision() {
        let sample = |t: f64, spans: f64, bytes: f64| Sample {
            t,
            collector: "tier2-a".to_owned(),
            rss_bytes: 0.0,
            heap_bytes: 0.0,
            traces_on_memory: 0.0,
            refused_spans: 0.0,
            cgroup_bytes: Some(bytes),
            accepted_spans: spans,
        };
        // 4 KiB a span until the decision at 12 s; what follows does not count.
        let samples: Vec<Sample> = (0..12)
            .map(|i| sample(f64::from(i), f64::from(i) * 1000.0, f64::from(i) * 4_096_000.0))
            .chain([sample(12.0, 12_000.0, 0.0), sample(13.0, 13_000.0, 0.0)])
            .collect();
        assert_eq!(bytes_per_held_span(&samples, "tier2-a", 12.0), Some(4096.0));
        assert_eq!(bytes_per_held_span(&samples, "tier2-b", 12.0), None);
        // A decision after 3 s leaves too few samples.
        assert_eq!(bytes_per_held_span(&samples, "tier2-a", 3.0), None);
    }
}
