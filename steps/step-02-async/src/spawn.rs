//! The in-process async hand-off: the worker answers, then finishes in a task.

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

/// Starts the worker's deferred work.
pub fn spawn(work: BoxFuture<'static, ()>) -> JoinHandle<()> {
    // TODO(step-2): the task starts with nothing current, so the span the
    // deferred work opens is a new root, though it runs microseconds after
    // the request, in the same process. Afterwards, the context that is
    // current when `spawn` is called is current whenever the task runs, and
    // the request's own span still ends when the request does.
    tokio::spawn(work)
}
