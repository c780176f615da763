//! What step 7's browser stage measured: who the page sent context to, and whom the gateway trusted.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What step 7's stage measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserData {
    /// Orders the page tried to place, and how many the gateway accepted.
    pub orders: usize,
    pub accepted: usize,
    /// Orders whose gateway span continued the page's trace.
    pub same_origin_continued: usize,
    pub allowlisted: AllowlistedCalls,
    pub third_party: ThirdPartyCalls,
    pub allowlisted_without_cors: BlockedCalls,
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

/// Requests with a traceparent from outside, sent straight to the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UntrustedCallers {
    pub sent: usize,
    pub linked: usize,
    pub continued: usize,
}
