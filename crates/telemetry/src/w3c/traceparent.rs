//! One `traceparent` value against the W3C grammar
//! (<https://www.w3.org/TR/trace-context-2/#traceparent-header>): the fields
//! it carries, or the first rule it breaks.
//!
//! Positional, as the spec's rules for a later version read: version at 0,
//! trace-id at 3, parent-id at 36, flags at 53. Every field is checked for
//! its exact length and for lowercase hex, so a sign, a short id or an
//! upper-case version never reach a number parser.

use super::violation::Violation;

/// What a valid traceparent carries, as version 00 defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent<'a> {
    pub version: u8,
    pub trace_id: &'a str,
    pub parent_id: &'a str,
    /// All eight bits as received; the propagator keeps the ones it knows.
    pub flags: u8,
}

/// `version "-" trace-id "-" parent-id "-" trace-flags`: where version 00 ends.
pub const VERSION_00_LENGTH: usize = 55;

/// Parses `value`, OWS around it ignored (RFC 9110 §5.5: it is not part of
/// a field value).
pub fn parse(value: &str) -> Result<Traceparent<'_>, Violation> {
    let value = value.trim_matches([' ', '\t']);
    let bytes = value.as_bytes();
    let version = hex_field(bytes, 0, 2, true).ok_or(Violation::VersionFormat)?;
    if version == "ff" {
        return Err(Violation::VersionFf);
    }
    let trace_id = hex_field(bytes, 3, 32, true).ok_or(Violation::TraceIdFormat)?;
    let parent_id = hex_field(bytes, 36, 16, true).ok_or(Violation::ParentIdFormat)?;
    let flags = hex_field(bytes, 53, 2, false).ok_or(Violation::TraceFlagsFormat)?;
    let version = u8::from_str_radix(version, 16).map_err(|_| Violation::VersionFormat)?;
    match bytes.get(VERSION_00_LENGTH) {
        None => {}
        Some(b',') => return Err(Violation::TraceparentCombined),
        Some(_) if version == 0 => return Err(Violation::Version00TrailingData),
        Some(b'-') => {}
        Some(_) => return Err(Violation::FutureVersionFlagsNotDelimited),
    }
    if all_zero(trace_id) {
        return Err(Violation::TraceIdAllZero);
    }
    if all_zero(parent_id) {
        return Err(Violation::ParentIdAllZero);
    }
    let flags = u8::from_str_radix(flags, 16).map_err(|_| Violation::TraceFlagsFormat)?;
    Ok(Traceparent { version, trace_id, parent_id, flags })
}

/// `len` lowercase hex digits at `start`, followed by `-` when `dash`.
fn hex_field(bytes: &[u8], start: usize, len: usize, dash: bool) -> Option<&str> {
    let field = bytes.get(start..start + len)?;
    if !field.iter().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    if dash && bytes.get(start + len) != Some(&b'-') {
        return None;
    }
    // Only ASCII digits and letters: always UTF-8.
    std::str::from_utf8(field).ok()
}

fn all_zero(field: &str) -> bool {
    field.bytes().all(|byte| byte == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";
    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn broken(value: &str) -> Violation {
        parse(value).expect_err(value)
    }

    #[test]
    fn the_specs_examples_parse() {
        let parsed = parse(VALID).expect("valid");
        assert_eq!(parsed, Traceparent { version: 0, trace_id: TRACE, parent_id: PARENT, flags: 1 });
        assert_eq!(parse(&VALID.replace("-01", "-00")).expect("unsampled").flags, 0);
        assert_eq!(parse(&VALID.replace("-01", "-ff")).expect("unknown flags").flags, 0xff);
        assert_eq!(parse(&format!(" \t{VALID}\t ")).expect("OWS around it"), parse(VALID).expect("valid"));
    }

    #[test]
    fn a_later_version_parses_as_far_as_version_00_goes() {
        let future = VALID.replacen("00", "cc", 1);
        assert_eq!(parse(&future).expect("cc").version, 0xcc);
        assert_eq!(parse(&format!("{future}-what-the-future-will-be-like")).expect("more fields").trace_id, TRACE);
        assert_eq!(
            broken(&format!("{future}.what-the-future-will-be-like")),
            Violation::FutureVersionFlagsNotDelimited
        );
        assert_eq!(broken(&future[..54]), Violation::TraceFlagsFormat, "shorter than 55 characters");
    }

    #[test]
    fn each_field_is_checked_for_length_case_and_hex() {
        let cases = [
            ("", Violation::VersionFormat),
            ("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Violation::VersionFormat),
            ("000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Violation::VersionFormat),
            ("CC-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Violation::VersionFormat),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Violation::VersionFf),
            ("00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Violation::TraceIdFormat),
            ("00-bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Violation::TraceIdFormat),
            ("00-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Violation::TraceIdFormat),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", Violation::TraceIdFormat),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01", Violation::ParentIdFormat),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0f067aa0ba902b7-01", Violation::ParentIdFormat),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-000f067aa0ba902b7-01", Violation::ParentIdFormat),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1", Violation::TraceFlagsFormat),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", Violation::TraceFlagsFormat),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", Violation::TraceFlagsFormat),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001", Violation::Version00TrailingData),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", Violation::Version00TrailingData),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.", Violation::Version00TrailingData),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", Violation::TraceIdAllZero),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", Violation::ParentIdAllZero),
            ("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", Violation::VersionFormat),
        ];
        for (value, violation) in cases {
            assert_eq!(broken(value), violation, "{value:?}");
        }
    }

    #[test]
    fn a_comma_joined_pair_is_not_one_traceparent() {
        assert_eq!(broken(&format!("{VALID},{VALID}")), Violation::TraceparentCombined);
        assert_eq!(broken(&format!("{VALID}, {VALID}")), Violation::TraceparentCombined);
        let future = VALID.replacen("00", "cc", 1);
        assert_eq!(broken(&format!("{future},{future}")), Violation::TraceparentCombined);
    }

    #[test]
    fn multi_byte_characters_are_refused_without_a_panic() {
        for value in ["é", "00-é", &format!("00-{}-{PARENT}-01", "é".repeat(16)), &format!("{VALID}é")] {
            assert!(parse(value).is_err(), "{value:?}");
        }
    }
}
