//! The async hand-off in seconds: the lesson's `spawn` runs deferred work
//! that opens a span, with the real SDK exporting to memory. No Kafka, no
//! child processes; `cargo xtask check step-2` stays the end-to-end judge.

use futures::FutureExt as _;
use opentelemetry::trace::{SpanId, TraceContextExt as _};
use step_02_async::spawn::spawn;
use stitch_telemetry::testing::Capture;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// What a failure says: which boundary, and where to read on.
fn broken(what: &str) -> String {
    format!(
        "the async boundary is broken: {what}\n  \
         read the exercise in book/src/step-02-async.md, or take a hint: cargo xtask hint step-2"
    )
}

// The current-thread runtime runs the task only when the test awaits, which
// lets the request's span end while the task is still pending.
#[tokio::test]
async fn the_deferred_work_is_a_child_of_the_span_that_spawned_it() {
    let capture = Capture::start();
    let request = tracing::info_span!("worker request", otel.kind = "server");
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let task = request.in_scope(|| {
        spawn(
            async move {
                released.await.expect("the test releases the task");
                tracing::info_span!("deferred work").in_scope(|| {});
            }
            .boxed(),
        )
    });
    let caller = request.context().span().span_context().clone();
    drop(request);

    assert_eq!(
        capture.ended("worker request").len(),
        1,
        "{}",
        broken("the request's span must end when the request does, not wait for the task it spawned")
    );
    release.send(()).expect("the task waits for the release");
    task.await.expect("the deferred work completes");

    let deferred = capture.ended("deferred work");
    assert_eq!(deferred.len(), 1, "expected one ended span called \"deferred work\"");
    let deferred = &deferred[0];
    assert_ne!(deferred.parent_span_id, SpanId::INVALID, "{}", broken("the span the spawned task opens is a new root"));
    assert_eq!(
        deferred.span_context.trace_id(),
        caller.trace_id(),
        "{}",
        broken("the spawned task's span is in another trace than the request that spawned it")
    );
    assert_eq!(
        deferred.parent_span_id,
        caller.span_id(),
        "{}",
        broken("the spawned task's span is not a child of the span current at `spawn`")
    );
}

#[tokio::test]
async fn work_spawned_outside_any_span_starts_a_new_trace() {
    let capture = Capture::start();
    spawn(async { tracing::info_span!("deferred work").in_scope(|| {}) }.boxed())
        .await
        .expect("the deferred work completes");
    let deferred = capture.ended("deferred work");
    assert_eq!(deferred.len(), 1, "expected one ended span called \"deferred work\"");
    assert_eq!(
        deferred[0].parent_span_id,
        SpanId::INVALID,
        "{}",
        broken("work spawned with no span current must start a new trace")
    );
}
