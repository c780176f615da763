//! A flow started for a caller that drives it itself (the soak, the book's
//! message picture): lineage in process, the broker, the three services.

use anyhow::Context as _;

use crate::check::{SETTLE_AFTER, log_dir};
use crate::kafka::{Broker, BrokerKind, BrokerOptions};
use crate::process::{binary, build_broker, cargo_build, spinner};
use crate::services::Services;
use crate::stage::StageEnv;
use stitch_model::Step;

/// A flow started for a caller that drives it itself (the soak): its
/// services, the broker they talk to, and the run's lineage.
pub struct Flow<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    /// Mutable so that a fault can restart it.
    pub lineage: &'a mut lineage::Lineage,
    pub services: Services,
    pub broker: Broker,
    /// This run's log directory.
    pub logs: std::path::PathBuf,
}

impl Flow<'_> {
    /// Fails when a service or the broker died.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.services.check_alive()?;
        self.broker.check_alive()
    }
}

/// Starts `step`'s solution (lineage in process, the broker, the three
/// services), hands it to `drive`, and stops everything on every path out.
pub fn with_flow<T>(
    step: &Step,
    kafka: BrokerKind,
    name: &str,
    drive: impl FnOnce(&mut Flow<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    with_flow_built(step, kafka, name, Profile::Dev, drive)
}

/// How the services of a flow are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// What the checks run: the build a learner's edit makes.
    Dev,
    /// What a team deploys: what a measurement of their cost needs.
    Release,
}

/// [`with_flow`], with the services built in `profile`.
pub fn with_flow_built<T>(
    step: &Step,
    kafka: BrokerKind,
    name: &str,
    profile: Profile,
    drive: impl FnOnce(&mut Flow<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let package = step.package(true);
    let binary = match profile {
        Profile::Dev => {
            cargo_build(&[&package])?;
            binary(&package)
        }
        Profile::Release => {
            crate::process::cargo_build_release(&[&package])?;
            crate::process::target_dir().join("release").join(&package)
        }
    };
    build_broker()?;
    let logs = log_dir(name);
    std::fs::create_dir_all(&logs)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let mut lineage = runtime.block_on(lineage::Lineage::start(lineage::Config {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        quiet_period: SETTLE_AFTER,
        ..lineage::Config::default()
    }))?;
    let outcome = (|| {
        let broker = Broker::start(&BrokerOptions::in_logs(kafka, 0, &logs))?;
        let env = StageEnv {
            logs: logs.clone(),
            lineage: &lineage,
            lineage_otlp: lineage.otlp_grpc_endpoint(),
            lineage_http: lineage.http_endpoint(),
            requests: 0,
            runtime: &runtime,
        };
        let starting = spinner(format!("starting {package} (gateway, worker, consumer)"));
        let services = Services::start(&binary, &env.lineage_otlp, broker.bootstrap(), &env, &[], None);
        starting.finish_and_clear();
        let services = match services {
            Ok(services) => services,
            Err(err) => {
                broker.stop();
                return Err(err);
            }
        };
        let mut flow = Flow { runtime: &runtime, lineage: &mut lineage, services, broker, logs: logs.clone() };
        let outcome = drive(&mut flow);
        let Flow { services, broker, .. } = flow;
        services.stop();
        broker.stop();
        outcome
    })();
    runtime.block_on(lineage.shutdown());
    outcome
}
