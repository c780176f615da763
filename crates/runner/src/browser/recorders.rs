//! The servers the order page calls besides the gateway, each recording the
//! `traceparent` it receives: a partner API on the propagation allowlist
//! that answers CORS for `traceparent`, the same API without that answer, a
//! third party not on the list, and three look-alikes of the partner's
//! origin that a wrong allowlist pattern matches (a longer port, a `.`
//! replaced, the origin inside another URL), which answer CORS for
//! `traceparent` so that a leak reaches them.
//!
//! The partner's origin is a name under `localhost`, which Chromium sends
//! to loopback: `api.partner.localhost` has dots a pattern must escape, and
//! its look-alike `api-partner.localhost` shares its port, told apart by
//! the `Host` header.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stitch_model::stage::browser::LookAlike;

/// The partner API's host name; Chromium resolves every `*.localhost` to loopback.
pub const PARTNER_HOST: &str = "api.partner.localhost";
/// [`PARTNER_HOST`] with its first `.` replaced.
pub const DOT_LOOK_ALIKE_HOST: &str = "api-partner.localhost";

/// How a recording server answers a page from another origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    /// On the page's allowlist, and answers the preflight for `traceparent`.
    Allowlisted,
    /// On the allowlist, but its preflight answer omits
    /// `Access-Control-Allow-Headers`: the browser must block the call.
    WithoutAllowHeaders,
    /// Not on the allowlist: any origin may read it, nothing is propagated to it.
    ThirdParty,
    /// Not on the allowlist, resembling an origin that is: answers the
    /// preflight for `traceparent`, so that what a wrong pattern sends arrives.
    LookAlike(LookAlike),
}

/// What one recording server saw.
#[derive(Debug, Default)]
pub struct Hits {
    pub preflights: u64,
    /// The `traceparent` of each request after the preflight, if any.
    pub traceparents: Vec<Option<String>>,
}

/// One destination of the page's calls.
pub struct Recorder {
    /// The name of the page's call (`--frontend-call NAME=URL`).
    pub name: &'static str,
    pub cors: Cors,
    /// `http://host:port`, as the page's URL and the `Host` header name it.
    pub origin: String,
    /// What the page requests there: `/api`, with a query for one look-alike.
    pub path: String,
    hits: Arc<Mutex<Hits>>,
}

impl Recorder {
    pub fn url(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }

    pub fn hits<T>(&self, read: impl FnOnce(&Hits) -> T) -> T {
        read(&self.hits.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn host(&self) -> &str {
        self.origin.trim_start_matches("http://")
    }
}

/// The recording servers, serving until [`Recorders::stop`].
pub struct Recorders {
    pub all: Vec<Recorder>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Recorders {
    /// Starts every recorder on loopback for a page served from `page_origin`.
    pub fn start(runtime: &tokio::runtime::Runtime, page_origin: &str) -> anyhow::Result<Recorders> {
        let (partner, longer) = runtime.block_on(partner_listeners())?;
        let (partner_port, longer_port) = (partner.local_addr()?.port(), longer.local_addr()?.port());
        let partner_origin = format!("http://{PARTNER_HOST}:{partner_port}");
        let recorder = |name, cors, origin: String, path: &str| Recorder {
            name,
            cors,
            origin,
            path: path.to_owned(),
            hits: Arc::default(),
        };
        let loopback = |listener: &tokio::net::TcpListener| -> anyhow::Result<String> {
            Ok(format!("http://{}", listener.local_addr()?))
        };
        let bind = || runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"));
        let (without_cors, third_party, in_query) = (bind()?, bind()?, bind()?);
        let mut listeners = vec![
            (
                partner,
                vec![
                    recorder("partner", Cors::Allowlisted, partner_origin.clone(), "/api"),
                    recorder(
                        "look-alike-dot",
                        Cors::LookAlike(LookAlike::DotReplaced),
                        format!("http://{DOT_LOOK_ALIKE_HOST}:{partner_port}"),
                        "/api",
                    ),
                ],
            ),
            (
                longer,
                vec![recorder(
                    "look-alike-port",
                    Cors::LookAlike(LookAlike::LongerPort),
                    format!("http://{PARTNER_HOST}:{longer_port}"),
                    "/api",
                )],
            ),
        ];
        let without_cors_origin = loopback(&without_cors)?;
        let third_party_origin = loopback(&third_party)?;
        let in_query_origin = loopback(&in_query)?;
        listeners.push((
            without_cors,
            vec![recorder("partner-without-cors", Cors::WithoutAllowHeaders, without_cors_origin, "/api")],
        ));
        listeners.push((third_party, vec![recorder("third-party", Cors::ThirdParty, third_party_origin, "/api")]));
        listeners.push((
            in_query,
            vec![recorder(
                "look-alike-query",
                Cors::LookAlike(LookAlike::OriginInQuery),
                in_query_origin,
                &format!("/api?from={partner_origin}"),
            )],
        ));

        let mut recorders = Recorders { all: Vec::new(), servers: Vec::new() };
        for (listener, on_it) in listeners {
            let routes: Vec<Route> = on_it
                .iter()
                .map(|recorder| Route {
                    host: recorder.host().to_owned(),
                    cors: recorder.cors,
                    hits: recorder.hits.clone(),
                })
                .collect();
            let state = Arc::new(ServerState { page_origin: page_origin.to_owned(), routes });
            let app = axum::Router::new().fallback(record).with_state(state);
            recorders.servers.push(runtime.spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
            recorders.all.extend(on_it);
        }
        Ok(recorders)
    }

    /// The recorder of a kind; every kind starts in [`Recorders::start`].
    pub fn of(&self, cors: Cors) -> &Recorder {
        self.all.iter().find(|recorder| recorder.cors == cors).expect("every kind of recorder starts")
    }

    pub fn stop(&mut self) {
        for server in self.servers.drain(..) {
            server.abort();
        }
    }
}

/// Ports in the partner's range that a browser refuses to fetch from (the
/// Fetch standard's "bad ports"): a partner there would never be called.
/// Its look-alike's port, above 10240, is past the list's last entry (10080).
const BAD_PORTS: [u16; 5] = [1719, 1720, 1723, 2049, 3659];

/// A port `p` for the partner and one for its look-alike whose digits are
/// `p`'s and one more (`1901` → `19013`), both bound on 127.0.0.1. Below the
/// kernel's ephemeral range, where `p × 10 + d` still is a port.
async fn partner_listeners() -> anyhow::Result<(tokio::net::TcpListener, tokio::net::TcpListener)> {
    for _ in 0..200 {
        let port = fastrand::u16(1024..3270);
        if BAD_PORTS.contains(&port) {
            continue;
        }
        let Ok(partner) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else { continue };
        for digit in 0..10 {
            if let Ok(longer) = tokio::net::TcpListener::bind(("127.0.0.1", port * 10 + digit)).await {
                return Ok((partner, longer));
            }
        }
    }
    anyhow::bail!(
        "no free pair of ports p and p×10+d on 127.0.0.1 (p in 1024..3270) after 200 tries, for the partner API and \
         its look-alike"
    )
}

/// Who answers on one listener, by the `Host` header the browser sends.
struct Route {
    host: String,
    cors: Cors,
    hits: Arc<Mutex<Hits>>,
}

struct ServerState {
    page_origin: String,
    routes: Vec<Route>,
}

/// Every request to a recording server: answer CORS as its kind does, and
/// write down the `traceparent` it carried (as sent, even if not UTF-8).
async fn record(State(state): State<Arc<ServerState>>, method: Method, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned());
    let Some(route) = state.routes.iter().find(|route| Some(&route.host) == host.as_ref()) else {
        return (StatusCode::MISDIRECTED_REQUEST, format!("no recorder for Host {host:?}")).into_response();
    };
    let page_origin = state.page_origin.as_str();
    let from_page = headers.get(header::ORIGIN).is_some_and(|origin| origin == page_origin);
    let mut hits = route.hits.lock().unwrap_or_else(PoisonError::into_inner);
    let mut response = if method == Method::OPTIONS {
        hits.preflights += 1;
        StatusCode::NO_CONTENT.into_response()
    } else {
        let traceparent =
            headers.get("traceparent").map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        hits.traceparents.push(traceparent);
        ([(header::CONTENT_TYPE, "application/json")], "{\"ok\":true}").into_response()
    };
    let allow = response.headers_mut();
    match route.cors {
        Cors::ThirdParty => {
            allow.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        Cors::Allowlisted | Cors::WithoutAllowHeaders | Cors::LookAlike(_) if from_page => {
            allow.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_str(page_origin).expect("an origin"));
            allow.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"));
            if route.cors != Cors::WithoutAllowHeaders {
                allow.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("traceparent, tracestate"));
            }
            allow.insert(header::VARY, HeaderValue::from_static("origin"));
        }
        // Another origin gets no CORS answer: its browser blocks the call.
        Cors::Allowlisted | Cors::WithoutAllowHeaders | Cors::LookAlike(_) => {}
    }
    response
}
