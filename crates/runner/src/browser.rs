//! Step 7's stage: the order page in headless Chromium, traced with OTel-JS.
//!
//! The gateway serves the page (`frontend/`, same origin) and lineage accepts
//! its spans across origins. Small servers stand for what else a page calls
//! ([`recorders`]): a partner API on the propagation allowlist, the same API
//! without a CORS answer for `traceparent`, a third party, and look-alikes of
//! the partner's origin. Each records the `traceparent` it receives. After the
//! browser, as many untrusted callers post to the gateway with a context of
//! their own and a foreign `Origin`: the gateway must link it, not continue it.
//!
//! The browser is Debian's `chromium`, driven by npm's `playwright-core`
//! (`frontend/test/drive.mjs`); nothing downloads a browser.

pub mod recorders;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use self::recorders::{Cors, Recorder, Recorders};
use crate::process::{Child, free_port, log_tail, run_logged};
use stitch_model::stage::browser::{
    AllowlistedCalls, BlockedCalls, BrowserData, LookAlikeCalls, ThirdPartyCalls, UntrustedCallers,
};
use stitch_model::{Order, StageData};

use crate::stage::{Stage, StageEnv};

/// The service name of the page's spans.
pub const FRONTEND_SERVICE: &str = "frontend";
/// The browser the stage drives; `STITCH_CHROMIUM` overrides it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

const HOW_TO_GET_NODE: &str = "step 7 drives a real browser: it needs Node.js 20 or newer with npm \
     (`apt-get install nodejs npm`) and Chromium (`apt-get install chromium`)";

/// What the page reported for one order (`frontend/test/drive.mjs`).
#[derive(Debug, Clone, Deserialize)]
struct PageOrder {
    page_trace_id: String,
    #[serde(default)]
    order_id: Option<String>,
    /// The trace id the gateway answered with.
    #[serde(default)]
    trace_id: Option<String>,
    /// Every call the page made after the order (the page always writes the list).
    calls: Vec<PageCall>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct PageCall {
    name: String,
    #[serde(default)]
    blocked: bool,
}

/// One request from a caller the gateway must not trust.
#[derive(Debug, Clone)]
struct Probe {
    presented_trace_id: String,
    presented_span_id: String,
    /// The trace id the gateway answered with.
    trace_id: String,
}

pub struct BrowserStage {
    gateway_port: u16,
    /// The recording servers, on the run's runtime until the stage stops.
    recorders: Option<Recorders>,
    lineage_http: String,
    driver: Option<Child>,
    page_orders: Vec<PageOrder>,
    probes: Vec<Probe>,
    screenshot: Option<PathBuf>,
    /// The step's own `allowlist.js`, bundled into the page.
    allowlist: PathBuf,
    /// Where the page is bundled for this run, served by the gateway.
    page_dir: Option<PathBuf>,
}

/// The lesson file the page is bundled with, in the step's crate.
pub const ALLOWLIST_FILE: &str = "allowlist.js";

impl BrowserStage {
    /// The stage for the step's crate in `crate_dir`, whose `allowlist.js`
    /// decides where the page propagates.
    pub fn new(crate_dir: &std::path::Path) -> anyhow::Result<BrowserStage> {
        let allowlist = crate_dir.join(ALLOWLIST_FILE);
        if !allowlist.is_file() {
            bail!("{} is missing: the page is bundled with the step's propagation allowlist", allowlist.display());
        }
        Ok(BrowserStage {
            allowlist,
            page_dir: None,
            gateway_port: free_port()?,
            recorders: None,
            lineage_http: String::new(),
            driver: None,
            page_orders: Vec::new(),
            probes: Vec::new(),
            screenshot: None,
        })
    }

    fn page_origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    fn recorders(&self) -> anyhow::Result<&Recorders> {
        self.recorders.as_ref().context("the browser stage's recording servers were not started")
    }

    fn frontend_dir() -> PathBuf {
        crate::project_root().join("frontend")
    }

    /// `npm ci` when `node_modules` is missing, then the page bundled with
    /// the step's allowlist, every run, into the run's log directory.
    fn build_page(&self, env: &StageEnv) -> anyhow::Result<PathBuf> {
        let version = duct::cmd!("node", "--version").stdout_capture().stderr_null().unchecked().run();
        let major = version
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().trim_start_matches('v').split('.').next()?.parse::<u32>().ok());
        match major {
            None => bail!("node is not installed: {HOW_TO_GET_NODE}"),
            Some(major) if major < 20 => bail!("node {major} is too old: {HOW_TO_GET_NODE}"),
            Some(_) => {}
        }
        let dir = Self::frontend_dir();
        let npm = |args: &[&str], log: &str| -> anyhow::Result<()> {
            let expression = duct::cmd("npm", args).dir(&dir).env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
            let what = format!("npm {} in {}", args.join(" "), dir.display());
            run_logged(&what, expression, &env.logs.join(log), 20).context(HOW_TO_GET_NODE)
        };
        if !dir.join("node_modules").is_dir() {
            npm(&["ci", "--no-audit", "--no-fund"], "npm-ci.log")?;
        }
        let page = env.logs.join("page");
        std::fs::create_dir_all(&page).with_context(|| format!("creating {}", page.display()))?;
        let outfile = format!("--outfile={}", page.join("app.js").display());
        let alias = format!("--alias:stitch-allowlist={}", self.allowlist.display());
        npm(&["run", "bundle", "--", &outfile, &alias], "npm-bundle.log")?;
        std::fs::copy(dir.join("index.html"), page.join("index.html"))
            .with_context(|| format!("copying the page's index.html into {}", page.display()))?;
        Ok(page)
    }

    /// Runs the page in Chromium until it placed `orders` orders.
    fn run_browser(&mut self, env: &StageEnv, gateway: SocketAddr, orders: usize) -> anyhow::Result<Vec<PageOrder>> {
        let chromium = std::env::var("STITCH_CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_owned());
        if !std::path::Path::new(&chromium).is_file() {
            bail!("no Chromium at {chromium}: `apt-get install chromium`, or point STITCH_CHROMIUM at one");
        }
        let out = env.logs.join("browser-orders.json");
        let screenshot = env.logs.join("page.png");
        let _ = std::fs::remove_file(&out);
        let script = Self::frontend_dir().join("test").join("drive.mjs");
        let expression = duct::cmd!(
            "node",
            script,
            "--url",
            format!("http://{gateway}/"),
            "--orders",
            orders.to_string(),
            "--out",
            &out,
            "--screenshot",
            &screenshot
        )
        .dir(Self::frontend_dir())
        .env("STITCH_CHROMIUM", &chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        let driver = self.driver.insert(Child::start("browser", expression, &env.logs.join("browser.log"))?);
        let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(500) * orders as u32;
        while driver.check_alive().is_ok() {
            if Instant::now() >= deadline {
                driver.stop(Duration::from_secs(2));
                bail!("the browser did not finish its orders in time; see {}", env.logs.join("browser.log").display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = driver.log().to_owned();
        self.driver = None;
        let text = std::fs::read_to_string(&out).with_context(|| {
            format!("the browser wrote no results; last lines of {}:\n{}", log.display(), log_tail(&log, 20))
        })?;
        self.screenshot = screenshot.is_file().then_some(screenshot);
        serde_json::from_str(&text).with_context(|| format!("reading {}", out.display()))
    }

    /// Callers the gateway does not trust, each presenting a context of its own.
    fn send_probes(
        &self,
        runtime: &tokio::runtime::Runtime,
        gateway: SocketAddr,
        count: usize,
    ) -> anyhow::Result<Vec<Probe>> {
        let origin = self.recorders()?.of(Cors::ThirdParty).origin.clone();
        let url = format!("http://{gateway}/orders");
        runtime.block_on(async {
            let client = crate::gateway::client()?;
            let mut probes = Vec::with_capacity(count);
            for index in 0..count {
                let (trace_id, span_id) = random_context(index);
                let request = client
                    .post(&url)
                    .header("origin", &origin)
                    .header("traceparent", format!("00-{trace_id}-{span_id}-01"));
                let order = crate::gateway::place(request).await.context("an untrusted caller's order")?;
                probes.push(Probe {
                    presented_trace_id: trace_id,
                    presented_span_id: span_id,
                    trace_id: order.trace_id,
                });
            }
            Ok(probes)
        })
    }
}

/// Ids no one else uses, without a random-number crate: the clock, the pid and
/// the index through the standard library's seeded hasher.
fn random_context(index: usize) -> (String, String) {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_usize(index);
    // A clock before 1970 only makes the seed less varied: the hasher's own keys stay random.
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    let high = hasher.finish();
    hasher.write_u32(std::process::id());
    let low = hasher.finish();
    hasher.write_u8(1);
    let span = hasher.finish();
    (format!("{high:016x}{low:016x}"), format!("{span:016x}"))
}

/// The trace id of a `traceparent` value, if it has the W3C shape.
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32).then_some(trace_id)
}

impl Stage for BrowserStage {
    fn entry_services(&self) -> Vec<String> {
        // The trace starts in the page: a root in the gateway is a break.
        vec![FRONTEND_SERVICE.to_owned()]
    }

    fn lineage_cors_origins(&self) -> Vec<String> {
        vec![self.page_origin()]
    }

    fn gateway_port(&self) -> Option<u16> {
        Some(self.gateway_port)
    }

    fn baseline_requests(&self, _requests: usize) -> usize {
        // Every order comes from the page; the run's request count is the
        // browser's (and as many untrusted callers alongside).
        0
    }

    fn start(&mut self, env: &StageEnv) -> anyhow::Result<()> {
        self.page_dir = Some(self.build_page(env)?);
        self.lineage_http = env.lineage_http.clone();
        self.recorders = Some(Recorders::start(env.runtime, &self.page_origin())?);
        Ok(())
    }

    fn service_args(&self, role: &str) -> Vec<String> {
        if role != "gateway" {
            return Vec::new();
        }
        let mut args = vec![
            "--frontend".to_owned(),
            self.page_dir.as_ref().map_or_else(String::new, |page| page.display().to_string()),
            "--frontend-otlp".to_owned(),
            format!("{}/v1/traces", self.lineage_http),
            "--trusted-origin".to_owned(),
            self.page_origin(),
        ];
        for recorder in self.recorders.iter().flat_map(|recorders| &recorders.all) {
            if matches!(recorder.cors, Cors::Allowlisted | Cors::WithoutAllowHeaders) {
                args.extend(["--propagate-to".to_owned(), recorder.origin.clone()]);
            }
            args.extend(["--frontend-call".to_owned(), format!("{}={}", recorder.name, recorder.url())]);
        }
        args
    }

    fn drive(&mut self, env: &StageEnv, gateway: SocketAddr) -> anyhow::Result<Vec<Order>> {
        self.page_orders = self.run_browser(env, gateway, env.requests)?;
        self.probes = self.send_probes(env.runtime, gateway, env.requests)?;
        Ok(self
            .page_orders
            .iter()
            .filter_map(|order| {
                Some(Order { order_id: order.order_id.clone()?, trace_id: order.page_trace_id.clone() })
            })
            .collect())
    }

    fn measure(&mut self, env: &StageEnv, _orders: &[Order]) -> anyhow::Result<StageData> {
        let lineage = env.lineage;
        let recorders = self.recorders()?;
        let pages = &self.page_orders;
        let n = pages.len();
        let page_traces: HashSet<&str> = pages.iter().map(|order| order.page_trace_id.as_str()).collect();
        let accepted = pages.iter().filter(|order| order.order_id.is_some() && order.error.is_none()).count();

        // Same origin: the gateway answered with the page's own trace id.
        let continued =
            pages.iter().filter(|order| order.trace_id.as_deref() == Some(order.page_trace_id.as_str())).count();
        // (with the page's trace, with any traceparent, requests, preflights)
        let carried = |recorder: &Recorder| {
            recorder.hits(|hits| {
                let with_page_trace = hits
                    .traceparents
                    .iter()
                    .flatten()
                    .filter(|value| trace_id_of(value).is_some_and(|id| page_traces.contains(id)))
                    .count();
                (with_page_trace, hits.traceparents.iter().flatten().count(), hits.traceparents.len(), hits.preflights)
            })
        };
        let (partner_with, _, partner_requests, partner_preflights) = carried(recorders.of(Cors::Allowlisted));
        let (_, third_with, third_requests, _) = carried(recorders.of(Cors::ThirdParty));
        let (_, _, nocors_requests, nocors_preflights) = carried(recorders.of(Cors::WithoutAllowHeaders));
        let blocked = |name: &str| {
            pages.iter().filter(|order| order.calls.iter().any(|call| call.name == name && call.blocked)).count()
        };
        let look_alikes = recorders
            .all
            .iter()
            .filter_map(|recorder| match recorder.cors {
                Cors::LookAlike(look_alike) => Some((look_alike, recorder)),
                _ => None,
            })
            .map(|(look_alike, recorder)| {
                let (_, with_traceparent, requests, _) = carried(recorder);
                LookAlikeCalls {
                    look_alike,
                    origin: recorder.origin.clone(),
                    url: recorder.url(),
                    resembles: recorders.of(Cors::Allowlisted).origin.clone(),
                    requests,
                    with_traceparent,
                }
            })
            .collect();

        // Lineage: each order one trace, from the page to the consumer.
        let whole = ["frontend", "gateway", "worker", "consumer"];
        let mut one_trace = 0;
        for order in pages {
            let Some(order_id) = &order.order_id else { continue };
            let traces = lineage.request_traces(order_id);
            let [trace] = traces.as_slice() else { continue };
            let services: HashSet<&str> = trace.spans.iter().map(|span| span.service.as_str()).collect();
            let roots = trace.spans.iter().filter(|span| span.parent_span_id.is_none()).count();
            let whole_chain = roots == 1 && trace.orphans == 0 && whole.iter().all(|s| services.contains(s));
            if trace.trace_id == order.page_trace_id && whole_chain {
                one_trace += 1;
            }
        }
        // Untrusted callers: a new root at the gateway, linked to what they presented.
        let mut linked = 0;
        let mut probe_continued = 0;
        for probe in &self.probes {
            if probe.trace_id == probe.presented_trace_id {
                probe_continued += 1;
                continue;
            }
            let Some(trace) = lineage.trace(&probe.trace_id) else { continue };
            let root = trace.spans.iter().find(|span| span.parent_span_id.is_none() && span.service == "gateway");
            let links_back = root.is_some_and(|root| {
                root.links
                    .iter()
                    .any(|link| link.trace_id == probe.presented_trace_id && link.span_id == probe.presented_span_id)
            });
            if links_back {
                linked += 1;
            }
        }
        let allowlist = recorders
            .all
            .iter()
            .filter(|recorder| matches!(recorder.cors, Cors::Allowlisted | Cors::WithoutAllowHeaders))
            .map(|recorder| recorder.origin.clone())
            .collect();
        Ok(StageData::Browser(BrowserData {
            page_origin: self.page_origin(),
            allowlist,
            orders: n,
            accepted,
            same_origin_continued: continued,
            allowlisted: AllowlistedCalls {
                requests: partner_requests,
                preflights: partner_preflights,
                with_page_traceparent: partner_with,
            },
            third_party: ThirdPartyCalls { requests: third_requests, with_traceparent: third_with },
            allowlisted_without_cors: BlockedCalls {
                preflights: nocors_preflights,
                requests: nocors_requests,
                blocked_in_page: blocked("partner-without-cors"),
            },
            other_calls_blocked: blocked("partner") + blocked("third-party"),
            look_alikes,
            one_trace,
            untrusted: UntrustedCallers { sent: self.probes.len(), linked, continued: probe_continued },
            page_screenshot: self.screenshot.clone(),
        }))
    }

    fn check_alive(&self) -> anyhow::Result<()> {
        match &self.driver {
            Some(driver) => driver.check_alive(),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            driver.stop(Duration::from_secs(2));
        }
        if let Some(mut recorders) = self.recorders.take() {
            recorders.stop();
        }
    }
}
