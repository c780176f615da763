//! The W3C Trace Context rules for `traceparent`, written out on their own
//! as the reference the fuzz judges the flow against (not the SDK's parser,
//! which is what is being judged).

/// What a valid `traceparent` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traceparent {
    pub trace_id: String,
    /// Flag bit 0: the caller records the trace. A service that respects it
    /// records nothing of a continued trace without it.
    pub sampled: bool,
}

/// What `value` carries when it is a valid `traceparent`: version
/// two lowercase hex digits other than `ff`; version `00` exactly 55
/// characters; a later version at least 55, any rest after a `-`; trace id
/// 32 and parent id 16 lowercase hex digits, neither all zeros; flags two
/// lowercase hex digits.
pub fn traceparent(value: &[u8]) -> Option<Traceparent> {
    let text = std::str::from_utf8(value).ok()?;
    if text.len() < 55 || !text.is_ascii() {
        return None;
    }
    let bytes = text.as_bytes();
    let (version, trace_id, parent_id, flags) = (&text[0..2], &text[3..35], &text[36..52], &text[53..55]);
    let dashes = bytes[2] == b'-' && bytes[35] == b'-' && bytes[52] == b'-';
    let lower_hex = |field: &str| field.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    let all_zero = |field: &str| field.bytes().all(|byte| byte == b'0');
    let valid = dashes
        && [version, trace_id, parent_id, flags].into_iter().all(lower_hex)
        && version != "ff"
        && match version {
            "00" => text.len() == 55,
            _ => text.len() == 55 || bytes[55] == b'-',
        }
        && !all_zero(trace_id)
        && !all_zero(parent_id);
    let sampled = u8::from_str_radix(flags, 16).is_ok_and(|flags| flags & 1 == 1);
    valid.then(|| Traceparent { trace_id: trace_id.to_owned(), sampled })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_is_valid() {
        let parent = |trace_id: &str, sampled| Some(Traceparent { trace_id: trace_id.to_owned(), sampled });
        assert_eq!(traceparent(VALID.as_bytes()), parent(TRACE, true));
        assert_eq!(traceparent(VALID.replace("-01", "-00").as_bytes()), parent(TRACE, false));
        assert_eq!(traceparent(VALID.replace("-01", "-ff").as_bytes()), parent(TRACE, true), "unknown flags are kept");
    }

    #[test]
    fn later_versions_may_carry_more_after_a_dash() {
        let future = VALID.replacen("00", "cc", 1);
        assert!(traceparent(future.as_bytes()).is_some());
        assert!(traceparent(format!("{future}-what-comes-next").as_bytes()).is_some());
        assert!(traceparent(format!("{future}x").as_bytes()).is_none());
        assert!(traceparent(format!("{VALID}-extra").as_bytes()).is_none(), "version 00 has no rest");
    }

    #[test]
    fn what_the_spec_forbids_is_invalid() {
        let invalid = [
            VALID.replacen("00", "ff", 1),
            VALID.to_uppercase(),
            VALID.replace(TRACE, &"0".repeat(32)),
            VALID.replace("00f067aa0ba902b7", &"0".repeat(16)),
            VALID.replace("4bf9", "4bg9"),
            VALID[..54].to_owned(),
            VALID.replace("-01", "-1"),
            VALID.replacen('-', "_", 1),
            String::new(),
        ];
        for value in invalid {
            assert_eq!(traceparent(value.as_bytes()), None, "{value:?}");
        }
        assert_eq!(traceparent(&[0xff; 55]), None);
    }
}
