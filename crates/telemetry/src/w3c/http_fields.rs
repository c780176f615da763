//! An HTTP request's trace context fields as the propagator must see them.
//!
//! opentelemetry-http's `HeaderExtractor` skips a value that is not visible
//! ASCII, in `get` and in `get_all` alike: of two `traceparent` fields, one of
//! them unreadable, the propagator would see one valid field and continue
//! it. The services' servers hand the propagator [`readable`]'s map instead.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue};

/// What stands for a value that is not visible ASCII: the propagator knows
/// it, and no rule of the grammar accepts it.
pub const UNREADABLE: &str = "(a value that is not visible ASCII)";

const FIELDS: [&str; 2] = ["traceparent", "tracestate"];

/// `headers`, every `traceparent` and `tracestate` value that is not
/// visible ASCII replaced by [`UNREADABLE`], in place. Borrowed, with no
/// copy, when there is none.
pub fn readable(headers: &HeaderMap) -> Cow<'_, HeaderMap> {
    let unreadable = |name| headers.get_all(name).iter().any(|value| value.to_str().is_err());
    if !FIELDS.into_iter().any(unreadable) {
        return Cow::Borrowed(headers);
    }
    let mut copy = headers.clone();
    for name in FIELDS {
        let values: Vec<HeaderValue> = headers
            .get_all(name)
            .iter()
            .map(|value| match value.to_str() {
                Ok(_) => value.clone(),
                Err(_) => HeaderValue::from_static(UNREADABLE),
            })
            .collect();
        copy.remove(name);
        for value in values {
            copy.append(name, value);
        }
    }
    Cow::Owned(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn readable_fields_are_not_copied() {
        let mut headers = HeaderMap::new();
        headers.append("traceparent", HeaderValue::from_static(VALID));
        headers.append("other", HeaderValue::from_bytes(b"\xff").expect("a value"));
        assert!(matches!(readable(&headers), Cow::Borrowed(_)));
    }

    #[test]
    fn an_unreadable_value_keeps_its_place() {
        let mut headers = HeaderMap::new();
        headers.append("traceparent", HeaderValue::from_bytes(b"00-\xff").expect("a value"));
        headers.append("traceparent", HeaderValue::from_static(VALID));
        headers.append("tracestate", HeaderValue::from_static("foo=1"));
        headers.append("tracestate", HeaderValue::from_bytes(b"bar=\xfe").expect("a value"));
        let shown = readable(&headers);
        let values =
            |name| shown.get_all(name).iter().map(|value| value.to_str().expect("readable")).collect::<Vec<_>>();
        assert_eq!(values("traceparent"), [UNREADABLE, VALID]);
        assert_eq!(values("tracestate"), ["foo=1", UNREADABLE]);
    }
}
