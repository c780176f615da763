//! One real order message for step 3's chapter: the fixed flow places an
//! order, `peek` prints the message as the learner would see it, and lineage
//! says which span the `traceparent` on it names.

use anyhow::{Context as _, bail};
use stitch_components::process::{binary, cargo_build};
use stitch_runner::check::{self, wait_for_spans};
use stitch_runner::step::Step;

use crate::report::{HEADER, KAFKA};

/// The chapter's include, under `book/src/generated/`.
pub const FILE: &str = "step-03-message.md";

/// Runs `step`'s solution for one order and renders its message.
pub fn render(step: &Step) -> anyhow::Result<String> {
    let package = step.package(true);
    cargo_build(&[&package])?;
    let per_request = step.full_expectation()?.spans_per_request;
    check::with_flow(step, KAFKA, "step-03-message", |flow| {
        let client = stitch_runner::gateway::client()?;
        let url = format!("http://{}/orders", flow.services.gateway());
        let order = flow.runtime.block_on(stitch_runner::gateway::place(client.post(&url)))?;
        let services = &flow.services;
        wait_for_spans(flow.lineage, per_request, || services.check_alive())?;
        flow.lineage.settle_now();
        let printed = duct::cmd!(binary(&package), "peek", "--kafka", flow.broker.bootstrap(), "--last", "1")
            .env_remove("RUST_LOG")
            .read()
            .context("running peek")?;

        let traces = flow.lineage.request_traces(&order.order_id);
        let [trace] = traces.as_slice() else {
            bail!("order {} is {} traces in lineage, not one", order.order_id, traces.len());
        };
        let publish = trace
            .spans
            .iter()
            .find(|span| span.kind == "producer")
            .with_context(|| format!("no producer span in order {}'s trace", order.order_id))?;
        let process = trace
            .spans
            .iter()
            .find(|span| span.kind == "consumer")
            .with_context(|| format!("no consumer span in order {}'s trace", order.order_id))?;
        // The flags are the propagator's to set (sampled, and W3C level 2's
        // random trace id): the picture is about the ids.
        let header = format!("00-{}-{}-", trace.trace_id, publish.span_id);
        if !printed.contains(&header) {
            bail!("peek did not print the publish span's context {header}:\n{printed}");
        }
        if process.parent_span_id.as_deref() != Some(publish.span_id.as_str()) {
            bail!("order {}'s consumer span is not a child of its publish span", order.order_id);
        }
        Ok(format!(
            "{HEADER}\n`{} peek --last 1`, right after one order through step 3's solution:\n\n\
             ```text\n{}\n```\n\n\
             Lineage holds that order as one trace, `{}`. The `traceparent`'s parent id, `{}`, is the worker's \
             `{}` span ({}), and the consumer's `{}` span ({}) is its child.\n",
            package,
            printed.trim_end(),
            trace.trace_id,
            publish.span_id,
            publish.name,
            publish.kind,
            process.name,
            process.kind,
        ))
    })
}
