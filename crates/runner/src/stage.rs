//! The contract between a run and the stage of a later step: what a stage is
//! told ([`StageEnv`]), the hooks it implements ([`Stage`]) and what it hands
//! back (its [`StageData`], which `stitch_judge::stage` judges). The runner
//! (`check`) drives these hooks; a stage never calls back into it.

use std::net::SocketAddr;
use std::path::PathBuf;

use stitch_model::{Order, StageData};

/// What a later step adds around the flow: a collector tier between the
/// services and lineage, a proxy in front of the worker, a browser, a long job.
/// A run calls the hooks in the order they are declared here; `stop` always.
pub trait Stage {
    /// Services lineage treats as entries (roots there are not orphans).
    fn entry_services(&self) -> Vec<String> {
        vec!["gateway".to_owned()]
    }
    /// How long the run's lineage keeps a trace open for more spans; a span
    /// arriving later starts a new fragment. A stage with traces longer than
    /// lineage's default asks for more.
    fn lineage_max_age(&self) -> std::time::Duration {
        lineage::Config::default().max_age
    }
    /// Page origins lineage's OTLP/HTTP receiver accepts spans from (CORS).
    fn lineage_cors_origins(&self) -> Vec<String> {
        Vec::new()
    }
    /// The gateway's port, when the stage must know it before lineage starts
    /// (a page served by the gateway exports from the gateway's origin).
    fn gateway_port(&self) -> Option<u16> {
        None
    }
    /// How many of the run's requests the harness drives itself; a stage that
    /// brings its own traffic (a browser) drives them in `drive` instead.
    fn baseline_requests(&self, requests: usize) -> usize {
        requests
    }
    /// The spans the run's `orders` owe lineage, the wait's target: the
    /// step's spans per request for each, unless the stage's traffic has
    /// requests of another shape (step 8's batches).
    fn expected_spans(&self, orders: &[Order], spans_per_request: u64) -> u64 {
        orders.len() as u64 * spans_per_request
    }
    /// Starts what the stage needs, once lineage listens.
    fn start(&mut self, env: &StageEnv) -> anyhow::Result<()>;
    /// Where the services export their spans, when not straight to lineage.
    fn otlp_endpoint(&self) -> Option<String> {
        None
    }
    /// Arguments appended to one role's command line (`gateway`, `worker`, `consumer`).
    fn service_args(&self, _role: &str) -> Vec<String> {
        Vec::new()
    }
    /// Called once the worker listens: the URL the gateway should call it at,
    /// when something (a proxy) sits in between.
    fn worker_url(&mut self, _worker: SocketAddr, _env: &StageEnv) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
    /// After the baseline requests: the stage's own traffic (an error, a slow
    /// request, a browser). Its orders join the run's.
    fn drive(&mut self, _env: &StageEnv, _gateway: SocketAddr) -> anyhow::Result<Vec<Order>> {
        Ok(Vec::new())
    }
    /// Once the spans reached lineage (`env.lineage`): what the stage
    /// measured, everything its judge needs; it judges nothing itself.
    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> anyhow::Result<StageData>;
    /// Fails when one of the stage's processes died.
    fn check_alive(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Stops everything `start` started. Runs on every path out of a run.
    fn stop(&mut self);
}

/// What a stage's hooks get to know about the run.
pub struct StageEnv<'a> {
    /// This run's log directory; a stage keeps its processes' logs here.
    pub logs: PathBuf,
    /// The run's lineage, in process: read it here, not over HTTP.
    pub lineage: &'a lineage::Lineage,
    /// Lineage's OTLP/gRPC endpoint, `http://127.0.0.1:port`, for exporters.
    pub lineage_otlp: String,
    /// Lineage's HTTP base URL, for exporters outside this process (a page's
    /// OTLP/HTTP).
    pub lineage_http: String,
    /// The baseline requests the run drives.
    pub requests: usize,
    /// The run's one tokio runtime: block on it, or spawn on it the servers
    /// a stage keeps until it stops.
    pub runtime: &'a tokio::runtime::Runtime,
}
