//! The flow steps' judge of each request's shape: for every boundary taught
//! so far, is the span after it the child of the span before it, and where a
//! boundary has two sides, which side is in place. Rates say how many spans
//! are orphans; this says what the code did, in the words of the mistake.
//!
//! The hops are those of [`stitch_model::EXPECTED_CHAIN`], the chain the CI
//! gate asserts: `gateway:server → gateway:client` and `gateway:client →
//! worker:server` (the HTTP hop), `worker:server → worker:internal` (the async
//! hand-off), `worker:producer → consumer:consumer` (the queue).

use std::collections::BTreeMap;

use lineage::Boundary;
use stitch_model::chain::{EXPECTED_CHAIN, after, hop};
use stitch_model::{CheckRun, ProbeOutcome, RequestShape, RequestSpan, Role, Step};

/// The boundaries a flow step's check judges the shape of: its own and every
/// one before it in the flow (the steps teach them in the flow's order). A
/// step that is not part of the flow itself (a stage's, a judged one) has
/// none here.
pub fn taught_so_far(step: &Step) -> Vec<Boundary> {
    if !step.is_flow() {
        return Vec::new();
    }
    let last = step.meta.teaches.iter().filter_map(|taught| Boundary::ALL.iter().position(|b| b == taught)).max();
    last.map_or_else(Vec::new, |last| Boundary::ALL[..=last].to_vec())
}

/// One failure line per way the requests' shapes are wrong at a boundary in
/// `taught`; empty when every request is as the fixed flow makes it.
pub fn failures(taught: &[Boundary], run: &CheckRun) -> Vec<String> {
    let mut failures = Vec::new();
    for &boundary in taught {
        let mut outcomes: BTreeMap<Outcome, Tally> = BTreeMap::new();
        for shape in &run.shapes {
            let request = Request::of(shape);
            let outcome = match boundary {
                Boundary::Http => request.http(),
                Boundary::Async => request.async_hand_off(),
                Boundary::Messaging => request.queue(),
            };
            outcomes.entry(outcome).or_default().add(&shape.order_id);
            if boundary == Boundary::Async
                && let Some(late) = request.request_span_outlives_its_work()
            {
                outcomes.entry(Outcome::RequestSpanOutlivesItsWork).or_default().add_late(&shape.order_id, late);
            }
        }
        for (outcome, tally) in outcomes {
            if let Some(line) = describe(outcome, &tally, run) {
                failures.push(line);
            }
        }
    }
    failures
}

/// How requests were counted under one outcome.
#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    example: String,
    /// For a request span that outlives its work: by how much, at most.
    late_nanos: u64,
}

impl Tally {
    fn add(&mut self, order_id: &str) {
        if self.requests == 0 {
            self.example = order_id.to_owned();
        }
        self.requests += 1;
    }

    fn add_late(&mut self, order_id: &str, late_nanos: u64) {
        self.add(order_id);
        self.late_nanos = self.late_nanos.max(late_nanos);
    }
}

/// What one request shows at one boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// As the fixed flow makes it.
    Stitched,
    /// The span after the boundary never reached lineage.
    Missing(Boundary),
    /// The span after the boundary has a parent, but not the one it should.
    Misparented(Boundary),
    /// HTTP: the gateway's CLIENT span is there, the worker's span is a root.
    WorkerIgnoresTheCall,
    /// HTTP: no CLIENT span, and the worker's span is a root.
    NoCallSpanAndWorkerRoot,
    /// HTTP: no CLIENT span, yet the worker continues the gateway's SERVER span.
    WorkerUnderTheGatewaysServerSpan,
    /// Async: the deferred work's span is a root.
    DeferredWorkRoot,
    /// Async: the request's span lasts until its deferred work is done.
    RequestSpanOutlivesItsWork,
    /// Queue: the consumer's span is a child of the deferred work's span.
    ConsumerUnderTheCurrentContext,
    /// Queue: the consumer's span is a root.
    ConsumerRoot,
}

/// A request's spans, found by hop.
struct Request<'a> {
    spans: &'a [RequestSpan],
}

impl<'a> Request<'a> {
    fn of(shape: &'a RequestShape) -> Request<'a> {
        Request { spans: &shape.tree }
    }

    /// The first span at `index` of the expected chain.
    fn find(&self, index: usize) -> Option<&'a RequestSpan> {
        let hop = hop(index);
        self.spans.iter().find(|span| span.hop == hop)
    }

    fn is_child_of(span: &RequestSpan, parent: Option<&RequestSpan>) -> bool {
        parent.is_some_and(|parent| span.parent_span_id.as_deref() == Some(parent.span_id.as_str()))
    }

    fn http(&self) -> Outcome {
        let at = after(Boundary::Http);
        let (server, client) = (self.find(at - 2), self.find(at - 1));
        let Some(worker) = self.find(at) else { return Outcome::Missing(Boundary::Http) };
        match client {
            Some(client) if Self::is_child_of(worker, Some(client)) && Self::is_child_of(client, server) => {
                Outcome::Stitched
            }
            Some(_) if worker.parent_span_id.is_none() => Outcome::WorkerIgnoresTheCall,
            None if worker.parent_span_id.is_none() => Outcome::NoCallSpanAndWorkerRoot,
            None if Self::is_child_of(worker, server) => Outcome::WorkerUnderTheGatewaysServerSpan,
            _ => Outcome::Misparented(Boundary::Http),
        }
    }

    fn async_hand_off(&self) -> Outcome {
        let at = after(Boundary::Async);
        let worker = self.find(at - 1);
        let Some(work) = self.find(at) else { return Outcome::Missing(Boundary::Async) };
        if Self::is_child_of(work, worker) {
            Outcome::Stitched
        } else if work.parent_span_id.is_none() {
            Outcome::DeferredWorkRoot
        } else {
            Outcome::Misparented(Boundary::Async)
        }
    }

    /// How long after its deferred work the worker's request span ended,
    /// when it did not end first.
    fn request_span_outlives_its_work(&self) -> Option<u64> {
        let at = after(Boundary::Async);
        let (request, work) = (self.find(at - 1)?, self.find(at)?);
        (request.end_unix_nanos >= work.end_unix_nanos).then(|| request.end_unix_nanos - work.end_unix_nanos)
    }

    fn queue(&self) -> Outcome {
        let at = after(Boundary::Messaging);
        let producer = self.find(at - 1);
        // The deferred work's span, what is current where the message is published.
        let work = self.find(after(Boundary::Async));
        let Some(consumer) = self.find(at) else {
            return Outcome::Missing(Boundary::Messaging);
        };
        if Self::is_child_of(consumer, producer) {
            Outcome::Stitched
        } else if Self::is_child_of(consumer, work) {
            Outcome::ConsumerUnderTheCurrentContext
        } else if consumer.parent_span_id.is_none() {
            Outcome::ConsumerRoot
        } else {
            Outcome::Misparented(Boundary::Messaging)
        }
    }
}

/// The failure line for `tally` requests with `outcome`, in the words of
/// the mistake; `None` when the outcome is no failure (or not enough of one).
fn describe(outcome: Outcome, tally: &Tally, run: &CheckRun) -> Option<String> {
    let total = run.shapes.len();
    let (n, example) = (tally.requests, &tally.example);
    let count = format!("{n} of {total} requests (e.g. {example})");
    Some(match outcome {
        Outcome::Stitched => return None,
        Outcome::Missing(boundary) => format!(
            "{boundary} boundary: in {count} the span after the boundary ({}) never reached lineage",
            after_hop(boundary)
        ),
        Outcome::Misparented(boundary) => format!(
            "{boundary} boundary: in {count} the span after the boundary ({}) has a parent, but not {}",
            after_hop(boundary),
            before_hop(boundary)
        ),
        Outcome::WorkerIgnoresTheCall => match logged(run, Role::Worker, "already been started") {
            Some(line) => format!(
                "http boundary, server side: in {count} the worker's POST /work starts a new trace although the \
                 gateway's CLIENT span is there, and the worker logged `{line}`: `set_parent` came after its span \
                 was entered; set the parent in `continue_trace`, before anything enters the span"
            ),
            None => format!(
                "http boundary, server side missing: in {count} the gateway's CLIENT span is there and carries \
                 its context, but the worker's POST /work starts a new trace: the worker does not continue the \
                 caller's context (extract it from the headers and make it the span's parent in `continue_trace`)"
            ),
        },
        Outcome::NoCallSpanAndWorkerRoot => match run.probes.as_ref().map(|probes| probes.worker) {
            Some(ProbeOutcome::Continued) => format!(
                "http boundary, client side missing: in {count} the gateway's call records no CLIENT span and \
                 sends no context, and the worker's POST /work is a root; the worker's side is in place (it \
                 continued a `traceparent` the check sent it): the client in `http::client()` needs the tracing \
                 middleware"
            ),
            Some(ProbeOutcome::Ignored) => format!(
                "http boundary, neither side: in {count} the gateway's call records no CLIENT span and sends no \
                 context, and the worker continues none (it ignored a `traceparent` the check sent it too)"
            ),
            Some(ProbeOutcome::NotSeen) | None => format!(
                "http boundary, client side missing: in {count} the gateway's call records no CLIENT span and \
                 sends no context, and the worker's POST /work is a root (whether the worker would continue a \
                 context could not be tried)"
            ),
        },
        Outcome::WorkerUnderTheGatewaysServerSpan => format!(
            "http boundary: in {count} the worker continues the gateway's SERVER span, but the call itself left \
             no CLIENT span: a `traceparent` written by hand, or a log filter (such as `reqwest=off`) that \
             switches off the tracing middleware's spans"
        ),
        Outcome::DeferredWorkRoot => format!(
            "async boundary: in {count} the deferred work's span (prepare order) starts a new trace: the task \
             runs with nothing current. `tokio::spawn(work)` alone carries nothing, and a `Context` attached \
             around the spawn stays on the spawning thread; bind the caller's context to the future itself"
        ),
        Outcome::RequestSpanOutlivesItsWork => {
            // A few requests may end after their work by chance; all of them
            // do when the task holds the request's span.
            if n * 2 <= total {
                return None;
            }
            format!(
                "async boundary: in {count} the worker's POST /work ends only after its deferred work (up to \
                 {:.1} ms after): the task holds the request's span itself (`in_current_span`, \
                 `instrument(Span::current())`), so the request lasts as long as the work; carry the context, \
                 not the span",
                tally.late_nanos as f64 / 1e6
            )
        }
        Outcome::ConsumerUnderTheCurrentContext => format!(
            "messaging boundary: in {count} the consumer's span is a child of prepare order (worker:internal), not \
             of the publish span (worker:producer): the message carries the context that was current, not the \
             PRODUCER span's; inject the context of the span `inject` is given"
        ),
        Outcome::ConsumerRoot => match (run.messages.as_ref(), run.probes.as_ref().map(|probes| probes.consumer)) {
            (Some(messages), _) if messages.with_traceparent > 0 => format!(
                "messaging boundary, consumer side missing: the messages carry a traceparent ({} of the {} newest{}), \
                 but in {count} the consumer's span starts a new trace: extract the context from the headers and \
                 make it the span's parent in `continue_trace`",
                messages.with_traceparent,
                messages.read,
                messages.example.as_deref().map_or_else(String::new, |example| format!(", e.g. `{example}`"))
            ),
            (Some(_), Some(ProbeOutcome::Continued)) => format!(
                "messaging boundary, producer side missing: the worker's messages carry no traceparent, so in \
                 {count} the consumer's span starts a new trace; the consumer's side is in place (it continued a \
                 message with a `traceparent` the check produced): inject the publish span's context into the \
                 headers"
            ),
            (Some(_), Some(ProbeOutcome::Ignored)) => format!(
                "messaging boundary, neither side: in {count} the consumer's span starts a new trace; the \
                 worker's messages carry no traceparent, and the consumer ignored one the check produced too"
            ),
            _ => format!(
                "messaging boundary: in {count} the consumer's span starts a new trace (what the messages carry \
                 and what the consumer does with a context could not be read)"
            ),
        },
    })
}

/// The first WARN or ERROR line `role` logged that contains `needle`.
fn logged<'r>(run: &'r CheckRun, role: Role, needle: &str) -> Option<&'r str> {
    run.service_logs
        .iter()
        .filter(|log| log.role == role)
        .flat_map(|log| &log.lines)
        .find(|line| line.text.contains(needle))
        .map(|line| line.text.as_str())
}

/// The span after `boundary`, as `service:kind`.
fn after_hop(boundary: Boundary) -> &'static str {
    EXPECTED_CHAIN[after(boundary)]
}

/// The span [`after_hop`] must be the child of.
fn before_hop(boundary: Boundary) -> &'static str {
    EXPECTED_CHAIN[after(boundary) - 1]
}

#[cfg(test)]
mod tests {
    use stitch_model::fixtures::{EXPECTED_CHAIN, run, service};
    use stitch_model::{LogLine, MessageSample, Probes, ServiceLog};

    use super::*;

    const ALL: [Boundary; 3] = Boundary::ALL;

    /// The fixed flow, 200 requests, with `change` applied to every request's spans.
    fn requests(change: impl Fn(&mut Vec<RequestSpan>)) -> CheckRun {
        let services = vec![
            service("consumer", 200, 0, Boundary::Messaging),
            service("gateway", 400, 0, Boundary::Http),
            service("worker", 600, 0, Boundary::Http),
        ];
        let mut run = run(200, services, [0, 0, 0], &EXPECTED_CHAIN);
        for shape in &mut run.shapes {
            change(&mut shape.tree);
        }
        run
    }

    fn span<'a>(tree: &'a mut [RequestSpan], hop: &str) -> &'a mut RequestSpan {
        tree.iter_mut().find(|span| span.hop.to_string() == hop).expect("the hop is in the tree")
    }

    fn probes(worker: ProbeOutcome, consumer: ProbeOutcome) -> Option<Probes> {
        Some(Probes { worker, consumer })
    }

    fn one(failures: Vec<String>) -> String {
        assert_eq!(failures.len(), 1, "{failures:#?}");
        failures.into_iter().next().unwrap()
    }

    #[test]
    fn the_fixed_flow_has_the_expected_shape_at_every_boundary() {
        assert_eq!(failures(&ALL, &requests(|_| {})), Vec::<String>::new());
    }

    #[test]
    fn only_the_boundaries_taught_so_far_are_judged() {
        let mut step = stitch_model::fixtures::step(2, stitch_model::fixtures::STEP_1);
        step.meta.teaches = vec![Boundary::Async];
        assert_eq!(taught_so_far(&step), [Boundary::Http, Boundary::Async]);
        step.meta.teaches = Vec::new();
        assert_eq!(taught_so_far(&step), Vec::<Boundary>::new());
        step.meta.stage = Some(stitch_model::StageKind::Mesh);
        step.meta.teaches = vec![Boundary::Messaging];
        assert_eq!(taught_so_far(&step), Vec::<Boundary>::new());
        // A broken queue is not step 1's to judge.
        let run = requests(|tree| span(tree, "consumer:consumer").parent_span_id = None);
        assert_eq!(failures(&[Boundary::Http], &run), Vec::<String>::new());
    }

    fn client_only() -> CheckRun {
        requests(|tree| span(tree, "worker:server").parent_span_id = None)
    }

    #[test]
    fn a_client_without_a_server_side_is_named() {
        let line = one(failures(&ALL, &client_only()));
        assert!(line.starts_with("http boundary, server side missing: in 200 of 200 requests (e.g. ord-0)"), "{line}");
        assert!(line.contains("the worker does not continue the caller's context"), "{line}");
    }

    #[test]
    fn a_parent_set_after_the_span_was_entered_is_named_from_the_workers_log() {
        let mut run = client_only();
        run.service_logs.push(ServiceLog {
            role: stitch_model::Role::Worker,
            path: "worker.log".into(),
            lines: vec![LogLine {
                level: "WARN".to_owned(),
                text: "cannot continue the caller's trace err=Span has already been started".to_owned(),
                count: 200,
            }],
        });
        let line = one(failures(&ALL, &run));
        assert!(line.contains("the worker logged `cannot continue the caller's trace err=Span has"), "{line}");
        assert!(line.contains("`set_parent` came after its span was entered"), "{line}");
    }

    fn without_the_call_span() -> CheckRun {
        requests(|tree| {
            tree.retain(|span| span.hop.to_string() != "gateway:client");
            span(tree, "worker:server").parent_span_id = None;
        })
    }

    #[test]
    fn a_server_side_without_a_client_is_named_from_the_probe() {
        let mut run = without_the_call_span();
        run.probes = probes(ProbeOutcome::Continued, ProbeOutcome::Continued);
        let line = one(failures(&ALL, &run));
        assert!(line.starts_with("http boundary, client side missing: in 200 of 200 requests"), "{line}");
        assert!(line.contains("the worker's side is in place"), "{line}");
        run.probes = probes(ProbeOutcome::Ignored, ProbeOutcome::Continued);
        let line = one(failures(&ALL, &run));
        assert!(line.starts_with("http boundary, neither side: in 200 of 200 requests"), "{line}");
        run.probes = None;
        let line = one(failures(&ALL, &run));
        assert!(line.contains("whether the worker would continue a context could not be tried"), "{line}");
    }

    #[test]
    fn a_worker_under_the_gateways_server_span_is_a_missing_call_span() {
        let run = requests(|tree| {
            tree.retain(|span| span.hop.to_string() != "gateway:client");
            let server = span(tree, "gateway:server").span_id.clone();
            span(tree, "worker:server").parent_span_id = Some(server);
        });
        let line = one(failures(&ALL, &run));
        assert!(line.contains("the worker continues the gateway's SERVER span"), "{line}");
        assert!(line.contains("`reqwest=off`"), "{line}");
    }

    #[test]
    fn a_deferred_work_root_is_named() {
        let run = requests(|tree| span(tree, "worker:internal").parent_span_id = None);
        let line = one(failures(&ALL, &run));
        assert!(line.starts_with("async boundary: in 200 of 200 requests (e.g. ord-0) the deferred work's span"));
        assert!(line.contains("bind the caller's context to the future itself"), "{line}");
    }

    #[test]
    fn a_request_span_held_by_its_task_is_named() {
        // `in_current_span`: POST /work ends when the task drops it, after the work.
        let run = requests(|tree| {
            let work_end = span(tree, "worker:internal").end_unix_nanos;
            span(tree, "worker:server").end_unix_nanos = work_end + 2_500_000;
        });
        let line = one(failures(&ALL, &run));
        assert!(line.contains("the worker's POST /work ends only after its deferred work (up to 2.5 ms after)"));
        assert!(line.contains("`in_current_span`"), "{line}");
        // Not taught yet in step 1.
        assert_eq!(failures(&[Boundary::Http], &run), Vec::<String>::new());
    }

    #[test]
    fn a_few_request_spans_ending_late_are_no_failure() {
        let mut run = requests(|_| {});
        for shape in run.shapes.iter_mut().take(100) {
            let work_end = span(&mut shape.tree, "worker:internal").end_unix_nanos;
            span(&mut shape.tree, "worker:server").end_unix_nanos = work_end;
        }
        assert_eq!(failures(&ALL, &run), Vec::<String>::new());
    }

    #[test]
    fn a_message_carrying_the_current_context_is_named() {
        let run = requests(|tree| {
            let work = span(tree, "worker:internal").span_id.clone();
            span(tree, "consumer:consumer").parent_span_id = Some(work);
        });
        let line = one(failures(&ALL, &run));
        assert!(line.contains("the consumer's span is a child of prepare order (worker:internal)"), "{line}");
        assert!(line.contains("inject the context of the span `inject` is given"), "{line}");
    }

    fn consumer_root(with_traceparent: usize, consumer_probe: ProbeOutcome) -> CheckRun {
        let mut run = requests(|tree| span(tree, "consumer:consumer").parent_span_id = None);
        run.messages = Some(MessageSample {
            read: 20,
            with_traceparent,
            example: (with_traceparent > 0).then(|| "00-4bf9-00f0-01".to_owned()),
        });
        run.probes = probes(ProbeOutcome::Continued, consumer_probe);
        run
    }

    #[test]
    fn each_side_of_the_queue_is_named() {
        let line = one(failures(&ALL, &consumer_root(20, ProbeOutcome::Ignored)));
        assert!(line.starts_with("messaging boundary, consumer side missing: the messages carry a traceparent"));
        assert!(line.contains("(20 of the 20 newest, e.g. `00-4bf9-00f0-01`)"), "{line}");
        let line = one(failures(&ALL, &consumer_root(0, ProbeOutcome::Continued)));
        assert!(line.starts_with("messaging boundary, producer side missing"), "{line}");
        let line = one(failures(&ALL, &consumer_root(0, ProbeOutcome::Ignored)));
        assert!(line.starts_with("messaging boundary, neither side"), "{line}");
        let mut unread = consumer_root(0, ProbeOutcome::Ignored);
        unread.messages = None;
        let line = one(failures(&ALL, &unread));
        assert!(line.contains("could not be read"), "{line}");
    }

    #[test]
    fn a_span_that_never_arrived_or_hangs_elsewhere_is_named() {
        let run = requests(|tree| tree.retain(|span| span.hop.to_string() != "consumer:consumer"));
        let line = one(failures(&ALL, &run));
        assert_eq!(
            line,
            "messaging boundary: in 200 of 200 requests (e.g. ord-0) the span after the boundary \
             (consumer:consumer) never reached lineage"
        );
        let run = requests(|tree| span(tree, "worker:internal").parent_span_id = Some("elsewhere".to_owned()));
        let line = one(failures(&ALL, &run));
        assert!(line.ends_with("the span after the boundary (worker:internal) has a parent, but not worker:server"));
    }
}
