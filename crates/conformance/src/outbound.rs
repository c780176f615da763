//! The client side of the hop: the flow's client, whose middleware opens a
//! CLIENT span per request and injects it with the global propagator.

use reqwest_middleware::ClientWithMiddleware;

/// The client every callback is sent with.
pub fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .build()
}
