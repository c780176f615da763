use futures::future::BoxFuture;
use rdkafka::message::{BorrowedHeaders, OwnedHeaders};
use tokio::task::JoinHandle;
use tracing::Span;

/// The places where a trace's lineage crosses a boundary. The flow calls them;
/// the step crates implement them.
#[derive(Clone, Copy)]
pub struct Boundaries {
    /// HTTP hop, client side: the client the gateway calls the worker with.
    pub http_client: fn() -> reqwest_middleware::ClientWithMiddleware,
    /// The edge, on the gateway: called for each request it receives, after
    /// its span is created and before it is entered. Decides whether a trace
    /// context the caller presents is continued, linked, or ignored.
    pub continue_at_edge: fn(&Span, &http::HeaderMap, &crate::EdgePolicy),
    /// HTTP hop, server side: called for each request the worker receives,
    /// after its span is created and before it is entered.
    pub continue_http: fn(&Span, &http::HeaderMap),
    /// In-process async hand-off: starts the worker's deferred work.
    pub spawn: fn(BoxFuture<'static, ()>) -> JoinHandle<()>,
    /// Queue, producer side: the headers of a message published inside `span`.
    pub inject_message: fn(&Span, OwnedHeaders) -> OwnedHeaders,
    /// Queue, consumer side: called for each message received, after its span
    /// is created and before it is entered.
    pub continue_message: fn(&Span, Option<&BorrowedHeaders>),
    /// The boundary to the sampler: how a failed order shows on its span.
    /// Tail sampling keeps a trace for its error only if the status says so.
    pub record_failure: fn(&Span, &str),
    /// A long job, on the worker: called for each item of a batch with the
    /// item's span (a new root, not entered yet) and the context of the span
    /// that planned the batch. Decides whether the item joins the batch's
    /// trace or starts a trace of its own.
    pub start_batch_item: fn(&Span, &opentelemetry::Context),
}
