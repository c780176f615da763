//! Step 7's judge: the page propagates to its own origin and to allowlisted
//! APIs that allow the header, to no one else (a third party, a look-alike
//! of an allowed origin); the gateway continues its page's trace and only
//! links a caller it does not trust.

use stitch_model::stage::browser::{BrowserData, LookAlike, LookAlikeCalls};

use super::{Claim, StageVerdict, ratio};

/// Judges what the browser stage measured.
pub fn judge(data: &BrowserData) -> StageVerdict {
    let n = data.orders;
    let allowlisted = &data.allowlisted;
    let third_party = &data.third_party;
    let blocked = &data.allowlisted_without_cors;
    let untrusted = &data.untrusted;
    let claims = vec![
        Claim::new("the page placed every order", ratio(data.accepted, n), data.accepted == n && n > 0),
        Claim::new(
            "same origin: the gateway continues the page's trace",
            ratio(data.same_origin_continued, n),
            data.same_origin_continued == n,
        ),
        Claim::new(
            "allowlisted API receives the page's traceparent",
            ratio(allowlisted.with_page_traceparent, n),
            allowlisted.with_page_traceparent == n && allowlisted.requests == n && allowlisted.preflights > 0,
        ),
        Claim::new(
            "third party (not allowlisted) receives a traceparent",
            ratio(third_party.with_traceparent, third_party.requests),
            third_party.with_traceparent == 0 && third_party.requests == n,
        ),
        look_alike_claim(&data.look_alikes, n),
        Claim::new(
            "allowlisted API without Access-Control-Allow-Headers: the browser blocks the call",
            format!("{}, {} reached it", ratio(blocked.blocked_in_page, n), blocked.requests),
            blocked.blocked_in_page == n && blocked.requests == 0 && data.other_calls_blocked == 0,
        ),
        Claim::new(
            "browser → gateway → worker → deferred → consumer is one trace",
            ratio(data.one_trace, n),
            data.one_trace == n,
        ),
        Claim::new(
            "untrusted caller's context: linked at the gateway, never continued",
            format!("{} linked, {} continued", ratio(untrusted.linked, untrusted.sent), untrusted.continued),
            untrusted.sent > 0 && untrusted.linked == untrusted.sent && untrusted.continued == 0,
        ),
    ];
    let notes = vec![
        format!("page origin {} (trusted at the gateway, allowed by lineage's CORS)", data.page_origin),
        format!(
            "{n} orders placed in Chromium, {} untrusted callers; the propagation allowlist holds {} origins",
            untrusted.sent,
            data.allowlist.len()
        ),
        format!(
            "look-alikes of an allowed origin the page calls too: {}",
            data.look_alikes.iter().map(|calls| calls.url.as_str()).collect::<Vec<_>>().join(", ")
        ),
    ];
    StageVerdict { claims, notes }
}

/// The allowlist mistake a look-alike that received the page's context reveals.
fn mistake(look_alike: LookAlike) -> &'static str {
    match look_alike {
        LookAlike::LongerPort => "the allowlist pattern is unanchored (it matches past the origin's end)",
        LookAlike::DotReplaced => "its `.` is unescaped (a `.` in a RegExp matches any character)",
        LookAlike::OriginInQuery => "a substring match (the pattern is not anchored at the URL's start)",
    }
}

/// No look-alike of an allowed origin gets the page's `traceparent`; each
/// one that does names the mistake that let it match. A look-alike the page
/// could not reach fails too: it was not tested.
fn look_alike_claim(look_alikes: &[LookAlikeCalls], orders: usize) -> Claim {
    let requests: usize = look_alikes.iter().map(|calls| calls.requests).sum();
    let with: usize = look_alikes.iter().map(|calls| calls.with_traceparent).sum();
    let mut problems = Vec::new();
    for calls in look_alikes {
        if calls.with_traceparent > 0 {
            problems.push(format!(
                "the page sent traceparent to a look-alike origin {} ({}): {}",
                calls.origin,
                ratio(calls.with_traceparent, calls.requests),
                mistake(calls.look_alike)
            ));
        } else if calls.requests != orders {
            problems.push(format!(
                "the look-alike {} received {} of {orders} calls: the check could not test it",
                calls.url, calls.requests
            ));
        }
    }
    if look_alikes.is_empty() {
        problems.push("no look-alike was called: the check could not test the allowlist's patterns".to_owned());
    }
    let measured = if problems.is_empty() { ratio(with, requests) } else { problems.join("; ") };
    Claim::new("look-alikes of an allowlisted origin receive a traceparent", measured, problems.is_empty())
}

#[cfg(test)]
mod tests {
    use stitch_model::fixtures::stages;

    use super::*;
    use crate::stage::testing::{all_pass, claim, only_failure};

    const LOOK_ALIKES: &str = "look-alikes of an allowlisted origin receive a traceparent";

    /// What a page whose allowlist lets `leaks` match sends to the look-alikes.
    fn leaking(leaks: &[LookAlike]) -> BrowserData {
        let mut data = stages::browser();
        for calls in &mut data.look_alikes {
            if leaks.contains(&calls.look_alike) {
                calls.with_traceparent = calls.requests;
            }
        }
        data
    }

    #[test]
    fn a_page_that_propagates_where_it_should_passes() {
        let verdict = judge(&stages::browser());
        all_pass(&verdict);
        assert_eq!(verdict.claims.len(), 8);
        assert_eq!(claim(&verdict, LOOK_ALIKES).measured, "0/600");
        assert_eq!(
            verdict.notes[..2],
            [
                "page origin http://127.0.0.1:20332 (trusted at the gateway, allowed by lineage's CORS)",
                "200 orders placed in Chromium, 200 untrusted callers; the propagation allowlist holds 2 origins",
            ]
        );
    }

    #[test]
    fn orders_the_page_did_not_place_fail() {
        let mut data = stages::browser();
        data.accepted = 190;
        assert_eq!(only_failure(&judge(&data), "the page placed every order"), "190/200");
        // A page that placed nothing cannot pass.
        let mut data = stages::browser();
        (data.orders, data.accepted, data.same_origin_continued, data.one_trace) = (0, 0, 0, 0);
        data.allowlisted =
            stitch_model::stage::browser::AllowlistedCalls { requests: 0, preflights: 1, with_page_traceparent: 0 };
        data.third_party.requests = 0;
        data.allowlisted_without_cors.blocked_in_page = 0;
        for calls in &mut data.look_alikes {
            calls.requests = 0;
        }
        only_failure(&judge(&data), "the page placed every order");
    }

    #[test]
    fn a_gateway_that_does_not_continue_its_page_fails() {
        let mut data = stages::browser();
        data.same_origin_continued = 0;
        assert_eq!(only_failure(&judge(&data), "same origin: the gateway continues the page's trace"), "0/200");
    }

    #[test]
    fn an_allowlisted_api_without_the_context_fails() {
        let mut data = stages::browser();
        data.allowlisted.with_page_traceparent = 0;
        assert_eq!(only_failure(&judge(&data), "allowlisted API receives the page's traceparent"), "0/200");
        // Without a preflight the header was never asked for.
        let mut data = stages::browser();
        data.allowlisted.preflights = 0;
        only_failure(&judge(&data), "allowlisted API receives the page's traceparent");
    }

    #[test]
    fn a_third_party_with_the_context_fails() {
        let mut data = stages::browser();
        data.third_party.with_traceparent = 200;
        assert_eq!(only_failure(&judge(&data), "third party (not allowlisted) receives a traceparent"), "200/200");
        let mut data = stages::browser();
        data.third_party.requests = 0;
        assert_eq!(only_failure(&judge(&data), "third party (not allowlisted)"), "0/0");
    }

    #[test]
    fn an_unanchored_pattern_is_named_by_the_longer_port() {
        let verdict = judge(&leaking(&[LookAlike::LongerPort]));
        assert_eq!(
            only_failure(&verdict, LOOK_ALIKES),
            "the page sent traceparent to a look-alike origin http://api.partner.localhost:19013 (200/200): the \
             allowlist pattern is unanchored (it matches past the origin's end)"
        );
    }

    #[test]
    fn an_unescaped_dot_is_named_by_the_replaced_dot() {
        let verdict = judge(&leaking(&[LookAlike::DotReplaced]));
        assert_eq!(
            only_failure(&verdict, LOOK_ALIKES),
            "the page sent traceparent to a look-alike origin http://api-partner.localhost:1901 (200/200): its `.` \
             is unescaped (a `.` in a RegExp matches any character)"
        );
    }

    #[test]
    fn a_substring_match_is_named_by_the_origin_in_the_query() {
        let verdict = judge(&leaking(&[LookAlike::LongerPort, LookAlike::OriginInQuery]));
        let measured = only_failure(&verdict, LOOK_ALIKES);
        assert!(measured.contains("the allowlist pattern is unanchored"), "{measured}");
        assert!(
            measured.ends_with(
                "; the page sent traceparent to a look-alike origin http://127.0.0.1:20500 (200/200): a substring \
                 match (the pattern is not anchored at the URL's start)"
            ),
            "{measured}"
        );
    }

    #[test]
    fn a_look_alike_the_page_could_not_reach_was_not_tested() {
        let mut data = stages::browser();
        data.look_alikes[1].requests = 0;
        assert_eq!(
            only_failure(&judge(&data), LOOK_ALIKES),
            "the look-alike http://api-partner.localhost:1901/api received 0 of 200 calls: the check could not test it"
        );
        let mut data = stages::browser();
        data.look_alikes.clear();
        assert_eq!(
            only_failure(&judge(&data), LOOK_ALIKES),
            "no look-alike was called: the check could not test the allowlist's patterns"
        );
    }

    #[test]
    fn an_api_that_does_not_allow_the_header_must_be_blocked() {
        let mut data = stages::browser();
        (data.allowlisted_without_cors.blocked_in_page, data.allowlisted_without_cors.requests) = (0, 200);
        let measured = only_failure(&judge(&data), "allowlisted API without Access-Control-Allow-Headers");
        assert_eq!(measured, "0/200, 200 reached it");
        // A block elsewhere is not the lesson's.
        let mut data = stages::browser();
        data.other_calls_blocked = 3;
        only_failure(&judge(&data), "allowlisted API without Access-Control-Allow-Headers");
    }

    #[test]
    fn an_order_in_pieces_fails() {
        let mut data = stages::browser();
        data.one_trace = 0;
        assert_eq!(only_failure(&judge(&data), "browser → gateway → worker → deferred → consumer"), "0/200");
    }

    #[test]
    fn an_untrusted_context_continued_or_not_linked_fails() {
        let mut data = stages::browser();
        (data.untrusted.linked, data.untrusted.continued) = (0, 200);
        let measured = only_failure(&judge(&data), "untrusted caller's context: linked at the gateway");
        assert_eq!(measured, "0/200 linked, 200 continued");
        let mut data = stages::browser();
        (data.untrusted.sent, data.untrusted.linked) = (0, 0);
        only_failure(&judge(&data), "untrusted caller's context");
    }
}
