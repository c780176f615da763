//! Step 6's judge: every request crosses Envoy parent by parent, Envoy's
//! spans reach lineage connected, and the probes sent straight to Envoy show
//! what it does with a context it cannot use. Each wrong configuration the
//! chapter names is named where it shows: no tracer (the worker continues
//! the gateway's call), one span per request (no `envoy:client`), an export
//! that fails (Envoy counts spans sent that lineage never receives).

use stitch_model::stage::mesh::{MeshData, Probe, ProbeKind, WorkerParents};

use super::{Claim, StageVerdict};

/// The hops every request must show, from the gateway's client span to the worker's server span.
pub const CHAIN: &str = "gateway:client → envoy:server → envoy:client → worker:server";

/// What the worker's parent says of Envoy's configuration, for a request
/// that is not chained.
pub const NO_TRACER: &str = "Envoy recorded no span: the worker continues the gateway's CLIENT span directly \
                             (Envoy forwards `traceparent` untouched: no `tracing` in its HTTP connection manager)";
pub const ONE_SPAN: &str = "one Envoy span per request: the chain lacks envoy:client (`spawn_upstream_span: false` \
                            records one span for the whole proxied request)";
const PARENT_NOT_RECEIVED: &str = "the worker's parent never reached lineage";
const ROOT: &str = "the worker's span is a root: it continues no trace";
const OTHER: &str = "another shape";

/// What Envoy's own counters say when none of its spans reached lineage.
pub const EXPORT_FAILS: &str = "none of the spans Envoy counted as sent reached lineage: its OTLP/gRPC export \
                                fails (gRPC needs HTTP/2: the exporter's cluster lacks `http2_protocol_options`)";
pub const NOT_FLUSHED: &str = "Envoy's tracer has sent no span yet: it flushes every 5 s unless the runtime says \
                               otherwise (`tracing.opentelemetry.flush_interval_ms`)";
const NO_TRACER_COUNTERS: &str = "Envoy lists no OpenTelemetry tracer counters: it has no tracer";

/// Judges what the mesh stage measured.
pub fn judge(data: &MeshData) -> StageVerdict {
    let mut claims = vec![Claim::new(
        format!("every request is {CHAIN}, one trace, parent by parent"),
        chain_measured(data),
        data.requests > 0 && data.not_chained.is_empty(),
    )];
    let mut notes: Vec<String> =
        data.not_chained.iter().take(3).map(|problem| format!("not chained: {problem}")).collect();

    let rate = data.envoy_orphans as f64 / data.envoy_spans.max(1) as f64;
    let mut measured = format!("{} spans, {} orphans ({:.1}%)", data.envoy_spans, data.envoy_orphans, rate * 100.0);
    if data.envoy_spans == 0 {
        let why = match data.envoy_spans_sent {
            None => NO_TRACER_COUNTERS.to_owned(),
            Some(0) => NOT_FLUSHED.to_owned(),
            Some(sent) => format!("{EXPORT_FAILS}; Envoy counted {sent} sent"),
        };
        measured = format!("{measured}; {why}");
    }
    claims.push(Claim::new(
        "Envoy's spans reach lineage, connected (orphan rate < 1%)",
        measured,
        data.envoy_spans > 0 && rate < 0.01,
    ));
    let counters = match (data.envoy_spans_sent, data.envoy_spans_dropped) {
        (Some(sent), Some(dropped)) => format!("{sent} spans sent, {dropped} dropped (probes included)"),
        _ => "no OpenTelemetry tracer".to_owned(),
    };
    notes.push(format!(
        "Envoy {} on 127.0.0.1:{} in front of the worker; its own counters: {counters}",
        data.envoy_version, data.envoy_listen_port
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

/// How many requests are chained, and what the others' worker spans hang
/// from, each shape named.
fn chain_measured(data: &MeshData) -> String {
    let WorkerParents { envoy_client: _, envoy_server, gateway_client, not_received, root, other } =
        data.worker_parents;
    let mut measured = format!("{} of {} requests", data.chained_requests, data.requests);
    for (count, shape) in [
        (gateway_client, NO_TRACER),
        (envoy_server, ONE_SPAN),
        (not_received, PARENT_NOT_RECEIVED),
        (root, ROOT),
        (other, OTHER),
    ] {
        if count > 0 {
            measured.push_str(&format!("; {count} of {}: {shape}", data.requests));
        }
    }
    measured
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
    fn envoy_spans_orphaned_fail() {
        let mut data = stages::mesh();
        data.envoy_orphans = 40;
        let measured = only_failure(&judge(&data), "Envoy's spans reach lineage, connected");
        assert_eq!(measured, "400 spans, 40 orphans (10.0%)");
    }

    /// What a run shows when no Envoy span reaches lineage and each worker's
    /// span hangs from `parents`, with Envoy's counter of spans sent.
    fn without_envoy_spans(parents: WorkerParents, spans_sent: Option<u64>) -> MeshData {
        let mut data = stages::mesh();
        (data.envoy_spans, data.envoy_orphans, data.envoy_spans_sent) = (0, 0, spans_sent);
        data.envoy_spans_dropped = spans_sent.map(|_| 0);
        data.chained_requests = 0;
        data.worker_parents = parents;
        data.not_chained = vec!["ord-0: worker:server ← gateway:client (expected envoy:client)".to_owned()];
        data
    }

    #[test]
    fn no_tracer_is_named_by_the_workers_parent_and_envoys_counters() {
        let data = without_envoy_spans(WorkerParents { gateway_client: 200, ..WorkerParents::default() }, None);
        let verdict = judge(&data);
        assert_eq!(claim(&verdict, "every request is").measured, format!("0 of 200 requests; 200 of 200: {NO_TRACER}"));
        assert_eq!(
            claim(&verdict, "Envoy's spans reach lineage").measured,
            format!("0 spans, 0 orphans (0.0%); {NO_TRACER_COUNTERS}")
        );
        assert!(verdict.notes[1].ends_with("its own counters: no OpenTelemetry tracer"), "{:?}", verdict.notes);
    }

    #[test]
    fn an_export_that_fails_is_named_by_the_spans_envoy_counted() {
        let data = without_envoy_spans(WorkerParents { not_received: 200, ..WorkerParents::default() }, Some(400));
        let verdict = judge(&data);
        assert_eq!(
            claim(&verdict, "every request is").measured,
            format!("0 of 200 requests; 200 of 200: {PARENT_NOT_RECEIVED}")
        );
        assert_eq!(
            claim(&verdict, "Envoy's spans reach lineage").measured,
            format!("0 spans, 0 orphans (0.0%); {EXPORT_FAILS}; Envoy counted 400 sent")
        );
        let data = without_envoy_spans(WorkerParents { not_received: 200, ..WorkerParents::default() }, Some(0));
        let measured = claim(&judge(&data), "Envoy's spans reach lineage").measured.clone();
        assert_eq!(measured, format!("0 spans, 0 orphans (0.0%); {NOT_FLUSHED}"));
    }

    #[test]
    fn one_span_per_request_is_named_by_the_missing_client_span() {
        let mut data = stages::mesh();
        (data.chained_requests, data.envoy_spans) = (0, 200);
        data.worker_parents = WorkerParents { envoy_server: 200, ..WorkerParents::default() };
        data.not_chained = vec!["ord-0: worker:server ← envoy:server (expected envoy:client)".to_owned()];
        let measured = only_failure(&judge(&data), "every request is");
        assert_eq!(measured, format!("0 of 200 requests; 200 of 200: {ONE_SPAN}"));
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
