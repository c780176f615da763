//! What step 8's long-trace stage measured, before and after the tier sampled it.
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The traffic of one run: batches on the worker, and orders alongside them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub batches: usize,
    /// A batch starts this long after the previous one.
    pub batch_every: Duration,
    pub items: u32,
    /// The pause before each item.
    pub interval: Duration,
    /// This item and every later one fail (status ERROR): the store behind
    /// the items goes down mid-batch. 0: none fails.
    pub fail_from: u32,
    /// Orders, spread evenly over the whole workload. `None`: the run's
    /// request count.
    pub orders: Option<usize>,
}

impl Workload {
    /// From the first batch's start to the last batch's end.
    pub fn span(&self) -> Duration {
        self.batch_every * (self.batches.saturating_sub(1) as u32) + self.batch_length()
    }

    /// How long one batch runs.
    pub fn batch_length(&self) -> Duration {
        self.interval * self.items
    }

    /// Items over all batches.
    pub fn all_items(&self) -> u64 {
        self.batches as u64 * u64::from(self.items)
    }

    pub fn failing_items(&self) -> u64 {
        match self.fail_from {
            0 => 0,
            from => u64::from((self.items + 1).saturating_sub(from)),
        }
    }
}

/// A hard memory limit on each tier-2 collector, enforced by the kernel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct HardLimit {
    /// Room above each collector's idle usage, measured once the flow is
    /// connected and before the workload: its limit is its idle usage plus this.
    pub margin_mib: u64,
    /// The Go collector's `GOGC` under the limit: collect garbage when the
    /// heap grows this many percent past what was live, so that what the
    /// limit meets is what the tail sampler holds, not garbage not yet
    /// collected (Go's default, 100, lets the heap double first).
    pub gogc: u32,
}

/// One reading of a tier-2 collector's memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the workload started.
    pub t: f64,
    pub collector: String,
    pub rss_bytes: f64,
    pub heap_bytes: f64,
    pub traces_on_memory: f64,
    /// Spans its receiver refused so far (the memory limiter's doing).
    pub refused_spans: f64,
    /// What its memory cgroup charged, when it runs in one.
    pub cgroup_bytes: Option<f64>,
    /// Spans its receiver accepted so far.
    pub accepted_spans: f64,
}

/// What step 8's stage measured, before and after sampling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LongTraceData {
    pub label: String,
    pub workload: Workload,
    /// Orders alongside the batches.
    pub orders: usize,
    pub decision_wait_ms: u64,
    pub num_traces: u64,
    /// Tier 2's `slow` policy threshold: long, since a batch is long by design.
    pub slow_threshold_seconds: u64,
    /// Tier 2's decision caches: (sampled, not sampled).
    pub decision_cache: (u64, u64),
    /// Tier 2's memory_limiter: (limit, spike), when it has one.
    pub memory_limit_mib: Option<(u64, u64)>,
    /// Before sampling: the longest spread of a trace's arrivals.
    pub longest_trace_seconds: f64,
    pub traces_outliving_the_window: usize,
    pub traces_before: usize,
    /// The lineage behind tier 2.
    pub orphans_after: u64,
    pub missing_parent_after: u64,
    pub spans_after: u64,
    pub connected_after: u64,
    pub linked_after: u64,
    pub failed_items: u64,
    pub failed_items_kept: usize,
    pub batch_traces: usize,
    pub batch_traces_kept_whole: usize,
    pub batch_traces_kept_in_part: usize,
    pub linked_before: u64,
    /// Before sampling: how each item's span relates to its batch.
    pub items: ItemShapes,
    /// Spans that reached tier 2 after their trace's decision, while it held
    /// the trace's slot.
    pub late_spans_in_map: f64,
    pub late_span_age_sum_seconds: f64,
    /// Late spans that followed a cached decision.
    pub late_spans_cached: CachedLateSpans,
    pub dropped_too_early: f64,
    pub new_trace_ids: f64,
    pub refused_spans: f64,
    /// From tier 2's logs: how often the memory limiter forced a GC and
    /// started refusing data.
    pub limiter_forced_gcs: usize,
    pub limiter_started_refusing: usize,
    pub tier1_send_failed_spans: f64,
    /// Spans of traces with a failed span (the errors policy keeps each) that
    /// tier 1 received and no tier-2 collector exported.
    pub lost_spans: u64,
    pub lost_traces: usize,
    /// The hard limit, when tier 2 ran under one.
    pub hard_limit: Option<HardLimitRun>,
    /// Why tier 2 ran without the hard limit the run asked for: this machine
    /// gave it no memory cgroup (no controller, no root).
    #[serde(default)]
    pub no_memory_cgroup: Option<String>,
    pub memory: Vec<MemorySummary>,
    pub samples: Vec<Sample>,
}

/// Item spans by how they relate to their batch, before sampling: a root
/// with a link is the fix; a parent with a link is half of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemShapes {
    /// Roots with a link (lineage counts them LINKED).
    pub root_linked: u64,
    /// A parent (the batch) and a link.
    pub parent_and_link: u64,
    /// A parent (the batch) and no link: the batch is one trace.
    pub parent_only: u64,
    /// Roots with no link: nothing leads back to the batch.
    pub root_unlinked: u64,
}

/// Tier 2 under a hard memory limit: the limit and what the kernel did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HardLimitRun {
    /// `cgroup v1` or `cgroup v2`.
    pub cgroup: String,
    pub margin_mib: u64,
    pub gogc: u32,
    pub collectors: Vec<CollectorUnderLimit>,
}

/// One tier-2 collector in its memory cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectorUnderLimit {
    pub collector: String,
    /// Charged with the flow connected, before the workload.
    pub idle_bytes: u64,
    /// Its hard limit: `idle_bytes` + the margin.
    pub limit_bytes: u64,
    /// The most the cgroup ever charged.
    pub peak_bytes: u64,
    /// The cgroup's OOM-kill counter at the end of the run.
    pub oom_kills: u64,
    /// When it was seen dead, seconds since the workload started, and the
    /// signal that ended it.
    pub died_at_seconds: Option<f64>,
    pub exit_signal: Option<i32>,
    /// Bytes the cgroup charged per span accepted, before the first
    /// decision (every span accepted is still held): the least-squares
    /// slope. `None` with fewer than [`MIN_SLOPE_SAMPLES`] samples in that
    /// time (a 3 s window: start-up's growth, not held spans).
    pub bytes_per_held_span: Option<f64>,
}

/// Late spans that followed a cached decision, by that decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedLateSpans {
    pub kept: f64,
    pub dropped: f64,
}

/// Tier-2 memory over the run, per collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemorySummary {
    pub collector: String,
    pub first_rss_mib: f64,
    pub last_rss_mib: f64,
    pub max_rss_mib: f64,
    pub max_heap_mib: f64,
    pub slope_mib_per_min: f64,
    pub max_traces_on_memory: f64,
    pub refused_spans: f64,
}
