//! The in-process async hand-off: the worker answers, then finishes in a task.

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

/// Starts the worker's deferred work.
pub fn spawn(work: BoxFuture<'static, ()>) -> JoinHandle<()> {
    // TODO(step-2): the task starts with an empty context, so the span it opens
    // is a new root. Carry the current context into it.
    tokio::spawn(work)
}
