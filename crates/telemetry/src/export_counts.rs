//! What became of every span this process ended: exported, refused by the
//! endpoint, or dropped by the batch processor before it was sent.
//!
//! The SDK's batch processor drops a span when its queue is full and says so
//! once, in one log line; its count is private. These counters make every
//! loss a number: `/metrics` serves them, and the shutdown prints them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

/// The process's counts; one telemetry pipeline per process.
static ENDED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// One reading of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ExportCounts {
    /// Sampled spans that ended and were handed to the batch processor.
    pub ended: u64,
    /// Spans in batches the endpoint accepted.
    pub exported: u64,
    /// Spans in batches the export of which failed (endpoint down, timeout).
    pub failed: u64,
}

impl ExportCounts {
    /// The counters now.
    pub fn now() -> ExportCounts {
        ExportCounts {
            ended: ENDED.load(Ordering::Relaxed),
            exported: EXPORTED.load(Ordering::Relaxed),
            failed: FAILED.load(Ordering::Relaxed),
        }
    }

    /// Spans neither exported nor failed. Once the pipeline is idle (a flush,
    /// a shutdown, or a few export intervals without traffic) these are the
    /// spans the batch processor dropped because its queue was full; while
    /// spans flow, the queue's content is counted here too.
    pub fn dropped(&self) -> u64 {
        self.ended.saturating_sub(self.exported + self.failed)
    }

    /// Spans lost between the process and its endpoint: dropped or failed.
    pub fn lost(&self) -> u64 {
        self.dropped() + self.failed
    }

    /// What happened between `earlier` and `self`, in the same process.
    pub fn since(&self, earlier: &ExportCounts) -> ExportCounts {
        ExportCounts {
            ended: self.ended.saturating_sub(earlier.ended),
            exported: self.exported.saturating_sub(earlier.exported),
            failed: self.failed.saturating_sub(earlier.failed),
        }
    }

    /// The Prometheus text exposition of the counters.
    pub fn exposition(&self) -> String {
        let mut registry = Registry::with_prefix("stitch_spans");
        registry.register("ended", "Sampled spans handed to the batch processor", ConstCounter::new(self.ended));
        registry.register("exported", "Spans in batches the endpoint accepted", ConstCounter::new(self.exported));
        registry.register("export_failed", "Spans in batches whose export failed", ConstCounter::new(self.failed));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Counts every span that ends, as a processor of its own beside the batch
/// processor: the set-up [`CountingProcessor`] replaced, kept for
/// `--tracing two-processors`, which measures what that cut saves.
#[derive(Debug)]
pub(crate) struct EndedCounter;

impl SpanProcessor for EndedCounter {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, _span: SpanData) {
        ENDED.fetch_add(1, Ordering::Relaxed);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Counts every span that ends, then hands it to the batch processor it
/// wraps. One processor, not a counter beside it: with two, the SDK clones
/// every ended span once per processor (attributes, events, links and all).
#[derive(Debug)]
pub(crate) struct CountingProcessor<P>(pub(crate) P);

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        ENDED.fetch_add(1, Ordering::Relaxed);
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    // The batch processor hands the resource (`service.name`) to its exporter.
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// An exporter that counts what `inner` exported and what it failed to.
#[derive(Debug)]
pub(crate) struct CountingExporter<E>(pub(crate) E);

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let outcome = self.0.export(batch).await;
        let counter = if outcome.is_ok() { &EXPORTED } else { &FAILED };
        counter.fetch_add(spans, Ordering::Relaxed);
        outcome
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    // Without this the spans would lose `service.name`.
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_is_what_neither_went_out_nor_failed() {
        let counts = ExportCounts { ended: 100, exported: 90, failed: 4 };
        assert_eq!(counts.dropped(), 6);
        assert_eq!(counts.lost(), 10);
        assert_eq!(ExportCounts { ended: 5, exported: 5, failed: 0 }.dropped(), 0);
        let earlier = ExportCounts { ended: 40, exported: 40, failed: 0 };
        assert_eq!(counts.since(&earlier), ExportCounts { ended: 60, exported: 50, failed: 4 });
    }

    #[test]
    fn the_exposition_names_each_counter() {
        let text = ExportCounts { ended: 7, exported: 5, failed: 1 }.exposition();
        assert!(text.contains("stitch_spans_ended_total 7"), "{text}");
        assert!(text.contains("stitch_spans_exported_total 5"), "{text}");
        assert!(text.contains("stitch_spans_export_failed_total 1"), "{text}");
    }
}
