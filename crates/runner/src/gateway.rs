//! The gateway as the harness calls it: one client, one way to place an
//! order and read back what the gateway accepted.

use std::time::Duration;

use anyhow::{Context as _, bail};

use stitch_model::Order;

/// The client every order is posted with.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build()
}

/// Sends `request` (a POST to `/orders` or `/batches`, with whatever query
/// and headers the caller added) and reads back the order the gateway
/// accepted; the error says what it answered instead.
pub async fn place(request: reqwest::RequestBuilder) -> anyhow::Result<Order> {
    let response = request.send().await.context("gateway unreachable")?;
    let status = response.status();
    if !status.is_success() {
        let body = match response.text().await {
            Ok(body) => body,
            Err(err) => format!("(its body could not be read: {err})"),
        };
        bail!("gateway answered {status}: {body}");
    }
    response.json::<Order>().await.context("gateway answered something that is not an order")
}
