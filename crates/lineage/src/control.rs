//! Who may change lineage's state over HTTP (`POST /api/reset`,
//! `POST /api/settle`): a client on lineage's own host, talking to it
//! directly, unless [`Config::allow_remote_reset`](crate::Config) says
//! otherwise; never a web page. Ingestion is not state in this sense: any
//! sender may export spans.

use std::fmt;
use std::net::SocketAddr;

use axum::http::{HeaderMap, header};

/// The command-line flag that lifts the loopback rule.
pub(crate) const ALLOW_REMOTE_FLAG: &str = "--allow-remote-reset";

/// Why a state-changing request was refused; its text is the 403's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotLoopback {
        peer: SocketAddr,
    },
    /// A proxy on lineage's host forwarded it: the sender may be anywhere.
    Forwarded {
        peer: SocketAddr,
    },
    /// Browsers send `Origin` with every POST; lineage's pages send none,
    /// so such a request comes from another site's page.
    WebPage {
        origin: String,
    },
}

/// `Ok` when the request may change state.
pub(crate) fn check(peer: SocketAddr, headers: &HeaderMap, allow_remote: bool) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return Err(Refusal::WebPage { origin: String::from_utf8_lossy(origin.as_bytes()).into_owned() });
    }
    if allow_remote {
        return Ok(());
    }
    // An IPv4 peer of a dual-stack socket shows as ::ffff:127.0.0.1.
    if !peer.ip().to_canonical().is_loopback() {
        return Err(Refusal::NotLoopback { peer });
    }
    if headers.contains_key(header::FORWARDED) || headers.contains_key("x-forwarded-for") {
        return Err(Refusal::Forwarded { peer });
    }
    Ok(())
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotLoopback { peer } => write!(
                f,
                "refused: {} is not a loopback address; lineage resets and settles only for a client on \
                 its own host, unless started with {ALLOW_REMOTE_FLAG}",
                peer.ip()
            ),
            Refusal::Forwarded { peer } => write!(
                f,
                "refused: the request came through a proxy at {} (Forwarded or X-Forwarded-For), so its \
                 sender may be on another host; lineage resets and settles only for a client on its own \
                 host, unless started with {ALLOW_REMOTE_FLAG}",
                peer.ip()
            ),
            Refusal::WebPage { origin } => write!(
                f,
                "refused: sent by a web page (Origin: {origin}); lineage's own pages change nothing, so no \
                 page may reset or settle it, whatever the flags (use curl or a script)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn peer(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_only_unless_allowed() {
        let none = HeaderMap::new();
        assert_eq!(check(peer("127.0.0.1:5000"), &none, false), Ok(()));
        assert_eq!(check(peer("127.8.9.10:5000"), &none, false), Ok(()));
        assert_eq!(check(peer("[::1]:5000"), &none, false), Ok(()));
        assert_eq!(check(peer("[::ffff:127.0.0.1]:5000"), &none, false), Ok(()));
        for remote in ["10.0.0.2:5000", "192.0.2.7:80", "[::ffff:10.0.0.2]:5000", "[fd00::2]:5000"] {
            assert_eq!(check(peer(remote), &none, false), Err(Refusal::NotLoopback { peer: peer(remote) }));
            assert_eq!(check(peer(remote), &none, true), Ok(()));
        }
        let refusal = check(peer("10.0.0.2:5000"), &none, false).unwrap_err().to_string();
        assert!(refusal.contains("10.0.0.2 is not a loopback address"), "{refusal}");
        assert!(refusal.contains("--allow-remote-reset"), "{refusal}");
    }

    #[test]
    fn proxies_and_pages_are_refused() {
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert!(matches!(check(peer("127.0.0.1:5000"), &forwarded, false), Err(Refusal::Forwarded { .. })));
        assert_eq!(check(peer("127.0.0.1:5000"), &forwarded, true), Ok(()));

        let mut page = HeaderMap::new();
        page.insert(header::ORIGIN, HeaderValue::from_static("http://attacker.example"));
        for allow in [false, true] {
            let refusal = check(peer("127.0.0.1:5000"), &page, allow).unwrap_err();
            assert_eq!(refusal, Refusal::WebPage { origin: "http://attacker.example".to_owned() });
        }
    }
}
