//! Reads held traces back as views: by trace id, by business key, and the most recent ones.

use crate::model::{TraceId, parse_trace_id};
use crate::store::Store;
use crate::trace::Trace;
use crate::view::{self, RequestView, TraceView};

impl Store {
    /// The span tree of a trace, with each span classified as of now.
    pub fn trace(&self, trace_id: TraceId) -> Option<TraceView> {
        self.traces.get(&trace_id).map(|t| view::trace_view(self, trace_id, t))
    }

    /// Same as [`Store::trace`] with a 32-digit hex id.
    pub fn trace_hex(&self, trace_id: &str) -> Option<TraceView> {
        self.trace(parse_trace_id(trace_id)?)
    }

    /// The traces holding spans with this business key, oldest first.
    pub fn request_traces(&self, key: &str) -> Vec<TraceView> {
        let Some(entry) = self.tally.keys.get(key) else {
            return Vec::new();
        };
        let mut views: Vec<TraceView> = entry.traces.iter().filter_map(|&id| self.trace(id)).collect();
        views.sort_by(|a, b| (a.start_unix_nanos, &a.trace_id).cmp(&(b.start_unix_nanos, &b.trace_id)));
        views
    }

    /// The fragments of one business key, with a summary; `None` if no held trace has the key.
    pub fn request(&self, key: &str) -> Option<RequestView> {
        let traces = self.request_traces(key);
        (!traces.is_empty()).then(|| view::request_view(key, traces))
    }

    /// Text span dump of one trace (32-digit hex id).
    pub fn trace_dump(&self, trace_id: &str) -> Option<String> {
        self.trace_hex(trace_id).map(|t| view::dump_trace(&t))
    }

    /// Text span dump of every fragment of one business key.
    pub fn request_dump(&self, key: &str) -> Option<String> {
        self.request(key).map(|r| view::dump_request(&self.config.business_key, &r))
    }

    /// Most recently started traces, newest first.
    pub(crate) fn recent_traces(&self, limit: usize) -> Vec<(TraceId, &Trace)> {
        let mut all: Vec<(TraceId, &Trace)> = self.traces.iter().map(|(&id, t)| (id, t)).collect();
        all.sort_by_key(|&(id, t)| std::cmp::Reverse((t.first_arrival, id)));
        all.truncate(limit);
        all
    }

    /// Business keys with the most recent traces, newest first.
    pub(crate) fn recent_keys(&self, limit: usize) -> Vec<(&str, usize, u64)> {
        let mut keys: Vec<(&str, usize, u64)> = self
            .tally
            .keys
            .iter()
            .map(|(key, entry)| {
                let latest = entry
                    .traces
                    .iter()
                    .filter_map(|id| self.traces.get(id))
                    .map(|t| t.first_arrival)
                    .max()
                    .unwrap_or(0);
                (&**key, entry.traces.len(), latest)
            })
            .collect();
        keys.sort_by(|a, b| (b.2, b.0).cmp(&(a.2, a.0)));
        keys.truncate(limit);
        keys
    }
}
