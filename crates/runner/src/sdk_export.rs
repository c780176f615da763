//! What each service's OpenTelemetry SDK did with the spans it ended, read
//! from the service's `/metrics`: exported, failed to export, or dropped
//! before export (the batch processor's queue was full). A span lost there
//! never reaches lineage, so lineage alone cannot tell it from a span that
//! was never made.

use std::net::SocketAddr;

use anyhow::Context as _;
pub use stitch_model::{ExportCounts, ServiceExport};

use crate::otelcol::Metrics;

/// Reads the counters from a `/metrics` text. A missing counter is an
/// error: a service that does not count would read as "nothing lost".
pub fn parse(text: &str) -> anyhow::Result<ExportCounts> {
    let metrics = Metrics::parse(text)?;
    let read = |name: &str| -> anyhow::Result<u64> {
        let (_, value) =
            metrics.series(name, &[]).next().with_context(|| format!("no {name} in the service's /metrics"))?;
        Ok(value as u64)
    };
    Ok(ExportCounts {
        ended: read("stitch_spans_ended_total")?,
        exported: read("stitch_spans_exported_total")?,
        failed: read("stitch_spans_export_failed_total")?,
    })
}

/// Scrapes the service that answers HTTP on `listen`.
pub fn scrape(listen: SocketAddr) -> anyhow::Result<ExportCounts> {
    let text = crate::process::http_get(&format!("http://{listen}/metrics"))?;
    parse(&text).with_context(|| format!("reading the span counters of {listen}"))
}

/// The spans every service lost before export, summed.
pub fn total_lost(services: &[ServiceExport]) -> u64 {
    services.iter().map(|service| service.counts.lost()).sum()
}

/// Spans every service lost between two scrapes of the same processes.
pub fn lost_between(before: &[ServiceExport], after: &[ServiceExport]) -> anyhow::Result<u64> {
    after
        .iter()
        .map(|now| {
            // A service the first scrape missed has no baseline: its losses
            // would count from its start, not between the scrapes.
            let earlier = before
                .iter()
                .find(|earlier| earlier.role == now.role)
                .with_context(|| format!("{} was not scraped the first time", now.role))?
                .counts;
            if now.counts.ended < earlier.ended {
                anyhow::bail!("{} restarted between the two scrapes: its counters went back", now.role);
            }
            Ok(now.counts.since(&earlier).lost())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stitch_model::Role;

    fn export(role: Role, ended: u64, exported: u64) -> ServiceExport {
        ServiceExport { role, counts: ExportCounts { ended, exported, failed: 0 } }
    }

    #[test]
    fn losses_are_counted_between_scrapes_only() {
        let before = [export(Role::Worker, 100, 90), export(Role::Consumer, 50, 50)];
        let after = [export(Role::Worker, 400, 350), export(Role::Consumer, 150, 150)];
        assert_eq!(lost_between(&before, &after).unwrap(), 40);
    }

    #[test]
    fn a_restarted_service_is_an_error_not_a_negative_loss() {
        let before = [export(Role::Worker, 100, 100)];
        let after = [export(Role::Worker, 10, 10)];
        assert!(lost_between(&before, &after).is_err());
    }

    #[test]
    fn a_service_missing_from_the_first_scrape_is_an_error_not_a_loss_from_zero() {
        let before = [export(Role::Worker, 100, 100)];
        let after = [export(Role::Worker, 200, 200), export(Role::Consumer, 50, 10)];
        let error = lost_between(&before, &after).unwrap_err();
        assert_eq!(error.to_string(), "consumer was not scraped the first time");
    }

    #[test]
    fn the_services_exposition_reads_back() {
        let counts = ExportCounts { ended: 120, exported: 100, failed: 5 };
        assert_eq!(parse(&counts.exposition()).unwrap(), counts);
    }

    #[test]
    fn a_missing_counter_is_an_error_not_zero() {
        let text = "stitch_spans_ended_total 3\nstitch_spans_exported_total 3\n";
        let err = parse(text).unwrap_err();
        assert!(format!("{err:#}").contains("stitch_spans_export_failed_total"), "{err:#}");
    }
}
