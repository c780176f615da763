//! Properties of decoding and assembling: no input panics, counters are
//! consistent, and arrival order never changes the result.

mod common;
#[path = "../benches/workload/mod.rs"]
mod workload;

use common::*;
use lineage::{Config, ContentEncoding, PayloadFormat, Report, Store, decode_payload};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use proptest::prelude::*;
use prost::Message;

const SERVICES: [&str; 4] = ["gateway", "frontend", "worker", "consumer"];
const KINDS: [SpanKind; 6] = [
    SpanKind::Unspecified,
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];

#[derive(Clone, Debug)]
enum Parent {
    Root,
    /// The n-th span (modulo) of the same trace; may close a cycle or point at itself.
    Held(usize),
    Missing,
}

#[derive(Clone, Debug)]
struct Gen {
    trace: u64,
    service: usize,
    kind: usize,
    parent: Parent,
    messaging: bool,
    link: bool,
    key: Option<u8>,
}

fn span_gen() -> impl Strategy<Value = Gen> {
    (
        0..3u64,
        0..SERVICES.len(),
        0..KINDS.len(),
        prop_oneof![Just(Parent::Root), (0..64usize).prop_map(Parent::Held), Just(Parent::Missing)],
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::option::of(0..4u8),
    )
        .prop_map(|(trace, service, kind, parent, messaging, link, key)| Gen {
            trace,
            service,
            kind,
            parent,
            messaging,
            link,
            key,
        })
}

fn build(forest: &[Gen]) -> Vec<SpanSpec> {
    let ids_of = |trace: u64| -> Vec<u64> {
        forest.iter().enumerate().filter(|(_, g)| g.trace == trace).map(|(i, _)| i as u64 + 1).collect()
    };
    forest
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut spec =
                span(g.trace + 1, i as u64 + 1, SERVICES[g.service], KINDS[g.kind], "op").at(i as u64, i as u64 + 3);
            match g.parent {
                Parent::Root => {}
                Parent::Held(n) => {
                    let ids = ids_of(g.trace);
                    spec = spec.parent(ids[n % ids.len()]);
                }
                Parent::Missing => spec = spec.parent(10_000 + i as u64),
            }
            if g.messaging {
                spec = spec.attr("messaging.system", "kafka");
            }
            if g.link {
                spec = spec.link(99, 1);
            }
            if let Some(key) = g.key {
                spec = spec.order(&key.to_string());
            }
            spec
        })
        .collect()
}

fn ingest_in_batches(specs: &[SpanSpec], batch: usize) -> (Store, Report) {
    let mut store =
        Store::new(Config { entry_services: vec!["gateway".into(), "frontend".into()], ..Config::ephemeral() });
    for chunk in specs.chunks(batch.max(1)) {
        store.ingest(&request(chunk.to_vec()), BASE);
    }
    store.settle_all();
    let report = store.report();
    (store, report)
}

/// The same, through the protobuf path that reads only what lineage keeps.
fn ingest_protobuf_in_batches(specs: &[SpanSpec], batch: usize) -> (Store, Report) {
    let mut store =
        Store::new(Config { entry_services: vec!["gateway".into(), "frontend".into()], ..Config::ephemeral() });
    for chunk in specs.chunks(batch.max(1)) {
        store.ingest_protobuf(&request(chunk.to_vec()).encode_to_vec(), BASE).expect("valid protobuf");
    }
    store.settle_all();
    let report = store.report();
    (store, report)
}

fn check_invariants(report: &Report) {
    let mut total = 0;
    for s in &report.services {
        assert_eq!(s.connected + s.linked + s.orphans, s.spans, "{}", s.service);
        assert_eq!(s.causes.root_in_internal_service + s.causes.missing_parent, s.orphans);
        assert_eq!(s.boundaries.total(), s.orphans);
        assert!((0.0..=1.0).contains(&s.orphan_rate));
        total += s.spans;
    }
    assert_eq!(total, report.spans_settled);
    assert_eq!(report.spans_settled, report.spans_received);
    assert_eq!(report.boundaries.len(), 3);
    for b in &report.boundaries {
        assert!((0.0..=1.0).contains(&b.break_rate));
        assert!(b.breaks <= b.requests.max(b.breaks));
    }
    assert!((0.0..=1.0).contains(&report.orphan_rate()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn arbitrary_forests_are_consistent_and_order_independent(
        forest in prop::collection::vec(span_gen(), 1..80),
        batch in 1..12usize,
    ) {
        let specs = build(&forest);
        // Children before parents, in batches of any size.
        let mut permuted = specs.clone();
        permuted.reverse();
        permuted.rotate_left(batch % specs.len());

        let (store, report) = ingest_in_batches(&specs, specs.len());
        check_invariants(&report);
        let (wire_store, from_wire) = ingest_protobuf_in_batches(&specs, specs.len());
        prop_assert_eq!(&report, &from_wire);
        for trace in 1..=3u64 {
            prop_assert_eq!(store.trace_hex(&trace_hex(trace)), wire_store.trace_hex(&trace_hex(trace)));
        }
        let (_, in_batches) = ingest_in_batches(&permuted, batch);
        prop_assert_eq!(&report, &in_batches);

        // Views and dumps never panic and agree with the counters.
        for trace in 1..=3u64 {
            if let Some(view) = store.trace_hex(&trace_hex(trace)) {
                prop_assert_eq!(view.connected + view.linked + view.orphans, view.spans.len() as u64);
                let dump = store.trace_dump(&trace_hex(trace)).unwrap();
                prop_assert_eq!(dump.lines().count(), view.spans.len() + 1);
            }
        }
        for key in 0..4u8 {
            let _ = store.request_dump(&key.to_string());
        }
    }

    #[test]
    fn arbitrary_permutations_do_not_change_the_report(
        (forest, perm) in prop::collection::vec(span_gen(), 1..60)
            .prop_flat_map(|forest| {
                let n = forest.len();
                (Just(forest), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
            })
    ) {
        let specs = build(&forest);
        let permuted: Vec<SpanSpec> = perm.iter().map(|&i| specs[i].clone()).collect();
        let (_, a) = ingest_in_batches(&specs, 7);
        let (_, b) = ingest_in_batches(&permuted, 3);
        check_invariants(&a);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut wire_store = Store::new(Config::ephemeral());
        if wire_store.ingest_protobuf(&bytes, BASE).is_ok() {
            wire_store.settle_all();
            check_invariants(&wire_store.report());
        }
        for format in [PayloadFormat::Protobuf, PayloadFormat::Json] {
            for encoding in [ContentEncoding::Identity, ContentEncoding::Gzip] {
                if let Ok(request) = decode_payload(&bytes, format, encoding, 1 << 20) {
                    let mut store = Store::new(Config::ephemeral());
                    store.ingest(&request, BASE);
                    store.settle_all();
                    let _ = store.report();
                }
            }
        }
    }

    #[test]
    fn corrupted_requests_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = request(connected_chain(1, 0, "7")).encode_to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1).max(1));
        let mut wire_store = Store::new(Config::ephemeral());
        let from_wire = wire_store.ingest_protobuf(&bytes, BASE);
        if let Ok(request) = decode_payload(&bytes, PayloadFormat::Protobuf, ContentEncoding::Identity, 1 << 20) {
            let mut store = Store::new(Config::ephemeral());
            let outcome = store.ingest(&request, BASE);
            // Whatever a full decode accepts, the fast path reads the same way.
            prop_assert_eq!(from_wire, Ok(outcome));
            wire_store.settle_all();
            store.settle_all();
            let report = store.report();
            prop_assert_eq!(&report, &wire_store.report());
            check_invariants(&report);
            for trace in store.report().held.traces.min(1)..=1 {
                let _ = store.trace_dump(&trace_hex(trace));
            }
        }
    }
}

#[test]
fn protobuf_path_reads_realistic_batches_like_a_full_decode() {
    let config = Config { entry_services: vec!["gateway".into()], ..Config::ephemeral() };
    let (mut full, mut wire) = (Store::new(config.clone()), Store::new(config));
    for b in 0..4 {
        let batch = workload::batch(b);
        let outcome = full.ingest(&batch, BASE);
        assert_eq!(wire.ingest_protobuf(&batch.encode_to_vec(), BASE), Ok(outcome));
    }
    full.settle_all();
    wire.settle_all();
    let report = full.report();
    assert_eq!(report.spans_settled, 4 * workload::SPANS_PER_BATCH as u64);
    assert!(report.orphans() > 0 && report.requests > 0);
    assert_eq!(report, wire.report());
}

#[test]
fn protobuf_path_reads_int_keys_links_and_status() {
    let spans = vec![
        server(1, 1, "gateway", "POST /orders").attr_int("order.id", 42),
        consumer(2, 1, "consumer", "process").link(1, 1).attr("messaging.system", "kafka"),
        internal(3, 1, "worker", "job").order("42").error(),
    ];
    let bytes = request(spans.clone()).encode_to_vec();
    let mut full = Store::new(Config::ephemeral());
    let mut wire = Store::new(Config::ephemeral());
    full.ingest(&request(spans), BASE);
    wire.ingest_protobuf(&bytes, BASE).unwrap();
    full.settle_all();
    wire.settle_all();
    assert_eq!(full.report(), wire.report());
    assert_eq!(wire.report().boundary(lineage::Boundary::Async).breaks, 1);
    for trace in 1..=3 {
        assert_eq!(full.trace_hex(&trace_hex(trace)), wire.trace_hex(&trace_hex(trace)));
    }
    let err = wire.ingest_protobuf(&bytes[..bytes.len() - 3], BASE).unwrap_err();
    assert_eq!(err.reason(), lineage::RejectReason::Malformed);
    assert!(err.to_string().starts_with("malformed OTLP protobuf: "), "{err}");
}
