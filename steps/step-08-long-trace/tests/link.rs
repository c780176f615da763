//! The batch's items in seconds: the lesson's `start_item` on an item's span,
//! as the worker calls it, with the real SDK exporting to memory. No tier, no
//! Kafka; `cargo xtask check step-8` stays the end-to-end judge.

use opentelemetry::trace::SpanId;
use stitch_flow::batch::ITEM_SPAN;
use stitch_telemetry::testing::Capture;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// What a failure says: what the item's span is, and where to read on.
fn broken(what: &str) -> String {
    format!(
        "the batch's item is not what the tier can judge whole: {what}\n  \
         read the exercise in book/src/step-08-long-trace.md, or take a hint: cargo xtask hint step-8"
    )
}

#[test]
fn an_item_is_a_root_with_a_link_to_its_batch() {
    let capture = Capture::start();
    // As the worker plans a batch: the items get its context, long after it ended.
    let plan = tracing::info_span!("batch", otel.name = "plan batch", otel.kind = "internal");
    let batch = plan.context();
    drop(plan);
    let item = tracing::info_span!(parent: None, "item", otel.name = ITEM_SPAN, otel.kind = "internal");
    step_08_long_trace::batch::start_item(&item, &batch);
    item.in_scope(|| {});
    drop(item);

    let batch = capture.only("plan batch");
    let item = capture.only(ITEM_SPAN);
    let linked = item.links.iter().any(|link| link.span_context == batch.span_context);
    if item.parent_span_id != SpanId::INVALID {
        let what = if linked {
            "it has a parent (the batch) and a link: an item must be a root, and the link alone leads to its batch"
        } else {
            "it is a child of the batch, in the batch's trace, which lasts as long as the batch"
        };
        panic!("{}", broken(what));
    }
    assert_ne!(
        item.span_context.trace_id(),
        batch.span_context.trace_id(),
        "{}",
        broken("it is a root in the batch's own trace, which lasts as long as the batch")
    );
    assert!(linked, "{}", broken("it is a root, but nothing leads from it to its batch: no link to the batch's span"));
    assert_eq!(item.links.len(), 1, "{}", broken("it has links to other spans than its batch's"));
}
