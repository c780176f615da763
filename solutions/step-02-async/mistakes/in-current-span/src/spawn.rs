//! The in-process async hand-off: the worker answers, then finishes in a task.
//!
//! A wrong fix: the task carries the request's span itself, so the span
//! closes only when the task drops it, after the deferred work.

use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// Starts the worker's deferred work.
pub fn spawn(work: BoxFuture<'static, ()>) -> JoinHandle<()> {
    tokio::spawn(work.in_current_span())
}
