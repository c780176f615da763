//! What lineage holds of one request: its spans and orphans, found by the
//! order's business key.

/// One accepted order as lineage saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderSpans {
    pub spans: u64,
    /// Spans lineage counts as orphans in the order's traces.
    pub orphans: u64,
    /// Trace fragments carrying the order's key: 1 when stitched.
    pub traces: usize,
}

/// Reads `order_id`'s traces from lineage (settle it first).
pub fn order_spans(lineage: &lineage::Lineage, order_id: &str) -> OrderSpans {
    let traces = lineage.request_traces(order_id);
    OrderSpans {
        spans: traces.iter().map(|trace| trace.spans.len() as u64).sum(),
        orphans: traces.iter().map(|trace| trace.orphans).sum(),
        traces: traces.len(),
    }
}

impl OrderSpans {
    /// Spans the flow's shape promises that lineage does not have.
    pub fn lost(&self, expected: u64) -> u64 {
        expected.saturating_sub(self.spans)
    }

    /// Spans beyond the flow's shape (a message processed twice).
    pub fn extra(&self, expected: u64) -> u64 {
        self.spans.saturating_sub(expected)
    }

    /// Whether the order is one connected trace of exactly its shape.
    pub fn whole(&self, expected: u64) -> bool {
        self.spans == expected && self.orphans == 0 && self.traces == 1
    }
}
