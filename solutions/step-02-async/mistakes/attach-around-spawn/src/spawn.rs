//! The in-process async hand-off: the worker answers, then finishes in a task.
//!
//! A wrong fix: the caller's context attached around the spawn. The guard
//! makes it current on the spawning thread, until it drops; the task is
//! polled elsewhere, later, with nothing current.

use futures::future::BoxFuture;
use opentelemetry::Context;
use tokio::task::JoinHandle;

/// Starts the worker's deferred work.
pub fn spawn(work: BoxFuture<'static, ()>) -> JoinHandle<()> {
    let _guard = Context::current().attach();
    tokio::spawn(work)
}
