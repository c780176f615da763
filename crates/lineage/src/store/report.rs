//! Turns the store's counters into a [`Report`]: one row per service and per boundary.

use std::collections::BTreeMap;

use crate::ingest::INVALID_ID;
use crate::model::{Boundary, Cause};
use crate::report::{
    BoundaryCounts, BoundaryReport, CauseCounts, CompletenessReport, Held, Report, ServiceReport, ratio, round_ms,
};
use crate::store::Store;

impl Store {
    pub fn report(&self) -> Report {
        let tally = &self.tally;
        let mut services: Vec<ServiceReport> = tally
            .services
            .iter()
            .enumerate()
            .filter(|(_, c)| c.spans > 0)
            .map(|(id, c)| ServiceReport {
                service: self.services.get(id as u32).to_owned(),
                spans: c.spans,
                connected: c.connected,
                linked: c.linked,
                orphans: c.orphans,
                orphan_rate: ratio(c.orphans, c.spans),
                causes: CauseCounts {
                    root_in_internal_service: c.orphans_by[Cause::RootInInternalService.index()].iter().sum(),
                    missing_parent: c.orphans_by[Cause::MissingParent.index()].iter().sum(),
                },
                boundaries: BoundaryCounts::from_array(std::array::from_fn(|b| {
                    c.orphans_by[0][b] + c.orphans_by[1][b]
                })),
            })
            .collect();
        services.sort_by(|a, b| a.service.cmp(&b.service));
        let boundaries = Boundary::ALL
            .iter()
            .map(|&b| BoundaryReport {
                boundary: b,
                breaks: tally.breaks[b.index()],
                requests: tally.requests,
                break_rate: ratio(tally.breaks[b.index()], tally.requests),
            })
            .collect();
        let completeness = &tally.completeness;
        Report {
            entry_services: self.config.entry_services.clone(),
            business_key: self.config.business_key.clone(),
            spans_received: tally.spans_received,
            spans_settled: tally.spans_settled,
            traces_settled: tally.traces_settled,
            traces_open: self.open_traces() as u64,
            requests: tally.requests,
            services,
            boundaries,
            unattributed_breaks: BoundaryCounts::from_array(tally.unattributed),
            request_root_missing: BoundaryCounts::from_array(tally.request_root_missing()),
            completeness: CompletenessReport {
                count: completeness.count,
                p50_ms: round_ms(completeness.percentile_ms(0.5)),
                p99_ms: round_ms(completeness.percentile_ms(0.99)),
                max_ms: round_ms(completeness.max_ms()),
            },
            late_spans: tally.late_spans,
            duplicate_spans: tally.duplicate_spans,
            evictions: tally.evictions,
            rejected: tally.rejected_payloads.iter().map(|(reason, &n)| (reason.as_str().to_owned(), n)).collect(),
            rejected_spans: if tally.rejected_spans > 0 {
                BTreeMap::from([(INVALID_ID.to_owned(), tally.rejected_spans)])
            } else {
                BTreeMap::new()
            },
            held: Held { traces: self.traces.len() as u64, spans: self.spans_held },
        }
    }
}
