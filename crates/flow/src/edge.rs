//! The edge: where a request from outside meets the first service, and a
//! trace context it presents is either continued or only linked.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::Span;

/// Who may start the gateway's traces. Built from the gateway's
/// `--trusted-origin` flags; empty, the gateway trusts nobody.
#[derive(Debug, Default)]
pub struct EdgePolicy {
    /// Origins (`http://host:port`) whose pages may continue a trace here.
    trusted_origins: Vec<String>,
    /// Contexts presented by callers the gateway did not trust.
    untrusted: AtomicU64,
}

impl EdgePolicy {
    pub fn new(trusted_origins: Vec<String>) -> EdgePolicy {
        EdgePolicy { trusted_origins, untrusted: AtomicU64::new(0) }
    }

    /// Whether the request comes from a trusted page, judged by its `Origin`.
    /// A browser sets `Origin` itself and a page cannot forge it; any other
    /// client can, so this decides which traces join, never who may call.
    pub fn trusts(&self, headers: &http::HeaderMap) -> bool {
        let Some(origin) = headers.get(http::header::ORIGIN).and_then(|origin| origin.to_str().ok()) else {
            return false;
        };
        self.trusted_origins.iter().any(|trusted| trusted == origin)
    }

    /// Counts a context the gateway linked instead of continuing; returns the
    /// count so far.
    pub fn record_untrusted(&self) -> u64 {
        self.untrusted.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Contexts linked instead of continued since the gateway started.
    pub fn untrusted(&self) -> u64 {
        self.untrusted.load(Ordering::Relaxed)
    }
}

/// Steps 0–6: the gateway is where every trace starts; it continues nothing
/// a caller presents.
pub fn continue_trace(_span: &Span, _headers: &http::HeaderMap, _policy: &EdgePolicy) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(origin: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::ORIGIN, origin.parse().unwrap());
        headers
    }

    #[test]
    fn only_listed_origins_are_trusted() {
        let policy = EdgePolicy::new(vec!["http://127.0.0.1:8080".to_owned()]);
        assert!(policy.trusts(&from("http://127.0.0.1:8080")));
        assert!(!policy.trusts(&from("http://127.0.0.1:8081")));
        assert!(!policy.trusts(&from("http://127.0.0.1:8080.evil.example")));
        assert!(!policy.trusts(&from("null")));
        assert!(!policy.trusts(&http::HeaderMap::new()));
        assert!(!EdgePolicy::default().trusts(&from("http://127.0.0.1:8080")));
        assert_eq!((policy.record_untrusted(), policy.record_untrusted(), policy.untrusted()), (1, 2, 2));
    }
}
