//! The boundary to the sampler in seconds: the lesson's `record_failure` on
//! a consumer span declared as the flow declares it, with the real SDK
//! exporting to memory. The span's status is what tier 2's `status_code`
//! policy reads; `cargo xtask check step-4` stays the end-to-end judge.

use opentelemetry::trace::Status;
use step_04_tail_sampling_solution::status::record_failure;
use stitch_telemetry::testing::Capture;

/// What a failure says: what the tier sees, and where to read on.
fn broken(what: &str) -> String {
    format!(
        "the tier cannot see the failure: {what}\n  \
         read the exercise in book/src/step-04-tail-sampling.md, or take a hint: cargo xtask hint step-4"
    )
}

#[test]
fn a_failed_orders_span_has_status_error_with_the_reason() {
    let capture = Capture::start();
    // As the consumer creates an order's span: the status fields declared, empty.
    let span = tracing::info_span!(
        "process",
        otel.name = "orders process",
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    span.in_scope(|| record_failure(&span, "payment declined"));
    drop(span);

    match capture.only("orders process").status {
        Status::Error { description } => assert_eq!(
            description,
            "payment declined",
            "{}",
            broken("the span's status is ERROR, but its description is not the reason the order failed")
        ),
        status => panic!(
            "{}",
            broken(&format!(
                "the failed order's span has status {status:?}: tier 2's `errors` policy reads the span's status, \
                 and a log line is not part of the trace"
            ))
        ),
    }
}
