//! Every class of span on the synchronous core, with time under test control.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lineage::{Boundary, Cause, Config, LineageStatus, Report, Store};

fn store() -> Store {
    Store::new(Config::ephemeral())
}

fn settle(store: &mut Store) -> Report {
    store.settle_all();
    store.report()
}

/// (name, status, cause, boundary, is_break) per span, in tree order.
type Row = (String, LineageStatus, Option<Cause>, Option<Boundary>, bool);

fn statuses(store: &Store, trace: u64) -> Vec<Row> {
    let view = store.trace_hex(&trace_hex(trace)).expect("trace held");
    view.spans.iter().map(|s| (s.name.clone(), s.status, s.cause, s.boundary, s.is_break)).collect()
}

#[test]
fn connected_chain_has_no_orphans() {
    let mut store = store();
    let outcome = store.ingest(&request(connected_chain(1, 0, "1001")), BASE);
    assert_eq!(outcome.accepted, 6);
    let report = settle(&mut store);
    assert_eq!(report.spans_settled, 6);
    assert_eq!(report.requests, 1);
    assert_eq!(report.orphans(), 0);
    assert_eq!(report.traces_settled, 1);
    for s in &report.services {
        assert_eq!(s.connected, s.spans, "{}", s.service);
        assert_eq!(s.orphan_rate, 0.0);
    }
    assert_eq!(report.service("worker").unwrap().spans, 3);
    assert_eq!(report.service("consumer").unwrap().spans, 1);
    assert!(report.boundaries.iter().all(|b| b.breaks == 0 && b.requests == 1));
    assert_eq!(report.completeness.count, 1);
}

#[test]
fn roots_in_internal_services_break_at_their_boundary() {
    let mut store = store();
    let spans = vec![
        // http: a SERVER root in worker, with a child.
        server(10, 1, "worker", "POST /work"),
        internal(10, 2, "worker", "price").parent(1),
        // async: an INTERNAL root.
        internal(11, 1, "worker", "background job"),
        // messaging: a CONSUMER root.
        consumer(12, 1, "consumer", "orders process"),
        internal(12, 2, "consumer", "store").parent(1),
        // messaging: an INTERNAL root with a messaging.* attribute.
        internal(13, 1, "consumer", "poll").attr("messaging.system", "kafka"),
    ];
    store.ingest(&request(spans), BASE);
    let report = settle(&mut store);
    assert_eq!(report.requests, 0);
    let worker = report.service("worker").unwrap();
    assert_eq!((worker.spans, worker.orphans), (3, 3));
    assert_eq!(worker.causes.root_in_internal_service, 3);
    assert_eq!((worker.boundaries.http, worker.boundaries.async_, worker.boundaries.messaging), (2, 1, 0));
    assert_eq!(worker.orphan_rate, 1.0);
    let consumer = report.service("consumer").unwrap();
    assert_eq!((consumer.orphans, consumer.boundaries.messaging), (3, 3));
    // Fragments without a business key are unattributed breaks.
    assert_eq!(report.unattributed_breaks.http, 1);
    assert_eq!(report.unattributed_breaks.async_, 1);
    assert_eq!(report.unattributed_breaks.messaging, 2);

    let http = statuses(&store, 10);
    assert_eq!(
        http[0],
        ("POST /work".into(), LineageStatus::Orphan, Some(Cause::RootInInternalService), Some(Boundary::Http), true)
    );
    assert_eq!(
        http[1],
        ("price".into(), LineageStatus::Orphan, Some(Cause::RootInInternalService), Some(Boundary::Http), false)
    );
    assert_eq!(statuses(&store, 11)[0].3, Some(Boundary::Async));
    assert_eq!(statuses(&store, 12)[0].3, Some(Boundary::Messaging));
    assert_eq!(statuses(&store, 13)[0].3, Some(Boundary::Messaging));
}

#[test]
fn missing_parent_is_attributed_to_the_break_span() {
    let mut store = store();
    let spans = vec![
        server(1, 1, "gateway", "GET /").order("7"),
        // Its parent 99 never arrives: dropped by an exporter.
        server(1, 2, "worker", "GET /work").parent(99),
        internal(1, 3, "worker", "db").parent(2),
        client(1, 4, "worker", "call").parent(3),
    ];
    store.ingest(&request(spans), BASE);
    let report = settle(&mut store);
    let worker = report.service("worker").unwrap();
    assert_eq!(worker.orphans, 3);
    assert_eq!(worker.causes.missing_parent, 3);
    assert_eq!(worker.boundaries.http, 3);
    assert_eq!(report.service("gateway").unwrap().connected, 1);
    assert_eq!(report.requests, 1);
    let rows = statuses(&store, 1);
    let broken: Vec<_> = rows.iter().filter(|r| r.4).collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].0, "GET /work");
    assert_eq!(broken[0].2, Some(Cause::MissingParent));
    // No key on the broken fragment, but it is in the request's trace: the request broke at http.
    assert_eq!(report.boundary(Boundary::Http).breaks, 1);
    assert_eq!(report.unattributed_breaks.total(), 0);
}

#[test]
fn missing_parent_without_key_breaks_its_traces_request() {
    let mut store = store();
    // Trace 1: the request carries key 7; a worker fragment lost its parent
    // and carries no key at all. Trace 2: a request without any key, two
    // fragments breaking at async: one break for that request.
    let spans = vec![
        server(1, 1, "gateway", "POST /orders").order("7"),
        client(1, 2, "gateway", "POST /work").parent(1),
        server(1, 3, "worker", "POST /work").parent(98),
        internal(1, 4, "worker", "price").parent(3),
        server(2, 1, "gateway", "POST /orders"),
        internal(2, 2, "worker", "job").parent(97),
        internal(2, 3, "worker", "job again").parent(96),
    ];
    store.ingest(&request(spans), BASE);
    let report = settle(&mut store);
    assert_eq!(report.requests, 2);
    let http = report.boundary(Boundary::Http);
    assert_eq!((http.breaks, http.break_rate), (1, 0.5));
    assert_eq!(report.boundary(Boundary::Async).breaks, 1);
    assert_eq!(report.boundary(Boundary::Messaging).breaks, 0);
    assert_eq!(report.unattributed_breaks.total(), 0);
    assert_eq!(report.request_root_missing.total(), 0);
    // A fragment that arrives after its trace settled still breaks that request, once.
    store.ingest(&request(vec![consumer(2, 4, "consumer", "process").parent(95)]), BASE + 10_000 * MS);
    store.ingest(&request(vec![consumer(2, 5, "consumer", "retry").parent(94)]), BASE + 11_000 * MS);
    let report = store.report();
    assert_eq!(report.boundary(Boundary::Messaging).breaks, 1);
    assert_eq!(report.unattributed_breaks.total(), 0);
}

#[test]
fn keyed_fragment_without_its_request_is_counted_root_missing() {
    let mut store = store();
    // Order 8's entry root never arrives: its worker fragment (a missing
    // parent in trace 1) and its consumer fragment (its own trace) remain.
    let spans = vec![
        server(1, 2, "worker", "POST /work").parent(1).order("8"),
        consumer(2, 1, "consumer", "process").order("8"),
        consumer(3, 1, "consumer", "process").order("8"),
        // No key and no request: unattributed.
        internal(4, 1, "worker", "job"),
    ];
    store.ingest(&request(spans), BASE);
    let report = settle(&mut store);
    assert_eq!(report.requests, 0);
    assert!(report.boundaries.iter().all(|b| b.breaks == 0));
    let missing = report.request_root_missing;
    assert_eq!((missing.http, missing.async_, missing.messaging), (1, 0, 1), "each (key, boundary) once");
    assert_eq!(report.unattributed_breaks.async_, 1);
    let metrics = lineage::render_metrics(&store);
    assert!(metrics.contains("lineage_request_root_missing{boundary=\"messaging\"} 1"), "{metrics}");

    // The request arrives late in a trace of its own: the pairs become its breaks.
    store.ingest(&request(vec![server(5, 1, "gateway", "POST /orders").order("8")]), BASE + MS);
    let report = settle(&mut store);
    assert_eq!(report.requests, 1);
    assert_eq!(report.boundary(Boundary::Http).breaks, 1);
    assert_eq!(report.boundary(Boundary::Messaging).breaks, 1);
    assert_eq!(report.request_root_missing.total(), 0);
}

#[test]
fn root_missing_breaks_stay_counted_after_eviction() {
    let mut store = Store::new(Config { max_traces: 1, ..Config::ephemeral() });
    store.ingest(&request(vec![server(1, 2, "worker", "POST /work").parent(1).order("9")]), BASE);
    store.settle_all();
    // Evicts trace 1 and with it the only trace holding key 9.
    store.ingest(&request(vec![internal(2, 1, "gateway", "tick")]), BASE + MS);
    let report = store.report();
    assert_eq!(report.evictions.settled, 1);
    assert!(store.request("9").is_none());
    assert_eq!(report.request_root_missing.http, 1);
}

#[test]
fn linked_root_and_descendants_are_not_orphans() {
    let mut store = store();
    let mut spans = connected_chain(1, 0, "1");
    spans.truncate(5);
    spans.push(consumer(2, 10, "consumer", "orders process").link(1, 5).attr("messaging.system", "kafka"));
    spans.push(internal(2, 11, "consumer", "store").parent(10));
    store.ingest(&request(spans), BASE);
    let report = settle(&mut store);
    let consumer = report.service("consumer").unwrap();
    assert_eq!((consumer.spans, consumer.linked, consumer.orphans), (2, 2, 0));
    assert_eq!(report.orphans(), 0);
    assert_eq!(report.linked(), 2);
    let view = store.trace_hex(&trace_hex(2)).unwrap();
    assert_eq!(view.fragments.len(), 1);
    assert_eq!(view.fragments[0].status, LineageStatus::Linked);
    assert_eq!(view.spans[0].links.len(), 1);
    assert!(store.trace_dump(&trace_hex(2)).unwrap().contains("⇢ LINKED"));
}

#[test]
fn late_spans_are_counted_once_without_recounting() {
    let mut store = store();
    store.ingest(&request(vec![server(1, 1, "gateway", "GET /"), client(1, 2, "gateway", "call").parent(1)]), BASE);
    let before = settle(&mut store);
    assert_eq!(before.spans_settled, 2);
    let outcome = store.ingest(
        &request(vec![
            server(1, 3, "worker", "GET /work").parent(2),
            // A late orphan in the same trace.
            internal(1, 4, "worker", "retry").parent(77),
        ]),
        BASE + 5_000 * MS,
    );
    assert_eq!(outcome.late, 2);
    let after = store.report();
    assert_eq!(after.late_spans, 2);
    assert_eq!(after.spans_settled, 4);
    assert_eq!(after.traces_settled, 1);
    assert_eq!(after.requests, 1);
    let worker = after.service("worker").unwrap();
    assert_eq!((worker.spans, worker.connected, worker.orphans), (2, 1, 1));
    assert_eq!(after.service("gateway").unwrap().spans, 2);
    // Settling again changes nothing.
    assert_eq!(settle(&mut store), after);
}

#[test]
fn duplicate_spans_are_kept_once() {
    let mut store = store();
    let chain = connected_chain(1, 0, "1");
    let mut twice = chain.clone();
    twice.push(chain[2].clone());
    let outcome = store.ingest(&request(twice), BASE);
    assert_eq!((outcome.accepted, outcome.duplicates), (6, 1));
    store.ingest(&request(chain.clone()), BASE + MS);
    let report = settle(&mut store);
    assert_eq!(report.duplicate_spans, 7);
    assert_eq!(report.spans_received, 6);
    assert_eq!(report.spans_settled, 6);
    // A duplicate after settling is a duplicate, not a late span.
    store.ingest(&request(vec![chain[0].clone()]), BASE + 10_000 * MS);
    let report = store.report();
    assert_eq!((report.duplicate_spans, report.late_spans, report.spans_settled), (8, 0, 6));
}

#[test]
fn child_before_parent_is_connected() {
    let mut store = store();
    let chain = connected_chain(1, 0, "1");
    let reversed: Vec<_> = chain.iter().rev().cloned().collect();
    for (i, spec) in reversed.into_iter().enumerate() {
        store.ingest(&request(vec![spec]), BASE + i as u64 * MS);
    }
    let report = settle(&mut store);
    assert_eq!(report.orphans(), 0);
    assert_eq!(report.requests, 1);
}

#[test]
fn parent_cycles_are_missing_parents_and_terminate() {
    let mut store = store();
    store.ingest(
        &request(vec![
            internal(1, 1, "worker", "a").parent(2),
            internal(1, 2, "worker", "b").parent(1),
            internal(1, 3, "worker", "c").parent(3),
            internal(1, 4, "worker", "d").parent(1),
        ]),
        BASE,
    );
    let report = settle(&mut store);
    let worker = report.service("worker").unwrap();
    assert_eq!((worker.orphans, worker.causes.missing_parent), (4, 4));
    let view = store.trace_hex(&trace_hex(1)).unwrap();
    assert_eq!(view.spans.len(), 4);
    assert_eq!(view.spans.iter().filter(|s| s.is_break).count(), 2);
}

fn deep_chain(trace: u64, n: u64) -> Vec<SpanSpec> {
    let mut spans = vec![server(trace, 1, "gateway", "GET /deep")];
    for i in 2..=n {
        spans.push(internal(trace, i, if i % 2 == 0 { "worker" } else { "gateway" }, "step").parent(i - 1));
    }
    spans
}

#[test]
fn ten_thousand_span_traces_deep_and_wide_are_fast() {
    let mut store = store();
    let n = 10_000;
    // Deep: a chain 10 000 spans long, delivered leaf first.
    let mut deep = deep_chain(1, n);
    deep.reverse();
    // Wide: one root with 9 999 children.
    let mut wide = vec![server(2, 1, "gateway", "GET /wide")];
    wide.extend((2..=n).map(|i| internal(2, i, "worker", "fan out").parent(1)));
    let started = Instant::now();
    store.ingest(&request(deep), BASE);
    store.ingest(&request(wide), BASE);
    let report = settle(&mut store);
    let view = store.trace_hex(&trace_hex(1)).unwrap();
    let dump = store.trace_dump(&trace_hex(1)).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.spans_settled, 2 * n);
    assert_eq!(report.orphans(), 0);
    assert_eq!(view.spans.last().unwrap().depth, (n - 1) as u32);
    assert_eq!(dump.lines().count(), n as usize + 1);
    // Deep spans stop indenting, so the dump stays small.
    assert!(dump.len() < 200 * n as usize, "dump is {} bytes", dump.len());
    // The flat tree round-trips through JSON without recursion limits.
    let json = serde_json::to_string(&view).unwrap();
    let back: lineage::TraceView = serde_json::from_str(&json).unwrap();
    assert_eq!(back.spans.len(), n as usize);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn two_entry_services() {
    let mut store =
        Store::new(Config { entry_services: vec!["gateway".into(), "frontend".into()], ..Config::ephemeral() });
    store.ingest(
        &request(vec![
            server(1, 1, "gateway", "GET /"),
            server(2, 1, "frontend", "GET /page"),
            client(2, 2, "frontend", "fetch").parent(1),
            server(3, 1, "worker", "GET /work"),
        ]),
        BASE,
    );
    let report = settle(&mut store);
    assert_eq!(report.entry_services, vec!["gateway", "frontend"]);
    assert_eq!(report.requests, 2);
    assert_eq!(report.service("frontend").unwrap().connected, 2);
    assert_eq!(report.service("worker").unwrap().orphans, 1);
}

/// One order whose context is lost at every boundary: 4 traces instead of 1.
fn shattered(key: &str, base_trace: u64) -> Vec<SpanSpec> {
    let t = base_trace;
    vec![
        server(t, 1, "gateway", "POST /orders").at(0, 30).order(key),
        client(t, 2, "gateway", "POST /work").parent(1).at(2, 25),
        // http: the worker did not extract the context.
        server(t + 1, 3, "worker", "POST /work").at(3, 24).order(key),
        client(t + 1, 4, "worker", "publish").parent(3).at(5, 6),
        // async: a spawned task lost it.
        internal(t + 2, 5, "worker", "price in background").at(8, 20).order(key),
        // messaging: the consumer did not extract it from the headers.
        consumer(t + 3, 6, "consumer", "orders process").at(40, 60).order(key),
        internal(t + 3, 7, "consumer", "store").parent(6).at(41, 55),
    ]
}

#[test]
fn shattered_request_is_regrouped_by_business_key() {
    let mut store = store();
    store.ingest(&request(shattered("1001", 100)), BASE);
    let mut intact = connected_chain(200, 0, "1002");
    intact.truncate(4);
    store.ingest(&request(intact), BASE);
    let report = settle(&mut store);
    assert_eq!(report.requests, 2);
    for boundary in Boundary::ALL {
        let b = report.boundary(boundary);
        assert_eq!((b.breaks, b.requests, b.break_rate), (1, 2, 0.5), "{boundary}");
    }
    assert_eq!(report.unattributed_breaks.total(), 0);

    let request = store.request("1001").unwrap();
    assert_eq!(request.traces.len(), 4);
    assert_eq!((request.requests, request.fragments.len()), (1, 4));
    let tops: Vec<(&str, Option<Boundary>)> =
        request.fragments.iter().map(|f| (f.service.as_str(), f.boundary)).collect();
    assert_eq!(
        tops,
        [
            ("gateway", None),
            ("worker", Some(Boundary::Http)),
            ("worker", Some(Boundary::Async)),
            ("consumer", Some(Boundary::Messaging))
        ]
    );
    assert_eq!(request.fragments[1].trace_id, trace_hex(101));
    assert_eq!(request.breaks, vec![Boundary::Http, Boundary::Async, Boundary::Messaging]);
    assert_eq!(request.summary, "1 request → 4 fragments, 3 breaks: http, async, messaging");
    let dump = store.request_dump("1001").unwrap();
    assert!(dump.starts_with("request order.id=1001: 1 request → 4 fragments"), "{dump}");
    assert!(dump.contains("✗ BREAK root-in-internal-service/http"), "{dump}");
    assert!(dump.contains("✗ BREAK root-in-internal-service/async"), "{dump}");
    assert!(dump.contains("✗ BREAK root-in-internal-service/messaging"), "{dump}");
    assert!(dump.contains("· orphan"), "{dump}");

    let fixed = store.request("1002").unwrap();
    assert_eq!(fixed.summary, "1 request → 1 fragment, 0 breaks");
    assert!(store.request("nope").is_none());
    assert!(store.request_traces("nope").is_empty());
}

#[test]
fn breaks_count_each_key_and_boundary_once_and_cap_at_one() {
    let mut store = store();
    let mut spans = vec![server(1, 1, "gateway", "POST /orders").order("5")];
    // Three http fragments for the same key: still one http break.
    for t in 2..5 {
        spans.push(server(t, 1, "worker", "POST /work").order("5"));
    }
    // An int business key is the same key as its decimal string.
    spans.push(internal(9, 1, "worker", "job").attr_int("order.id", 5));
    store.ingest(&request(spans), BASE);
    let report = settle(&mut store);
    assert_eq!(report.requests, 1);
    assert_eq!(report.boundary(Boundary::Http).breaks, 1);
    assert_eq!(report.boundary(Boundary::Http).break_rate, 1.0);
    assert_eq!(report.boundary(Boundary::Async).breaks, 1);
    assert_eq!(store.request("5").unwrap().traces.len(), 5);
}

#[test]
fn break_before_its_request_settles_is_still_counted() {
    let mut store = store();
    store.ingest(&request(vec![server(2, 1, "worker", "POST /work").order("9")]), BASE);
    assert_eq!(store.settle_all(), 1);
    assert_eq!(store.report().boundary(Boundary::Http).breaks, 0);
    store.ingest(&request(vec![server(1, 1, "gateway", "POST /orders").order("9")]), BASE + MS);
    let report = settle(&mut store);
    assert_eq!(report.boundary(Boundary::Http).breaks, 1);
}

#[test]
fn completeness_latency_runs_from_root_end_to_last_connected_arrival() {
    let mut store = store();
    // The root ends at BASE + 50 ms; its last connected span arrives 250 ms later.
    let chain = connected_chain(1, 0, "1");
    store.ingest(&request(chain[..3].to_vec()), BASE + 60 * MS);
    store.ingest(&request(chain[3..].to_vec()), BASE + 300 * MS);
    // An orphan arriving later does not count: it is not connected.
    store.ingest(&request(vec![internal(1, 50, "worker", "lost").parent(404)]), BASE + 900 * MS);
    let report = settle(&mut store);
    let c = &report.completeness;
    assert_eq!(c.count, 1);
    assert!((c.max_ms - 250.0).abs() < 0.01, "{c:?}");
    assert!((c.p50_ms - 250.0).abs() / 250.0 < 0.02, "{c:?}");

    // Spans that arrive before the root ended clamp to zero.
    let mut store = Store::new(Config::ephemeral());
    store.ingest(&request(connected_chain(2, 0, "2")), BASE);
    assert_eq!(settle(&mut store).completeness.max_ms, 0.0);
}

#[test]
fn traces_settle_after_quiet_period_or_max_age() {
    let mut store = Store::new(Config {
        quiet_period: Duration::from_secs(2),
        max_age: Duration::from_secs(30),
        ..Config::ephemeral()
    });
    let s = 1_000 * MS;
    store.ingest(&request(vec![server(1, 1, "gateway", "a")]), BASE);
    assert_eq!(store.settle_due(BASE + s), 0);
    store.ingest(&request(vec![client(1, 2, "gateway", "b").parent(1)]), BASE + s);
    assert_eq!(store.settle_due(BASE + 2 * s + s / 2), 0, "quiet period restarts with each span");
    assert_eq!(store.settle_due(BASE + 3 * s), 1);
    assert_eq!(store.report().traces_open, 0);

    // A trace that never goes quiet settles at max age.
    for i in 0..40u64 {
        store.ingest(&request(vec![internal(2, i + 1, "gateway", "tick")]), BASE + i * s);
        let settled = store.settle_due(BASE + i * s);
        assert_eq!(settled, usize::from(i == 30), "at {i} s");
    }
    assert_eq!(store.report().late_spans, 9);
}

#[test]
fn an_old_busy_trace_does_not_hide_the_due_ones_behind_it() {
    let mut store = Store::new(Config {
        quiet_period: Duration::from_secs(2),
        max_age: Duration::from_secs(30),
        ..Config::ephemeral()
    });
    let s = 1_000 * MS;
    // Trace 1 arrives first and stays busy; traces 2..=4 arrive after it, one
    // second apart, and go quiet; trace 5 is young.
    store.ingest(&request(vec![server(1, 1, "gateway", "busy")]), BASE);
    for trace in 2..=4u64 {
        store.ingest(&request(vec![server(trace, 1, "gateway", "quiet")]), BASE + (trace - 1) * s);
    }
    store.ingest(&request(vec![internal(1, 2, "gateway", "tick").parent(1)]), BASE + 4 * s);
    store.ingest(&request(vec![server(5, 1, "gateway", "young")]), BASE + 5 * s);
    // At 5.5 s: 2, 3 and 4 are quiet for 2 s or more, 1 for 1.5 s, 5 is young.
    assert_eq!(store.settle_due(BASE + 5 * s + s / 2), 3);
    assert_eq!(store.report().traces_open, 2);
    assert_eq!(store.settle_due(BASE + 6 * s), 1, "1 once quiet");
    assert_eq!(store.settle_due(BASE + 7 * s), 1, "5 once quiet");
    assert_eq!(store.report().traces_open, 0);
    assert_eq!(store.report().spans_settled, 6);
}

#[test]
fn eviction_prefers_settled_traces_and_force_settles_otherwise() {
    let mut store = Store::new(Config { max_traces: 2, ..Config::ephemeral() });
    store.ingest(&request(vec![server(1, 1, "gateway", "a").order("k1")]), BASE);
    store.ingest(&request(vec![server(2, 1, "worker", "b").order("k1")]), BASE + 1);
    store.settle_all();
    store.ingest(&request(vec![server(3, 1, "gateway", "c")]), BASE + 2);
    let report = store.report();
    assert_eq!(report.evictions.settled, 1);
    assert_eq!(report.held.traces, 2);
    assert!(store.trace_hex(&trace_hex(1)).is_none());
    assert_eq!(store.request("k1").unwrap().traces.len(), 1);

    // Trace 3 is open and trace 2 settled: 2 goes first, then 3 is force-settled.
    store.ingest(&request(vec![server(4, 1, "gateway", "d")]), BASE + 3);
    store.ingest(&request(vec![server(5, 1, "gateway", "e")]), BASE + 4);
    let report = store.report();
    assert_eq!(report.evictions, lineage::Evictions { settled: 2, unsettled: 1 });
    assert_eq!(report.requests, 2, "the force-settled trace was counted");
    assert!(store.request("k1").is_none(), "the key index follows evictions");
    assert_eq!(report.held.traces, 2);

    let mut store = Store::new(Config { max_spans: 10, ..Config::ephemeral() });
    for t in 0..10 {
        store.ingest(&request(connected_chain(t, 0, "x")), BASE + t);
        assert!(store.held_spans() <= 10);
    }
    let report = settle(&mut store);
    assert_eq!(report.spans_settled, 60, "evicted spans were counted before leaving");
    assert_eq!(report.spans_received, 60);
}

#[test]
fn invalid_ids_reject_single_spans() {
    let mut store = store();
    let mut empty_trace = server(1, 5, "gateway", "bad");
    empty_trace.span.trace_id.clear();
    let mut zero_span = server(1, 6, "gateway", "bad");
    zero_span.span.span_id = vec![0; 8];
    let mut zero_trace = server(1, 7, "gateway", "bad");
    zero_trace.span.trace_id = vec![0; 16];
    let mut short_parent = server(1, 8, "gateway", "bad");
    short_parent.span.parent_span_id = vec![1, 2, 3];
    let good = server(1, 1, "gateway", "good");
    let outcome = store.ingest(&request(vec![empty_trace, good, zero_span, zero_trace, short_parent]), BASE);
    assert_eq!((outcome.accepted, outcome.rejected), (1, 4));
    let response = outcome.response();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 4);
    assert!(partial.error_message.contains("invalid-id"), "{}", partial.error_message);
    let report = settle(&mut store);
    assert_eq!(report.rejected_spans.get("invalid-id"), Some(&4));
    assert_eq!(report.spans_settled, 1);
}

#[test]
fn reset_forgets_everything() {
    let mut store = store();
    store.ingest(&request(shattered("1", 1)), BASE);
    store.settle_all();
    store.record_rejected_payload(lineage::RejectReason::Malformed);
    store.reset();
    let report = store.report();
    assert_eq!(report, Store::new(Config::ephemeral()).report());
    assert!(store.request("1").is_none());
}

#[test]
fn metrics_exposition_names_every_family() {
    let mut store = store();
    store.ingest(&request(shattered("1", 1)), BASE);
    store.settle_all();
    store.record_rejected_payload(lineage::RejectReason::TooLarge);
    let text = lineage::render_metrics(&store);
    for name in [
        "lineage_spans_total{service=\"worker\"} 3",
        "lineage_orphan_spans_total{service=\"worker\",cause=\"root-in-internal-service\",boundary=\"http\"} 2",
        "lineage_linked_spans_total{service=\"worker\"} 0",
        "lineage_orphan_rate{service=\"gateway\"} 0",
        "lineage_requests_total 1",
        "lineage_boundary_breaks_total{boundary=\"messaging\"} 1",
        "lineage_completeness_seconds_bucket{le=\"0.01\"}",
        "lineage_completeness_seconds_count 1",
        "lineage_traces_held 4",
        "lineage_spans_held 7",
        "lineage_evictions_total{state=\"unsettled\"} 0",
        "lineage_late_spans_total 0",
        "lineage_duplicate_spans_total 0",
        "lineage_rejected_payloads_total{reason=\"too-large\"} 1",
        "lineage_rejected_spans_total{reason=\"invalid-id\"} 0",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

#[test]
fn views_carry_the_tree() {
    let mut store = store();
    store.ingest(&request(connected_chain(1, 0, "42")), BASE);
    let open = store.trace_hex(&trace_hex(1)).unwrap();
    assert!(!open.settled);
    store.settle_all();
    let view = store.trace_hex(&trace_hex(1)).unwrap();
    assert!(view.settled);
    assert_eq!(view.business_keys, vec!["42"]);
    assert_eq!(view.spans[0].name, "POST /orders");
    assert_eq!(view.spans[0].depth, 0);
    assert_eq!(view.spans[0].children.len(), 1);
    let consumer = view.spans.iter().find(|s| s.service == "consumer").unwrap();
    assert_eq!(consumer.depth, 4);
    assert_eq!(consumer.kind, "consumer");
    assert_eq!(view.spans[consumer.parent.unwrap()].name, "orders publish");
    assert_eq!(view.spans[0].duration_ms, 50.0);
    assert_eq!(view.fragments.len(), 1);
    assert!(view.fragments[0].is_request);
    let dump = store.trace_dump(&trace_hex(1)).unwrap();
    let first = dump.lines().nth(1).unwrap();
    assert!(first.starts_with("  gateway SERVER POST /orders"), "{dump}");
    assert!(dump.lines().nth(6).unwrap().starts_with("          consumer CONSUMER"), "{dump}");
    assert!(!dump.contains("BREAK"));
    assert!(store.trace_dump("not-a-trace-id").is_none());
    assert!(store.trace_dump(&trace_hex(999)).is_none());
}

#[test]
fn a_key_shared_by_many_traces_follows_evictions() {
    let mut store = Store::new(Config { max_traces: 100, ..Config::ephemeral() });
    for t in 1..=5_000u64 {
        store.ingest(&request(vec![internal(t, 1, "worker", "tick").order("everywhere")]), BASE + t);
        store.settle_due(BASE + t + 3_000 * MS);
    }
    let report = store.report();
    assert_eq!(report.held.traces, 100);
    assert_eq!(report.evictions.settled + report.evictions.unsettled, 4_900);
    assert_eq!(store.request_traces("everywhere").len(), 100, "the index holds exactly the held traces");
    // One (key, boundary) pair without a request, however many traces carry it.
    assert_eq!(report.request_root_missing.async_, 1);
}
