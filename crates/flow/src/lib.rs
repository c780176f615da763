//! The workshop's business flow, written once: `gateway` → `worker` →
//! (deferred task) → Kafka → `consumer`.
//!
//! The flow never propagates context itself. Every place where lineage can be
//! born or lost is a [`Boundaries`] hook, and each step crate fills the hooks
//! with its lesson: broken, or fixed.

pub mod batch;
mod boundary;
mod cli;
mod consumer;
pub mod edge;
mod gateway;
mod kafka;
mod launch;
pub mod peek;
mod role;
mod server;
pub mod status;
mod worker;

pub use boundary::Boundaries;
pub use cli::{run, run_with};
pub use consumer::ASK_AGAIN_AFTER as CONSUMER_ASK_AGAIN_AFTER;
pub use edge::EdgePolicy;
pub use kafka::{COMMIT_EVERY as CONSUMER_COMMIT_EVERY, CONSUMER_SESSION_TIMEOUT};
pub use launch::Launch;
pub use role::Role;

/// Attribute that carries the business key on the spans of one request: lineage
/// regroups trace fragments by it to show one request shattered into pieces.
pub const BUSINESS_KEY: &str = "order.id";

/// Builds the step's `BOUNDARIES` from the `http`, `spawn` and `messaging`
/// modules in scope, so a step's `lib.rs` names only where each boundary
/// comes from. `status`, `edge` and `batch` default to the flow's own modules,
/// which do what the steps before them ship.
#[macro_export]
macro_rules! boundaries {
    () => {
        $crate::boundaries!(status = $crate::status, edge = $crate::edge);
    };
    (status = $status:path) => {
        $crate::boundaries!(status = $status, edge = $crate::edge);
    };
    (edge = $edge:path) => {
        $crate::boundaries!(status = $crate::status, edge = $edge);
    };
    (batch = $batch:path) => {
        $crate::boundaries!(status = $crate::status, edge = $crate::edge, batch = $batch);
    };
    (status = $status:path, batch = $batch:path) => {
        $crate::boundaries!(status = $status, edge = $crate::edge, batch = $batch);
    };
    (status = $status:path, edge = $edge:path) => {
        $crate::boundaries!(status = $status, edge = $edge, batch = $crate::batch);
    };
    (status = $status:path, edge = $edge:path, batch = $batch:path) => {
        use $batch as batch_module;
        use $edge as edge_module;
        use $status as status_module;
        /// The boundary hooks this step runs the flow with.
        pub const BOUNDARIES: $crate::Boundaries = $crate::Boundaries {
            continue_at_edge: edge_module::continue_trace,
            http_client: http::client,
            continue_http: http::continue_trace,
            spawn: spawn::spawn,
            inject_message: messaging::inject,
            continue_message: messaging::continue_trace,
            record_failure: status_module::record_failure,
            start_batch_item: batch_module::start_item,
        };
    };
}

/// The `main` of a step binary: runs the role named on the command line
/// (`gateway`, `worker` or `consumer`) with the step's boundaries.
#[macro_export]
macro_rules! main {
    ($step:ident) => {
        fn main() -> std::process::ExitCode {
            $crate::run(env!("CARGO_PKG_NAME"), $step::BOUNDARIES)
        }
    };
}
