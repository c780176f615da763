//! The running instance: [`Lineage::start`] starts the OTLP/gRPC receiver
//! (`grpc`), the HTTP server (OTLP/HTTP, API, metrics, HTML, here) and the
//! settle ticker.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Config;
use crate::control;
use crate::grpc;
use crate::html;
use crate::ingest::{
    ContentEncoding, IngestOutcome, PayloadError, PayloadFormat, RejectReason, decode_request, encode_response,
    inflate, prepare, prepare_protobuf,
};
use crate::metrics;
use crate::model::{now_unix_nanos, parse_trace_id};
use crate::report::Report;
use crate::store::Store;
use crate::view::{RequestView, TraceView};

const SETTLE_TICK: Duration = Duration::from_millis(100);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub(crate) struct Shared {
    store: Mutex<Store>,
    business_key: String,
    max_payload_bytes: usize,
    cors_origins: Vec<String>,
    allow_remote_reset: bool,
}

impl Shared {
    fn new(config: &Config) -> Shared {
        Shared {
            store: Mutex::new(Store::new(config.clone())),
            business_key: config.business_key.clone(),
            max_payload_bytes: config.max_payload_bytes,
            cors_origins: config.cors_origins.clone(),
            allow_remote_reset: config.allow_remote_reset,
        }
    }

    /// The store stays usable even if a thread panicked while holding it:
    /// every mutation is applied span by span, so it is never half-written.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ingest(&self, request: &ExportTraceServiceRequest) -> IngestOutcome {
        // Extraction runs outside the lock; only the insertion holds it.
        let prepared = prepare(request, &self.business_key);
        let now = now_unix_nanos();
        self.store().insert(prepared, now)
    }

    /// Same for an uncompressed protobuf request; malformed bytes change nothing.
    pub(crate) fn ingest_protobuf(&self, body: &[u8]) -> Result<IngestOutcome, PayloadError> {
        let prepared = prepare_protobuf(body, &self.business_key)?;
        let now = now_unix_nanos();
        Ok(self.store().insert(prepared, now))
    }

    pub(crate) fn reject(&self, reason: RejectReason) {
        self.store().record_rejected_payload(reason);
    }
}

/// A running lineage: servers and settle ticker. Dropping it stops them too;
/// [`Lineage::shutdown`] also waits for them to finish.
pub struct Lineage {
    shared: Arc<Shared>,
    /// What it started with, its ports as bound: for [`Lineage::restart`].
    config: Config,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("{addr} is already in use (is another lineage running? try `cargo xtask down`)")
        } else {
            anyhow::Error::new(e).context(format!("cannot listen on {addr} for {what}"))
        }
    })
}

impl Lineage {
    /// Binds both ports, then spawns the servers and the settle ticker on the current runtime.
    pub async fn start(config: Config) -> anyhow::Result<Lineage> {
        let grpc_listener = bind(config.grpc_addr, "OTLP/gRPC").await?;
        let http_listener = bind(config.http_addr, "OTLP/HTTP").await?;
        let grpc_addr = grpc_listener.local_addr().context("reading the gRPC address")?;
        let http_addr = http_listener.local_addr().context("reading the HTTP address")?;
        let shared = Arc::new(Shared::new(&config));
        let (stop, stopped) = watch::channel(false);
        let config = Config { grpc_addr, http_addr, ..config };

        let grpc_task = grpc::spawn(grpc_listener, shared.clone(), config.max_payload_bytes, stopped.clone());

        let app = router(shared.clone());
        let http_task = {
            let stopped = stopped.clone();
            tokio::spawn(async move {
                // The peer's address decides who may reset (`control`).
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                let result = axum::serve(http_listener, app).with_graceful_shutdown(until_stopped(stopped)).await;
                if let Err(e) = result {
                    tracing::error!("HTTP server failed: {e}");
                }
            })
        };

        let ticker_task = {
            let shared = shared.clone();
            let mut stopped = stopped;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SETTLE_TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let settled = shared.store().settle_due(now_unix_nanos());
                            if settled > 0 {
                                tracing::debug!(settled, "traces settled");
                            }
                        }
                        changed = stopped.changed() => {
                            if changed.is_err() || *stopped.borrow() {
                                break;
                            }
                        }
                    }
                }
            })
        };

        tracing::info!(%grpc_addr, %http_addr, "lineage listening");
        Ok(Lineage { shared, config, stop, tasks: vec![grpc_task, http_task, ticker_task] })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.config.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.config.http_addr
    }

    /// `http://HOST:PORT` for an OTLP/gRPC exporter (loopback if bound to all interfaces).
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("http://{}", reachable(self.config.grpc_addr))
    }

    /// `http://HOST:PORT` of the HTTP server; OTLP/HTTP traces go to `{this}/v1/traces`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", reachable(self.config.http_addr))
    }

    pub fn report(&self) -> Report {
        self.shared.store().report()
    }

    /// Forgets every trace and every counter. In process nothing is
    /// refused: `POST /api/reset` is what answers only a loopback peer.
    pub fn reset(&self) {
        self.shared.store().reset();
    }

    /// Settles every open trace immediately.
    pub fn settle_now(&self) {
        self.shared.store().settle_all();
    }

    pub fn trace_dump(&self, trace_id_hex: &str) -> Option<String> {
        self.shared.store().trace_dump(trace_id_hex)
    }

    pub fn request_dump(&self, key: &str) -> Option<String> {
        self.shared.store().request_dump(key)
    }

    pub fn request_traces(&self, key: &str) -> Vec<TraceView> {
        self.shared.store().request_traces(key)
    }

    pub fn request(&self, key: &str) -> Option<RequestView> {
        self.shared.store().request(key)
    }

    /// The HTML page `GET /requests/{key}` serves: a waterfall per fragment.
    pub fn request_page(&self, key: &str) -> Option<String> {
        self.request(key).map(|view| html::request_page(&self.shared.business_key, &view))
    }

    pub fn trace(&self, trace_id_hex: &str) -> Option<TraceView> {
        self.shared.store().trace_hex(trace_id_hex)
    }

    /// Runs `f` with the store locked (for checks the other methods do not cover).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self.shared.store())
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), then returns.
    pub async fn shutdown(mut self) {
        self.stop_tasks().await;
    }

    async fn stop_tasks(&mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// What a restart of the process does: both ports close, everything
    /// held and counted is forgotten, and after `down` the same ports listen
    /// again. Exporters see refused connections in between.
    pub async fn restart(&mut self, down: std::time::Duration) -> anyhow::Result<()> {
        self.stop_tasks().await;
        tokio::time::sleep(down).await;
        *self = Lineage::start(self.config.clone()).await.context("starting lineage again on its ports")?;
        Ok(())
    }
}

impl Drop for Lineage {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

pub(crate) async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/traces", post(post_traces).options(preflight_traces))
        .route("/metrics", get(get_metrics))
        .route("/api/report", get(get_report))
        .route("/api/settle", post(post_settle))
        .route("/api/reset", post(post_reset))
        .route("/api/traces/{trace_id}", get(get_trace))
        .route("/api/traces/{trace_id}/dump", get(get_trace_dump))
        .route("/api/requests", get(get_request_by_query))
        .route("/api/requests/{key}", get(get_request))
        .route("/api/requests/{key}/dump", get(get_request_dump))
        .route("/traces/{trace_id}", get(get_trace_page))
        .route("/requests", get(get_request_page_by_query))
        .route("/requests/{key}", get(get_request_page))
        .route(html::STYLESHEET_PATH, get(get_stylesheet))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(get_index))
        .layer(axum::middleware::map_response(with_security_headers))
        .with_state(shared)
}

/// No script at all, styles only from lineage's own style sheet, no
/// framing: a name that slipped through escaping still could not run.
// ANCHOR: policy
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
// ANCHOR_END: policy

/// On every response, HTML or not: a browser must never guess a type
/// (`nosniff`), and the policy costs nothing elsewhere.
async fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn get_stylesheet() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/css; charset=utf-8")], html::STYLESHEET).into_response()
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn payload_error(shared: &Shared, error: PayloadError) -> Response {
    shared.reject(error.reason());
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    text(status, format!("{error}\n"))
}

/// Reads at most `limit` bytes. Past the limit the rest is drained (up to a
/// bound) so that the client reads the 413 instead of a reset connection.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, PayloadError> {
    let drain_limit = limit.saturating_mul(4).max(1 << 20);
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut seen: usize = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| PayloadError::Unreadable(e.to_string()))?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            if seen > drain_limit {
                break;
            }
            continue;
        }
        bytes.extend_from_slice(&chunk);
    }
    if seen > limit {
        return Err(PayloadError::TooLarge { size: seen as u64, limit });
    }
    Ok(bytes)
}

/// What a cross-origin page gets: `Ok(None)` without an `Origin` (not a
/// browser), the origin to echo when it is allowed, the refused one otherwise.
fn cors_origin(shared: &Shared, headers: &HeaderMap) -> Result<Option<HeaderValue>, HeaderValue> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(None) };
    let allowed = origin.to_str().is_ok_and(|origin| shared.cors_origins.iter().any(|allowed| allowed == origin));
    if allowed { Ok(Some(origin.clone())) } else { Err(origin.clone()) }
}

fn refused_origin(origin: &HeaderValue) -> Response {
    text(StatusCode::FORBIDDEN, format!("origin {origin:?} may not export here (lineage --cors-origin)\n"))
}

fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// The preflight a page's OTLP exporter sends before its JSON or protobuf POST.
async fn preflight_traces(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match cors_origin(&shared, &headers) {
        Ok(origin) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let allow = response.headers_mut();
            allow.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            allow.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, content-encoding"),
            );
            allow.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            with_cors(response, origin)
        }
        Err(refused) => refused_origin(&refused),
    }
}

async fn post_traces(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    // CORS only stops a browser from reading the answer; a refused origin's
    // spans must not be ingested either.
    let origin = match cors_origin(&shared, &headers) {
        Ok(origin) => origin,
        Err(refused) => return refused_origin(&refused),
    };
    with_cors(ingest_traces(&shared, &headers, body).await, origin)
}

async fn ingest_traces(shared: &Shared, headers: &HeaderMap, body: Body) -> Response {
    let header_text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let format = match PayloadFormat::from_content_type(header_text(header::CONTENT_TYPE)) {
        Ok(format) => format,
        Err(e) => return payload_error(shared, e),
    };
    let encoding = match ContentEncoding::from_header(header_text(header::CONTENT_ENCODING)) {
        Ok(encoding) => encoding,
        Err(e) => return payload_error(shared, e),
    };
    let limit = shared.max_payload_bytes;
    let bytes = match read_body(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return payload_error(shared, e),
    };
    let outcome = match inflate(&bytes, encoding, limit) {
        Ok(body) => match format {
            PayloadFormat::Protobuf => shared.ingest_protobuf(&body),
            PayloadFormat::Json => decode_request(&body, format).map(|request| shared.ingest(&request)),
        },
        Err(e) => Err(e),
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return payload_error(shared, e),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, format.content_type())], encode_response(&outcome.response(), format))
        .into_response()
}

async fn get_metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = metrics::render(&shared.store());
    (StatusCode::OK, [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn get_report(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.store().report()).into_response()
}

/// 403 with the reason, unless `control` lets this request change state.
fn refuse_state_change(shared: &Shared, peer: SocketAddr, headers: &HeaderMap, what: &str) -> Option<Response> {
    let refusal = control::check(peer, headers, shared.allow_remote_reset).err()?;
    tracing::warn!(%peer, "{what} {refusal}");
    Some(text(StatusCode::FORBIDDEN, format!("{what} {refusal}\n")))
}

async fn post_settle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_state_change(&shared, peer, &headers, "POST /api/settle") {
        return refused;
    }
    let settled = shared.store().settle_all();
    text(StatusCode::OK, format!("settled {settled} traces\n"))
}

async fn post_reset(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_state_change(&shared, peer, &headers, "POST /api/reset") {
        return refused;
    }
    shared.store().reset();
    text(StatusCode::OK, "reset\n".to_owned())
}

/// Looks a trace up, answering 400 for a malformed id and 404 for an unknown one.
fn find_trace(shared: &Shared, trace_id: &str) -> Result<TraceView, (StatusCode, String)> {
    let Some(id) = parse_trace_id(trace_id) else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("malformed trace id {trace_id:?}: expected 32 hex digits, not all zero"),
        ));
    };
    shared
        .store()
        .trace(id)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("trace {trace_id} is not held (never received, or evicted)")))
}

fn find_request(shared: &Shared, key: &str) -> Result<RequestView, (StatusCode, String)> {
    let store = shared.store();
    store.request(key).ok_or_else(|| {
        (StatusCode::NOT_FOUND, format!("no held trace carries {}={key:?}", store.config().business_key))
    })
}

async fn get_trace(State(shared): State<Arc<Shared>>, Path(trace_id): Path<String>) -> Response {
    match find_trace(&shared, &trace_id) {
        Ok(view) => axum::Json(view).into_response(),
        Err((status, message)) => text(status, message + "\n"),
    }
}

async fn get_trace_dump(State(shared): State<Arc<Shared>>, Path(trace_id): Path<String>) -> Response {
    match find_trace(&shared, &trace_id) {
        Ok(view) => text(StatusCode::OK, crate::view::dump_trace(&view)),
        Err((status, message)) => text(status, message + "\n"),
    }
}

async fn get_request(State(shared): State<Arc<Shared>>, Path(key): Path<String>) -> Response {
    match find_request(&shared, &key) {
        Ok(view) => axum::Json(view).into_response(),
        Err((status, message)) => text(status, message + "\n"),
    }
}

async fn get_request_dump(State(shared): State<Arc<Shared>>, Path(key): Path<String>) -> Response {
    // The store's guard must be gone before `find_request` locks it again.
    let dump = shared.store().request_dump(&key);
    match dump {
        Some(dump) => text(StatusCode::OK, dump),
        None => match find_request(&shared, &key) {
            Err((status, message)) => text(status, message + "\n"),
            Ok(_) => text(StatusCode::NOT_FOUND, String::new()),
        },
    }
}

async fn get_trace_page(State(shared): State<Arc<Shared>>, Path(trace_id): Path<String>) -> Response {
    match find_trace(&shared, &trace_id) {
        Ok(view) => Html(html::trace_page(&view)).into_response(),
        Err((status, message)) => (status, Html(html::not_found_page(&message))).into_response(),
    }
}

/// `?key=`: the form lineage's links use for the keys a browser cannot put
/// in a path (`.` and `..`); any key works.
#[derive(serde::Deserialize)]
struct KeyQuery {
    key: String,
}

/// The same for the API, with `format=dump` for the text dump.
#[derive(serde::Deserialize)]
struct ApiKeyQuery {
    key: String,
    format: Option<String>,
}

async fn get_request_by_query(State(shared): State<Arc<Shared>>, Query(query): Query<ApiKeyQuery>) -> Response {
    match query.format.as_deref() {
        None | Some("json") => get_request(State(shared), Path(query.key)).await,
        Some("dump") => get_request_dump(State(shared), Path(query.key)).await,
        Some(other) => text(StatusCode::BAD_REQUEST, format!("unknown format {other:?}: json or dump\n")),
    }
}

async fn get_request_page_by_query(State(shared): State<Arc<Shared>>, Query(query): Query<KeyQuery>) -> Response {
    get_request_page(State(shared), Path(query.key)).await
}

async fn get_request_page(State(shared): State<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let business_key = shared.business_key.clone();
    match find_request(&shared, &key) {
        Ok(view) => Html(html::request_page(&business_key, &view)).into_response(),
        Err((status, message)) => (status, Html(html::not_found_page(&message))).into_response(),
    }
}

async fn get_index(State(shared): State<Arc<Shared>>) -> Response {
    let store = shared.store();
    let report = store.report();
    Html(html::index_page(&store, &report)).into_response()
}
