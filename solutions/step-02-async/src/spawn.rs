//! The in-process async hand-off: the worker answers, then finishes in a task.

use futures::future::BoxFuture;
use opentelemetry::context::FutureExt as _;
use tokio::task::JoinHandle;

/// Starts the worker's deferred work.
pub fn spawn(work: BoxFuture<'static, ()>) -> JoinHandle<()> {
    // ANCHOR: spawn
    // Bind the caller's context to the task (Rust's `context.bind`): spans the
    // task opens become children of the span that spawned it.
    // `work.in_current_span()` would carry it too, but keeps the request's
    // span open until the task ends.
    tokio::spawn(work.with_current_context())
    // ANCHOR_END: spawn
}
