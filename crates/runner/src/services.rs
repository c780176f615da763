//! The flow's three services as processes of a step's binary: started in
//! order, each ready before the next, and supervised (alive, down, killed,
//! restarted with the arguments it had).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use stitch_flow::{Launch, Role};

use crate::process::{Child, free_port, http_get_status, poll, wait_until};
use crate::stage::{Stage, StageEnv};

/// One service of the flow: how it was started, so that it can be again.
struct Member {
    launch: Launch,
    argv: Vec<String>,
    child: Child,
    /// Where its current process logs.
    log: PathBuf,
}

/// The services of the flow, started as three processes of the step's binary.
pub struct Services {
    /// In start order: the consumer, the worker, the gateway (see [`slot`]).
    members: [Member; 3],
    gateway: SocketAddr,
    binary: PathBuf,
    logs: PathBuf,
    /// Restarts so far: each restarted process logs to a file of its own.
    restarts: usize,
}

/// How long a service may take to answer `/healthz`; the consumer answers
/// once its partitions are assigned.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a SIGKILLed service may take to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

impl Services {
    pub(crate) fn start(
        binary: &Path,
        otlp: &str,
        bootstrap: &str,
        env: &StageEnv,
        extra_args: &[String],
        mut stage: Option<&mut (dyn Stage + '_)>,
    ) -> anyhow::Result<Services> {
        let logs = &env.logs;
        let gateway = match stage.as_ref().and_then(|stage| stage.gateway_port()) {
            Some(port) => port,
            None => free_port()?,
        };
        let [worker, consumer] = [free_port()?, free_port()?];
        let gateway_addr: SocketAddr = ([127, 0, 0, 1], gateway).into();
        let worker_addr: SocketAddr = ([127, 0, 0, 1], worker).into();
        let consumer_addr: SocketAddr = ([127, 0, 0, 1], consumer).into();
        let group = format!("stitch-{}", std::process::id());
        let kafka = bootstrap.to_owned();
        let start = |launch: Launch, stage: &Option<&mut (dyn Stage + '_)>| {
            let role = launch.role();
            let mut argv = launch.args(otlp);
            argv.extend(extra_args.iter().cloned());
            if let Some(stage) = stage {
                argv.extend(stage.service_args(role.name()));
            }
            let log = logs.join(format!("{role}.log"));
            let child = start_member(binary, role, &argv, &log, launch.listen())?;
            anyhow::Ok(Member { launch, argv, child, log })
        };
        let consumer = start(Launch::Consumer { listen: consumer_addr, kafka: kafka.clone(), group }, &stage)?;
        let worker = start(Launch::Worker { listen: worker_addr, kafka }, &stage)?;
        let worker_url = match stage.as_deref_mut() {
            Some(stage) => stage.worker_url(worker_addr, env)?,
            None => None,
        };
        let worker_url = worker_url.unwrap_or_else(|| format!("http://{worker_addr}"));
        let gateway = start(Launch::Gateway { listen: gateway_addr, worker_url }, &stage)?;
        let members = [consumer, worker, gateway];
        debug_assert!(members.iter().enumerate().all(|(index, member)| slot(member.launch.role()) == index));
        Ok(Services { members, gateway: gateway_addr, binary: binary.to_owned(), logs: logs.clone(), restarts: 0 })
    }

    /// Where the gateway answers.
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// Where `role` answers HTTP.
    pub fn listen(&self, role: Role) -> SocketAddr {
        self.member(role).launch.listen()
    }

    fn member(&self, role: Role) -> &Member {
        &self.members[slot(role)]
    }

    /// The process ids of `role`'s current process.
    pub fn pids(&self, role: Role) -> Vec<u32> {
        self.member(role).child.pids()
    }

    /// Each role's current log file.
    pub fn log_files(&self) -> Vec<(Role, PathBuf)> {
        self.members.iter().map(|member| (member.launch.role(), member.log.clone())).collect()
    }

    pub fn check_alive(&self) -> anyhow::Result<()> {
        self.members.iter().try_for_each(|member| member.child.check_alive())
    }

    /// What each service's SDK did with the spans it ended so far (since it
    /// last started), from its `/metrics`.
    pub fn export_counts(&self) -> anyhow::Result<Vec<crate::sdk_export::ServiceExport>> {
        self.members
            .iter()
            .map(|member| {
                Ok(crate::sdk_export::ServiceExport {
                    role: member.launch.role(),
                    counts: crate::sdk_export::scrape(member.launch.listen())?,
                })
            })
            .collect()
    }

    /// Roles whose process exited, and how it ended.
    pub fn exited(&self) -> anyhow::Result<Vec<(Role, std::process::ExitStatus)>> {
        let mut exited = Vec::new();
        for member in &self.members {
            if let Some(status) = member.child.exit_status()? {
                exited.push((member.launch.role(), status));
            }
        }
        Ok(exited)
    }

    /// Roles whose process exited or that no longer answer `/healthz`.
    pub fn down(&self) -> Vec<Role> {
        self.members
            .iter()
            .filter(|member| !matches!(member.child.exit_status(), Ok(None)) || !healthy(member.launch.listen()))
            .map(|member| member.launch.role())
            .collect()
    }

    /// SIGKILL, no flush: what a crash or an OOM kill does. Returns once the
    /// process is gone (an error after 10 s).
    pub fn kill(&mut self, role: Role) -> anyhow::Result<()> {
        let member = self.member(role);
        for pid in member.child.pids() {
            crate::process::signal(pid, crate::process::Signal::KILL);
        }
        let gone = poll(KILL_TIMEOUT, Duration::from_millis(10), || {
            member.child.exit_status().map(|status| status.map(drop))
        })?;
        if gone.is_none() {
            bail!("{role} still runs {} s after SIGKILL", KILL_TIMEOUT.as_secs());
        }
        Ok(())
    }

    /// Starts `role` again with the arguments it had, and waits until it
    /// answers `/healthz`.
    pub fn restart(&mut self, role: Role) -> anyhow::Result<()> {
        self.restarts += 1;
        let log = self.logs.join(format!("{role}.restart-{}.log", self.restarts));
        let member = &mut self.members[slot(role)];
        member.child = start_member(&self.binary, role, &member.argv, &log, member.launch.listen())?;
        member.log = log;
        Ok(())
    }

    /// Stops each of `roles` and starts it again with OpenTelemetry
    /// `tracing` on or off, in start order, each ready before the next.
    pub fn restart_with_tracing(&mut self, roles: &[Role], tracing: stitch_telemetry::Tracing) -> anyhow::Result<()> {
        let value = tracing.name();
        for index in 0..self.members.len() {
            let role = self.members[index].launch.role();
            if !roles.contains(&role) {
                continue;
            }
            let member = &mut self.members[index];
            member.child.stop(Duration::from_secs(5));
            if let Some(at) = member.argv.iter().position(|arg| arg == "--tracing") {
                member.argv.drain(at..(at + 2).min(member.argv.len()));
            }
            member.argv.extend(["--tracing".to_owned(), value.to_owned()]);
            self.restart(role)?;
        }
        Ok(())
    }

    pub(crate) fn stop(mut self) {
        // Reverse start order: the consumer drains last.
        for member in self.members.iter_mut().rev() {
            member.child.stop(Duration::from_secs(5));
        }
    }
}

/// Where `role` is in [`Services::members`]: the order they start in.
fn slot(role: Role) -> usize {
    match role {
        Role::Consumer => 0,
        Role::Worker => 1,
        Role::Gateway => 2,
    }
}

/// Starts one service and waits until it answers `/healthz`.
fn start_member(binary: &Path, role: Role, argv: &[String], log: &Path, listen: SocketAddr) -> anyhow::Result<Child> {
    let expression = duct::cmd(binary, argv)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("STITCH_TRACING");
    let child = Child::start(role.name(), expression, log).with_context(|| format!("starting the {role}"))?;
    wait_until(&child, READY_TIMEOUT, || healthy(listen))?;
    Ok(child)
}

fn healthy(addr: SocketAddr) -> bool {
    http_get_status(&format!("http://{addr}/healthz")).is_ok_and(|(status, _)| status == 200)
}
