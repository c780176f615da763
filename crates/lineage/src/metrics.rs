//! Prometheus exposition: a snapshot of the store's counters, encoded by
//! prometheus-client at scrape time. Counters live in the store only, so a
//! reset clears the metrics too.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::histogram::PROMETHEUS_BUCKETS;
use crate::ingest::INVALID_ID;
use crate::model::{Boundary, Cause};
use crate::report::ratio;
use crate::store::{ServiceCounters, Store};

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct Snapshot {
    services: Vec<(String, ServiceCounters)>,
    requests: u64,
    breaks: [u64; 3],
    unattributed: [u64; 3],
    request_root_missing: [u64; 3],
    completeness_buckets: Vec<(f64, u64)>,
    completeness_sum: f64,
    completeness_count: u64,
    traces_held: u64,
    spans_held: u64,
    traces_open: u64,
    spans_received: u64,
    traces_settled: u64,
    evictions: [(&'static str, u64); 2],
    late_spans: u64,
    duplicate_spans: u64,
    rejected_payloads: Vec<(&'static str, u64)>,
    rejected_spans: u64,
}

fn snapshot(store: &Store) -> Snapshot {
    let tally = &store.tally;
    let mut services: Vec<(String, ServiceCounters)> = tally
        .services
        .iter()
        .enumerate()
        .filter(|(_, c)| c.spans > 0)
        .map(|(id, c)| (store.service_name(id as u32).to_owned(), c.clone()))
        .collect();
    services.sort_by(|a, b| a.0.cmp(&b.0));
    Snapshot {
        services,
        requests: tally.requests,
        breaks: tally.breaks,
        unattributed: tally.unattributed,
        request_root_missing: tally.request_root_missing(),
        completeness_buckets: PROMETHEUS_BUCKETS
            .iter()
            .copied()
            .zip(tally.completeness.coarse.iter().copied())
            .collect(),
        completeness_sum: tally.completeness.sum_seconds,
        completeness_count: tally.completeness.count,
        traces_held: store.held_traces() as u64,
        spans_held: store.held_spans(),
        traces_open: store.open_traces() as u64,
        spans_received: tally.spans_received,
        traces_settled: tally.traces_settled,
        evictions: [("settled", tally.evictions.settled), ("unsettled", tally.evictions.unsettled)],
        late_spans: tally.late_spans,
        duplicate_spans: tally.duplicate_spans,
        rejected_payloads: tally.rejected_payloads.iter().map(|(r, &n)| (r.as_str(), n)).collect(),
        rejected_spans: tally.rejected_spans,
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn as_gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        {
            let mut family = e.encode_descriptor(
                "lineage_spans",
                "Spans classified in settled traces, by service.",
                None,
                MetricType::Counter,
            )?;
            for (service, c) in &self.services {
                ConstCounter::new(c.spans).encode(family.encode_family(&[("service", service.as_str())])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "lineage_orphan_spans",
                "Orphan spans by their own service and the cause and boundary of their break span.",
                None,
                MetricType::Counter,
            )?;
            for (service, c) in &self.services {
                for cause in Cause::ALL {
                    for boundary in Boundary::ALL {
                        let labels =
                            [("service", service.as_str()), ("cause", cause.as_str()), ("boundary", boundary.as_str())];
                        ConstCounter::new(c.orphans_by[cause.index()][boundary.index()])
                            .encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut family = e.encode_descriptor(
                "lineage_linked_spans",
                "Spans under a root of a non-entry service that carries span links.",
                None,
                MetricType::Counter,
            )?;
            for (service, c) in &self.services {
                ConstCounter::new(c.linked).encode(family.encode_family(&[("service", service.as_str())])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "lineage_orphan_rate",
                "Orphan spans / spans of the service, over settled traces.",
                None,
                MetricType::Gauge,
            )?;
            for (service, c) in &self.services {
                ConstGauge::new(ratio(c.orphans, c.spans))
                    .encode(family.encode_family(&[("service", service.as_str())])?)?;
            }
        }
        counter(e, "lineage_requests", "Root spans of entry services in settled traces.", self.requests)?;
        {
            let mut family = e.encode_descriptor(
                "lineage_boundary_breaks",
                "Requests (business keys) whose lineage breaks at the boundary, each key once.",
                None,
                MetricType::Counter,
            )?;
            for boundary in Boundary::ALL {
                ConstCounter::new(self.breaks[boundary.index()])
                    .encode(family.encode_family(&[("boundary", boundary.as_str())])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "lineage_unattributed_breaks",
                "Orphan fragments with neither a request in their trace nor a business key, by boundary of their break span.",
                None,
                MetricType::Counter,
            )?;
            for boundary in Boundary::ALL {
                ConstCounter::new(self.unattributed[boundary.index()])
                    .encode(family.encode_family(&[("boundary", boundary.as_str())])?)?;
            }
        }
        {
            // A gauge: a request that arrives late takes its breaks back.
            let mut family = e.encode_descriptor(
                "lineage_request_root_missing",
                "Breaks (business key, boundary) whose request is not held: no entry root in the trace nor under the key.",
                None,
                MetricType::Gauge,
            )?;
            for boundary in Boundary::ALL {
                ConstGauge::new(as_gauge(self.request_root_missing[boundary.index()]))
                    .encode(family.encode_family(&[("boundary", boundary.as_str())])?)?;
            }
        }
        e.encode_descriptor(
            "lineage_completeness_seconds",
            "From the end of an entry root span to the arrival of the last span connected to it.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            self.completeness_sum,
            self.completeness_count,
            &self.completeness_buckets,
            None,
        )?;
        gauge(e, "lineage_traces_held", "Traces held in memory.", as_gauge(self.traces_held))?;
        gauge(e, "lineage_spans_held", "Spans held in memory.", as_gauge(self.spans_held))?;
        gauge(e, "lineage_traces_open", "Traces held and not settled yet.", as_gauge(self.traces_open))?;
        counter(e, "lineage_spans_received", "Spans accepted (first copies).", self.spans_received)?;
        counter(e, "lineage_traces_settled", "Traces settled.", self.traces_settled)?;
        {
            let mut family = e.encode_descriptor(
                "lineage_evictions",
                "Traces evicted to stay within --max-traces/--max-spans; unsettled ones were force-settled first.",
                None,
                MetricType::Counter,
            )?;
            for (state, n) in self.evictions {
                ConstCounter::new(n).encode(family.encode_family(&[("state", state)])?)?;
            }
        }
        counter(e, "lineage_late_spans", "Spans that arrived after their trace settled.", self.late_spans)?;
        counter(
            e,
            "lineage_duplicate_spans",
            "Spans received again (same trace id and span id); the first copy is kept.",
            self.duplicate_spans,
        )?;
        {
            let mut family = e.encode_descriptor(
                "lineage_rejected_payloads",
                "OTLP payloads refused as a whole, by reason.",
                None,
                MetricType::Counter,
            )?;
            for (reason, n) in &self.rejected_payloads {
                ConstCounter::new(*n).encode(family.encode_family(&[("reason", *reason)])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "lineage_rejected_spans",
                "Spans refused one by one, by reason.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(self.rejected_spans).encode(family.encode_family(&[("reason", INVALID_ID)])?)?;
        }
        Ok(())
    }
}

/// Renders the Prometheus text exposition of the store's counters.
pub fn render(store: &Store) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot(store)));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}
