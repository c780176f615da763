//! `tracestate` against the W3C grammar
//! (<https://www.w3.org/TR/trace-context-2/#tracestate-header>): every field
//! combined in order, members trimmed of OWS, empty members skipped, each
//! key and value checked, at most 32 members.
//!
//! A list that breaks a rule is dropped whole ("If the tracestate header
//! cannot be parsed the vendor MAY discard the entire header"), as the
//! official test suite expects.

use super::violation::Violation;

/// "There can be a maximum of 32 list-members in a list."
pub const MAX_MEMBERS: usize = 32;

/// Keys and values are at most 256 characters each.
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 256;

/// The members of `fields` (each one `tracestate` field as received, in
/// order), a repeated key kept once, where it first appears.
pub fn parse<'a>(fields: &[&'a str]) -> Result<Vec<(&'a str, &'a str)>, Violation> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    let mut count = 0;
    // RFC 9110 §5.3: several fields are one list, joined with commas.
    for member in fields.iter().flat_map(|field| field.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=').ok_or(Violation::TracestateMemberFormat)?;
        if !valid_key(key) {
            return Err(Violation::TracestateKey);
        }
        if !valid_value(value) {
            return Err(Violation::TracestateValue);
        }
        count += 1;
        if count > MAX_MEMBERS {
            return Err(Violation::TracestateTooManyMembers);
        }
        // "Vendors MAY also discard duplicate keys that were not generated
        // by them": a list sent on must not hold a key twice.
        if !members.iter().any(|(seen, _)| *seen == key) {
            members.push((key, value));
        }
    }
    Ok(members)
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`, keychar being
/// `lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"` (Level 2; Level 1's
/// tenant@system keys are the subset with one `@`).
pub fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let Some((first, rest)) = bytes.split_first() else { return false };
    bytes.len() <= MAX_KEY
        && matches!(first, b'a'..=b'z' | b'0'..=b'9')
        && rest.iter().all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'))
}

/// `value = 0*255(chr) nblk-chr`: 1 to 256 printable ASCII characters but
/// `,` and `=`, the last not a space.
pub fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let Some(last) = bytes.last() else { return false };
    bytes.len() <= MAX_VALUE
        && *last != b' '
        && bytes.iter().all(|byte| matches!(byte, 0x20..=0x7e) && *byte != b',' && *byte != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(fields: &[&str]) -> Vec<(String, String)> {
        parse(fields)
            .unwrap_or_else(|violation| panic!("{fields:?}: {violation:?}"))
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn fields_are_combined_in_order_and_ows_and_empty_members_skipped() {
        assert_eq!(
            members(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
            pairs(&[("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")])
        );
        assert_eq!(members(&["foo=1 \t , \t bar=2"]), pairs(&[("foo", "1"), ("bar", "2")]));
        assert_eq!(members(&[",foo=1,,\t, ,bar=2,"]), pairs(&[("foo", "1"), ("bar", "2")]));
        assert_eq!(members(&["", "foo=1"]), pairs(&[("foo", "1")]));
        assert_eq!(members(&[""]), pairs(&[]));
    }

    #[test]
    fn leading_spaces_of_a_value_are_kept() {
        assert_eq!(members(&["foo= 1"]), pairs(&[("foo", " 1")]));
    }

    #[test]
    fn a_repeated_key_is_kept_where_it_first_appears() {
        assert_eq!(members(&["foo=1,bar=2,foo=3"]), pairs(&[("foo", "1"), ("bar", "2")]));
        assert_eq!(members(&["foo=1", "foo=2"]), pairs(&[("foo", "1")]));
    }

    #[test]
    fn keys_follow_the_level_2_grammar() {
        let z256 = "z".repeat(256);
        let tenant = format!("{}@{}", "t".repeat(241), "v".repeat(14));
        let long_system = format!("t@{}", "v".repeat(15));
        for key in
            ["foo", "0a", "foo@bar", "foo@", "foo@@bar", "foo@bar@baz", "a-z0-9_-*/", &z256, &tenant, &long_system]
        {
            assert!(valid_key(key), "{key:?} is a key");
        }
        let z257 = "z".repeat(257);
        for key in ["", "@foo", "_foo", "FOO", "foo ", " foo", "foo.bar", "fö", &z257] {
            assert!(!valid_key(key), "{key:?} is not a key");
        }
    }

    #[test]
    fn values_follow_the_grammar() {
        let printable: String = (0x20u8..=0x7e).filter(|b| *b != b',' && *b != b'=').map(char::from).collect();
        for value in ["1", " 1", "a b", printable.as_str(), &"v".repeat(256)] {
            assert!(valid_value(value), "{value:?} is a value");
        }
        for value in ["", "1 ", "a\tb", "a=b", "é", &"v".repeat(257)] {
            assert!(!valid_value(value), "{value:?} is not a value");
        }
    }

    #[test]
    fn a_list_that_breaks_a_rule_is_refused_whole() {
        assert_eq!(parse(&["foo=1,bar"]), Err(Violation::TracestateMemberFormat));
        assert_eq!(parse(&["foo=1,@bar=2"]), Err(Violation::TracestateKey));
        assert_eq!(parse(&["foo=,bar=3"]), Err(Violation::TracestateValue));
        assert_eq!(parse(&["foo=bar=baz"]), Err(Violation::TracestateValue));
    }

    #[test]
    fn thirty_two_members_pass_and_thirty_three_do_not() {
        let list = |count: usize| (1..=count).map(|n| format!("k{n}=v")).collect::<Vec<_>>().join(",");
        assert_eq!(parse(&[&list(32)]).map(|members| members.len()), Ok(32));
        assert_eq!(parse(&[&list(33)]), Err(Violation::TracestateTooManyMembers));
        // Members as sent are counted, a repeated key too.
        assert_eq!(parse(&[&list(20), &list(13)]), Err(Violation::TracestateTooManyMembers));
    }
}
