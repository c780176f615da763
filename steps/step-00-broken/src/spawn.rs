//! The in-process async hand-off: the worker answers, then finishes in a task.

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

/// Starts the worker's deferred work.
pub fn spawn(work: BoxFuture<'static, ()>) -> JoinHandle<()> {
    // The task starts with an empty context: the span it opens is a new root.
    tokio::spawn(work)
}
