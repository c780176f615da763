//! Step 6's judge: every request crosses Envoy parent by parent, Envoy's
//! spans reach lineage connected, and the probes sent straight to Envoy show
//! what it does with a context it cannot use.

use stitch_model::stage::mesh::{MeshData, Probe, ProbeKind};

use super::{Claim, StageVerdict};

/// The hops every request must show, from the gateway's client span to the worker's server span.
pub const CHAIN: &str = "gateway:client → envoy:server → envoy:client → worker:server";

/// Judges what the mesh stage measured.
pub fn judge(data: &MeshData) -> StageVerdict {
    let mut claims = vec![Claim::new(
        format!("every request is {CHAIN}, one trace, parent by parent"),
        format!("{} of {} requests", data.chained_requests, data.requests),
        data.requests > 0 && data.not_chained.is_empty(),
    )];
    let mut notes: Vec<String> =
        data.not_chained.iter().take(3).map(|problem| format!("not chained: {problem}")).collect();

    let rate = data.envoy_orphans as f64 / data.envoy_spans.max(1) as f64;
    claims.push(Claim::new(
        "Envoy's spans reach lineage, connected (orphan rate < 1%)",
        format!("{} spans, {} orphans ({:.1}%)", data.envoy_spans, data.envoy_orphans, rate * 100.0),
        data.envoy_spans > 0 && rate < 0.01,
    ));
    notes.push(format!(
        "Envoy {} on 127.0.0.1:{} in front of the worker; its own counters: {} spans sent, {} dropped \
         (probes included)",
        data.envoy_version, data.envoy_listen_port, data.envoy_spans_sent, data.envoy_spans_dropped
    ));

    // The probes: judged here, kept out of the numbers above.
    if let Some(error) = &data.probe_error {
        claims.push(Claim::new("the probes straight to Envoy ran", error.clone(), false));
    }
    claims.push(Claim::new(
        "the probes' spans stay out of the judged numbers",
        format!("{} probe traces among them", data.probe_traces_in_judged),
        data.probe_traces_in_judged == 0,
    ));
    for probe in &data.probes {
        claims.push(probe_claim(probe));
        notes.push(format!("{} probe, `traceparent: {}`", probe.name.name(), probe.traceparent));
        if let Some(dump) = probe.dump.as_deref().filter(|dump| !dump.trim().is_empty()) {
            notes.push(dump.trim_end().to_owned());
        }
    }
    StageVerdict { claims, notes }
}

fn probe_claim(probe: &Probe) -> Claim {
    let parent = match (&probe.worker_parent, probe.worker_spans) {
        (_, 0) => "no span",
        (Some(parent), _) => parent.as_str(),
        (None, _) => "none, a new root",
    };
    let (claim, passed) = match probe.name {
        ProbeKind::Malformed => (
            "a malformed traceparent: Envoy forwards it and emits no span; the worker starts a new trace",
            probe.envoy_spans == 0 && probe.worker_parent.is_none() && probe.worker_continues_trace == Some(false),
        ),
        ProbeKind::Unsampled => (
            "an unsampled traceparent (flags 00): neither Envoy nor the worker records a span",
            probe.envoy_spans == 0 && probe.worker_spans == 0,
        ),
    };
    Claim::new(
        claim,
        format!(
            "HTTP {}; spans: envoy {}, worker {}, consumer {}; worker's parent: {parent}",
            probe.status, probe.envoy_spans, probe.worker_spans, probe.consumer_spans
        ),
        passed && (200..300).contains(&probe.status),
    )
}

#[cfg(test)]
mod tests {
    use stitch_model::fixtures::stages;

    use super::*;
    use crate::stage::testing::{all_pass, claim, only_failure};

    fn probe(data: &mut MeshData, kind: ProbeKind) -> &mut Probe {
        data.probes.iter_mut().find(|probe| probe.name == kind).expect("the probe")
    }

    #[test]
    fn envoy_in_the_chain_with_both_probes_as_expected_passes() {
        let verdict = judge(&stages::mesh());
        all_pass(&verdict);
        assert_eq!(verdict.claims.len(), 5);
        assert_eq!(
            claim(&verdict, "a malformed traceparent").measured,
            "HTTP 202; spans: envoy 0, worker 3, consumer 1; worker's parent: none, a new root"
        );
        assert_eq!(
            verdict.notes,
            [
                "Envoy 1.40.0 on 127.0.0.1:23540 in front of the worker; its own counters: 403 spans sent, 0 dropped \
                 (probes included)",
                "malformed probe, `traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331`",
                "request order.id=mesh-probe-malformed: 0 requests → 2 fragments",
                "unsampled probe, `traceparent: 00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00`",
            ]
        );
    }

    #[test]
    fn a_request_around_envoy_fails_and_is_named() {
        let mut data = stages::mesh();
        data.chained_requests = 199;
        data.not_chained = vec!["ord-7: worker:server ← gateway:client (expected envoy:client)".to_owned()];
        let verdict = judge(&data);
        assert_eq!(only_failure(&verdict, &format!("every request is {CHAIN}")), "199 of 200 requests");
        assert_eq!(verdict.notes[0], "not chained: ord-7: worker:server ← gateway:client (expected envoy:client)");
        // No request at all cannot pass.
        let mut data = stages::mesh();
        (data.chained_requests, data.requests) = (0, 0);
        only_failure(&judge(&data), "every request is");
    }

    #[test]
    fn envoy_spans_missing_or_orphaned_fail() {
        let mut data = stages::mesh();
        data.envoy_orphans = 40;
        let measured = only_failure(&judge(&data), "Envoy's spans reach lineage, connected");
        assert_eq!(measured, "400 spans, 40 orphans (10.0%)");
        let mut data = stages::mesh();
        (data.envoy_spans, data.envoy_orphans) = (0, 0);
        assert_eq!(only_failure(&judge(&data), "Envoy's spans reach lineage"), "0 spans, 0 orphans (0.0%)");
    }

    #[test]
    fn probes_that_could_not_run_or_leaked_fail() {
        let mut data = stages::mesh();
        data.probe_error = Some("sending the malformed probe to Envoy: connection refused".to_owned());
        data.probes.clear();
        let measured = only_failure(&judge(&data), "the probes straight to Envoy ran");
        assert_eq!(measured, "sending the malformed probe to Envoy: connection refused");
        let mut data = stages::mesh();
        data.probe_traces_in_judged = 2;
        assert_eq!(only_failure(&judge(&data), "the probes' spans stay out"), "2 probe traces among them");
    }

    #[test]
    fn a_malformed_traceparent_continued_or_spanned_fails() {
        let mut data = stages::mesh();
        let malformed = probe(&mut data, ProbeKind::Malformed);
        malformed.envoy_spans = 1;
        only_failure(&judge(&data), "a malformed traceparent");
        let mut data = stages::mesh();
        let malformed = probe(&mut data, ProbeKind::Malformed);
        (malformed.worker_parent, malformed.worker_continues_trace) = (Some("b7ad6b7169203331".to_owned()), Some(true));
        let measured = only_failure(&judge(&data), "a malformed traceparent");
        assert_eq!(measured, "HTTP 202; spans: envoy 0, worker 3, consumer 1; worker's parent: b7ad6b7169203331");
        let mut data = stages::mesh();
        probe(&mut data, ProbeKind::Malformed).status = 502;
        only_failure(&judge(&data), "a malformed traceparent");
    }

    #[test]
    fn an_unsampled_traceparent_that_is_recorded_fails() {
        let mut data = stages::mesh();
        let unsampled = probe(&mut data, ProbeKind::Unsampled);
        (unsampled.worker_spans, unsampled.envoy_spans) = (3, 2);
        let measured = only_failure(&judge(&data), "an unsampled traceparent (flags 00)");
        assert_eq!(measured, "HTTP 202; spans: envoy 2, worker 3, consumer 1; worker's parent: none, a new root");
    }
}
