//! The paths lineage's pages link to. A business key may hold anything, so
//! it is percent-encoded wherever it goes into a path or a query.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A browser resolves a `.` or `..` path segment, percent-encoded or not,
/// before it sends the request: those keys go in the query instead.
fn is_dot_segment(key: &str) -> bool {
    matches!(key, "." | "..")
}

pub(crate) fn request_page(key: &str) -> String {
    if is_dot_segment(key) { format!("/requests?key={}", encode(key)) } else { format!("/requests/{}", encode(key)) }
}

pub(crate) fn request_json(key: &str) -> String {
    if is_dot_segment(key) {
        format!("/api/requests?key={}", encode(key))
    } else {
        format!("/api/requests/{}", encode(key))
    }
}

pub(crate) fn request_dump(key: &str) -> String {
    if is_dot_segment(key) {
        format!("/api/requests?key={}&format=dump", encode(key))
    } else {
        format!("/api/requests/{}/dump", encode(key))
    }
}

pub(crate) fn trace_page(trace_id: &str) -> String {
    format!("/traces/{}", encode(trace_id))
}

pub(crate) fn trace_json(trace_id: &str) -> String {
    format!("/api/traces/{}", encode(trace_id))
}

pub(crate) fn trace_dump(trace_id: &str) -> String {
    format!("/api/traces/{}/dump", encode(trace_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_and_dot_segments_go_in_the_query() {
        assert_eq!(request_page("1001"), "/requests/1001");
        assert_eq!(request_page("a/b?c#d e"), "/requests/a%2Fb%3Fc%23d%20e");
        assert_eq!(request_page("javascript:alert(1)"), "/requests/javascript%3Aalert%281%29");
        assert_eq!(request_page("%2e%2e"), "/requests/%252e%252e");
        assert_eq!(request_page(".."), "/requests?key=..");
        assert_eq!(request_dump("."), "/api/requests?key=.&format=dump");
        assert_eq!(request_dump("é"), "/api/requests/%C3%A9/dump");
    }
}
