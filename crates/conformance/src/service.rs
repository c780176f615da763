//! The test-service contract: `POST /test` with a JSON list of calls to make,
//! each call's `arguments` sent as the JSON body to its `url`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};
use tower_http::trace::TraceLayer;

/// Where the suite sends its test cases.
pub const PATH: &str = "/test";

/// One item of the list the suite sends.
#[derive(Debug, Deserialize)]
pub struct Call {
    /// Where to POST.
    pub url: String,
    /// The JSON body to POST there (the suite nests further calls in it).
    pub arguments: serde_json::Value,
}

/// What happened to one call, in the order they were made.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub url: String,
    /// The callee's status; absent when no response came back.
    pub status: Option<u16>,
    /// Why no response came back.
    pub error: Option<String>,
}

/// The service: one route, its requests in a server span that continues the
/// caller's trace.
pub fn router() -> Router {
    Router::new()
        .route(PATH, post(run_calls))
        .with_state(step_01_http_solution::http::client())
        .layer(TraceLayer::new_for_http().make_span_with(crate::inbound::request_span))
}

/// Serves `router()` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router()).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Parses the whole list before calling anything, so a bad item never leaves
/// half of a test case done.
pub fn parse_calls(body: &[u8]) -> Result<Vec<Call>, String> {
    let calls: Vec<Call> = serde_json::from_slice(body).map_err(|err| {
        format!("the body must be a JSON list of {{\"url\": \"http://…\", \"arguments\": […]}}: {err}")
    })?;
    for (index, call) in calls.iter().enumerate() {
        let url = reqwest::Url::parse(&call.url).map_err(|err| format!("item {index}: url {:?}: {err}", call.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("item {index}: url {:?} is not http(s)", call.url));
        }
    }
    Ok(calls)
}

/// 200 when every call got a response, 502 when one did not; the body lists
/// each call's outcome.
async fn run_calls(State(client): State<ClientWithMiddleware>, body: Bytes) -> Response {
    let calls = match parse_calls(&body) {
        Ok(calls) => calls,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    let mut outcomes = Vec::with_capacity(calls.len());
    for call in calls {
        let outcome = match client.post(&call.url).json(&call.arguments).send().await {
            Ok(response) => Outcome { url: call.url, status: Some(response.status().as_u16()), error: None },
            Err(err) => {
                tracing::warn!(url = %call.url, error = %err, "a call failed");
                Outcome { url: call.url, status: None, error: Some(format!("{err:#}")) }
            }
        };
        outcomes.push(outcome);
    }
    let status =
        if outcomes.iter().all(|outcome| outcome.error.is_none()) { StatusCode::OK } else { StatusCode::BAD_GATEWAY };
    (status, axum::Json(outcomes)).into_response()
}
