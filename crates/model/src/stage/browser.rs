//! What step 7's browser stage measured: who the page sent context to, and whom the gateway trusted.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What step 7's stage measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserData {
    /// The page's origin: trusted at the gateway, allowed by lineage's CORS.
    pub page_origin: String,
    /// The origins the page may propagate to (the gateway's `--propagate-to`).
    pub allowlist: Vec<String>,
    /// Orders the page tried to place, and how many the gateway accepted.
    pub orders: usize,
    pub accepted: usize,
    /// Orders whose gateway span continued the page's trace.
    pub same_origin_continued: usize,
    pub allowlisted: AllowlistedCalls,
    pub third_party: ThirdPartyCalls,
    pub allowlisted_without_cors: BlockedCalls,
    /// Calls to the allowlisted API or the third party that the page saw blocked.
    pub other_calls_blocked: usize,
    /// Servers whose URL looks like an allowed origin's, and is not one.
    pub look_alikes: Vec<LookAlikeCalls>,
    /// Orders that are one trace in lineage, from the page to the consumer.
    pub one_trace: usize,
    pub untrusted: UntrustedCallers,
    /// The page as Chromium showed it.
    pub page_screenshot: Option<PathBuf>,
}

/// Calls from the page to an allowlisted cross-origin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllowlistedCalls {
    pub requests: usize,
    pub preflights: u64,
    pub with_page_traceparent: usize,
}

/// Calls from the page to an origin not on the allowlist.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThirdPartyCalls {
    pub requests: usize,
    pub with_traceparent: usize,
}

/// Calls to an allowlisted API that does not allow the trace headers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockedCalls {
    pub preflights: u64,
    pub requests: usize,
    pub blocked_in_page: usize,
}

/// How a look-alike URL resembles an allowed origin, which names the
/// allowlist mistake that lets it match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LookAlike {
    /// The allowed origin with one more digit on its port
    /// (`http://host:9001` → `http://host:90011`): a pattern not anchored
    /// at the origin's end matches it.
    LongerPort,
    /// The allowed origin's host with a `.` replaced (`api.partner` →
    /// `api-partner`): a pattern whose `.` is not escaped matches it.
    DotReplaced,
    /// Another origin whose URL holds the allowed origin in its query: a
    /// pattern not anchored at the URL's start matches it.
    OriginInQuery,
}

/// The page's calls to one look-alike server, which answers CORS for
/// `traceparent` so that a leak reaches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookAlikeCalls {
    pub look_alike: LookAlike,
    /// The look-alike's origin, the URL the page calls there, and the
    /// allowed origin it resembles.
    pub origin: String,
    pub url: String,
    pub resembles: String,
    pub requests: usize,
    pub with_traceparent: usize,
}

/// Requests with a traceparent from outside, sent straight to the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UntrustedCallers {
    pub sent: usize,
    pub linked: usize,
    pub continued: usize,
}
