//! `traceparent`, one test per rule of W3C Trace Context Level 1
//! (https://www.w3.org/TR/trace-context/#traceparent-header) and, where
//! marked, Level 2. Run against the project's propagator; with
//! `STITCH_CONFORMANCE_PROPAGATOR=sdk`, against OpenTelemetry's alone, where
//! each rule it breaks fails, and its doc says what it measurably does instead
//! (crates/conformance/README.md).

mod common;

use common::{PARENT_ID, TRACE_ID, assert_continued, assert_restarted, run_case, run_one, traceparent};

/// Without a traceparent the service starts a trace and still sends one.
#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace() {
    let received = run_one(&[]).await;
    received.traceparent();
}

#[tokio::test]
async fn a_valid_traceparent_is_continued_with_the_services_own_parent_id() {
    let received = run_one(&[("traceparent", &traceparent("01"))]).await;
    assert_continued(&received);
}

/// Each outgoing call is its own operation, so each gets its own parent-id.
#[tokio::test]
async fn every_outgoing_call_carries_the_trace_id_and_its_own_parent_id() {
    let received = run_case(&[("traceparent", &traceparent("01"))], 3).await;
    let parents: std::collections::BTreeSet<String> =
        received.iter().map(|callback| assert_continued(callback).parent_id).collect();
    assert_eq!(parents.len(), 3, "parent-ids {parents:?}");
}

/// The header name is ASCII case-insensitive.
#[tokio::test]
async fn the_header_name_is_case_insensitive() {
    for name in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
        let received = run_one(&[(name, &traceparent("01"))]).await;
        assert_continued(&received);
    }
}

/// The name is one word: `trace-parent` is another header.
#[tokio::test]
async fn other_header_names_are_not_read() {
    for name in ["trace-parent", "trace.parent"] {
        let received = run_one(&[(name, &traceparent("01"))]).await;
        assert_restarted(&received, &[TRACE_ID]);
    }
}

/// Leading and trailing OWS around the value is not part of it.
#[tokio::test]
async fn whitespace_around_the_value_is_ignored() {
    for value in [
        format!(" {}", traceparent("01")),
        format!("\t{}", traceparent("01")),
        format!("{} ", traceparent("01")),
        format!("{}\t", traceparent("01")),
        format!("\t {} \t", traceparent("01")),
    ] {
        let received = run_one(&[("traceparent", &value)]).await;
        assert_continued(&received);
    }
}

/// Version 00 is exactly four fields; anything after the flags is invalid.
#[tokio::test]
async fn version_00_with_anything_after_the_flags_is_rejected() {
    for suffix in [".", "-what-the-future-will-be-like"] {
        let received = run_one(&[("traceparent", &format!("{}{suffix}", traceparent("01")))]).await;
        assert_restarted(&received, &[TRACE_ID]);
    }
}

/// The SDK's propagator alone breaks it: the propagator splits with split_terminator('-'), which drops the empty
/// field after a trailing dash, so `00-…-01-` has four fields and the trace is continued (outgoing trace-id
/// 1234…9012)
#[tokio::test]
async fn version_00_with_a_trailing_dash_is_rejected() {
    let received = run_one(&[("traceparent", &format!("{}-", traceparent("01")))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// A higher version is parsed as version 00 for its first four fields, and
/// the flags must be followed by the end or a dash.
#[tokio::test]
async fn a_future_version_is_parsed_as_far_as_version_00_goes() {
    for value in
        [format!("cc-{TRACE_ID}-{PARENT_ID}-01"), format!("cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like")]
    {
        let received = run_one(&[("traceparent", &value)]).await;
        let continued = assert_continued(&received);
        assert_eq!(continued.flags & 0x01, 0x01, "the sampled flag of {value:?} was lost");
    }
}

#[tokio::test]
async fn a_future_version_whose_flags_are_not_followed_by_a_dash_is_rejected() {
    let value = format!("cc-{TRACE_ID}-{PARENT_ID}-01.what-the-future-will-be-like");
    let received = run_one(&[("traceparent", &value)]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

#[tokio::test]
async fn version_ff_is_rejected() {
    let received = run_one(&[("traceparent", &format!("ff-{TRACE_ID}-{PARENT_ID}-01"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

#[tokio::test]
async fn a_version_with_non_hex_characters_is_rejected() {
    for version in [".0", "0.", "0x"] {
        let received = run_one(&[("traceparent", &format!("{version}-{TRACE_ID}-{PARENT_ID}-01"))]).await;
        assert_restarted(&received, &[TRACE_ID]);
    }
}

/// The SDK's propagator alone breaks it: the version is read with u8::from_str_radix, which reads `000` and
/// `0000` as 0, so the trace is continued (outgoing trace-id 1234…9012)
#[tokio::test]
async fn a_version_longer_than_two_digits_is_rejected() {
    for version in ["000", "0000"] {
        let received = run_one(&[("traceparent", &format!("{version}-{TRACE_ID}-{PARENT_ID}-01"))]).await;
        assert_restarted(&received, &[TRACE_ID]);
    }
}

/// The SDK's propagator alone breaks it: u8::from_str_radix reads the one-digit version `0` as 0, so the trace is
/// continued (outgoing trace-id 1234…9012)
#[tokio::test]
async fn a_version_shorter_than_two_digits_is_rejected() {
    let received = run_one(&[("traceparent", &format!("0-{TRACE_ID}-{PARENT_ID}-01"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// HEXDIGLC: upper case is not hex in this grammar, in any field.
/// The SDK's propagator alone breaks it: the propagator checks case in trace-id, parent-id and flags but not in
/// the version: `CC-…` is read as version 204 and continued (outgoing trace-id 1234…9012)
#[tokio::test]
async fn an_upper_case_version_is_rejected() {
    let received = run_one(&[("traceparent", &format!("CC-{TRACE_ID}-{PARENT_ID}-01"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

#[tokio::test]
async fn upper_case_ids_or_flags_are_rejected() {
    let trace_id = "1234567890ABCDEF1234567890ABCDEF";
    for value in [
        format!("00-{trace_id}-{PARENT_ID}-01"),
        format!("00-{TRACE_ID}-1234567890ABCDEF-01"),
        format!("00-{TRACE_ID}-{PARENT_ID}-0A"),
    ] {
        let received = run_one(&[("traceparent", &value)]).await;
        assert_restarted(&received, &[TRACE_ID, &trace_id.to_ascii_lowercase()]);
    }
}

#[tokio::test]
async fn an_all_zero_trace_id_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{}-{PARENT_ID}-01", "0".repeat(32)))]).await;
    // The outgoing parser already refuses an all-zero trace-id.
    received.traceparent();
}

#[tokio::test]
async fn an_all_zero_parent_id_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{TRACE_ID}-{}-01", "0".repeat(16)))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

#[tokio::test]
async fn a_trace_id_with_non_hex_characters_is_rejected() {
    for trace_id in [".2345678901234567890123456789012", "1234567890123456789012345678901."] {
        let received = run_one(&[("traceparent", &format!("00-{trace_id}-{PARENT_ID}-01"))]).await;
        assert_restarted(&received, &[TRACE_ID, "02345678901234567890123456789012"]);
    }
}

/// A sign is not a hex digit either.
/// The SDK's propagator alone breaks it: TraceId::from_hex is u128::from_str_radix, which accepts a leading '+':
/// `+234…9012` is continued as trace-id 0234…9012
#[tokio::test]
async fn a_trace_id_with_a_plus_sign_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-+2345678901234567890123456789012-{PARENT_ID}-01"))]).await;
    assert_restarted(&received, &["02345678901234567890123456789012"]);
}

/// 33 digits whose value overflows 128 bits.
#[tokio::test]
async fn a_trace_id_of_33_digits_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{TRACE_ID}3-{PARENT_ID}-01"))]).await;
    assert_restarted(&received, &[TRACE_ID, "23456789012345678901234567890123"]);
}

/// 33 digits whose value still fits 128 bits: the length alone is wrong.
/// The SDK's propagator alone breaks it: TraceId::from_hex checks the value, not the length: `0` + 32 digits fits
/// 128 bits and is continued as trace-id 1234…9012
#[tokio::test]
async fn a_trace_id_of_33_digits_with_a_leading_zero_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-0{TRACE_ID}-{PARENT_ID}-01"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// The SDK's propagator alone breaks it: TraceId::from_hex checks the value, not the length: 31 digits are
/// continued, zero-padded, as trace-id 0234…9012
#[tokio::test]
async fn a_trace_id_of_31_digits_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{}-{PARENT_ID}-01", &TRACE_ID[1..]))]).await;
    assert_restarted(&received, &[&format!("0{}", &TRACE_ID[1..])]);
}

#[tokio::test]
async fn a_parent_id_with_non_hex_characters_is_rejected() {
    for parent_id in [".234567890123456", "123456789012345."] {
        let received = run_one(&[("traceparent", &format!("00-{TRACE_ID}-{parent_id}-01"))]).await;
        assert_restarted(&received, &[TRACE_ID]);
    }
}

/// The SDK's propagator alone breaks it: SpanId::from_hex is u64::from_str_radix, which accepts a leading '+':
/// the trace is continued (outgoing trace-id 1234…9012)
#[tokio::test]
async fn a_parent_id_with_a_plus_sign_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{TRACE_ID}-+234567890123456-01"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// 17 digits whose value overflows 64 bits.
#[tokio::test]
async fn a_parent_id_of_17_digits_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{TRACE_ID}-{PARENT_ID}7-01"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// The SDK's propagator alone breaks it: SpanId::from_hex checks the value, not the length: `0` + 16 digits fits
/// 64 bits and the trace is continued (outgoing trace-id 1234…9012)
#[tokio::test]
async fn a_parent_id_of_17_digits_with_a_leading_zero_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{TRACE_ID}-0{PARENT_ID}-01"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// The SDK's propagator alone breaks it: SpanId::from_hex checks the value, not the length: a 15-digit parent-id
/// is accepted and the trace is continued (outgoing trace-id 1234…9012)
#[tokio::test]
async fn a_parent_id_of_15_digits_is_rejected() {
    let received = run_one(&[("traceparent", &format!("00-{TRACE_ID}-{}-01", &PARENT_ID[1..]))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

#[tokio::test]
async fn flags_with_non_hex_characters_are_rejected() {
    for flags in [".0", "0."] {
        let received = run_one(&[("traceparent", &traceparent(flags))]).await;
        assert_restarted(&received, &[TRACE_ID]);
    }
}

/// The SDK's propagator alone breaks it: the flags are read with u8::from_str_radix, which accepts `+1` as 0x01:
/// the trace is continued (outgoing trace-id 1234…9012)
#[tokio::test]
async fn flags_with_a_plus_sign_are_rejected() {
    let received = run_one(&[("traceparent", &traceparent("+1"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// The SDK's propagator alone breaks it: u8::from_str_radix reads `001` as 0x01: the trace is continued (outgoing
/// trace-id 1234…9012)
#[tokio::test]
async fn flags_of_three_digits_are_rejected() {
    let received = run_one(&[("traceparent", &traceparent("001"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// The SDK's propagator alone breaks it: u8::from_str_radix reads `1` as 0x01: the trace is continued (outgoing
/// trace-id 1234…9012)
#[tokio::test]
async fn flags_of_one_digit_are_rejected() {
    let received = run_one(&[("traceparent", &traceparent("1"))]).await;
    assert_restarted(&received, &[TRACE_ID]);
}

/// The dash is the only delimiter.
#[tokio::test]
async fn other_delimiters_are_rejected() {
    for value in [
        format!("00_{TRACE_ID}_{PARENT_ID}_01"),
        format!("00-{TRACE_ID}-{PARENT_ID}_01"),
        format!("00-{TRACE_ID}.{PARENT_ID}-01"),
        format!("00 {TRACE_ID} {PARENT_ID} 01"),
    ] {
        let received = run_one(&[("traceparent", &value)]).await;
        assert_restarted(&received, &[TRACE_ID]);
    }
}

/// traceparent is not a list (RFC 9110 §5.3): two of them are no valid
/// traceparent, whichever comes first (the suite's test_traceparent_duplicated).
/// The SDK's propagator alone breaks it: opentelemetry-http's HeaderExtractor::get returns the first value only:
/// the first of two traceparents is continued (outgoing trace-id 1234…9011), the second ignored
#[tokio::test]
async fn two_traceparent_headers_are_rejected() {
    let other = "12345678901234567890123456789011";
    let received =
        run_one(&[("traceparent", &format!("00-{other}-{PARENT_ID}-01")), ("traceparent", &traceparent("01"))]).await;
    assert_restarted(&received, &[TRACE_ID, other]);
}

/// The sampled flag is the caller's recording decision; the flow's
/// parent-based sampler follows it both ways.
#[tokio::test]
async fn the_sampled_flag_is_followed_both_ways() {
    for (flags, sampled) in [("01", 0x01), ("00", 0x00)] {
        let received = run_one(&[("traceparent", &traceparent(flags))]).await;
        assert_eq!(assert_continued(&received).flags & 0x01, sampled, "incoming flags {flags}");
    }
}

/// Level 1: flags this version does not define are sent as zero.
#[tokio::test]
async fn unknown_flags_are_sent_as_zero() {
    let received = run_one(&[("traceparent", &traceparent("f9"))]).await;
    assert_eq!(assert_continued(&received).flags, 0x01);
}

/// Level 2: the random-trace-id flag (0x02) of a continued trace is kept.
/// The SDK's propagator alone breaks it (Level 2): the propagator keeps only the sampled bit (flags &
/// TraceFlags::SAMPLED) on extract and on inject: incoming 02 goes out as 00
#[tokio::test]
async fn level_2_the_random_flag_of_a_continued_trace_is_kept() {
    let received = run_one(&[("traceparent", &traceparent("02"))]).await;
    assert_eq!(assert_continued(&received).flags & 0x02, 0x02, "random-trace-id flag dropped");
}

/// Level 2: a participant that generates random trace-ids SHOULD say so.
/// The SDK's propagator alone breaks it (Level 2, SHOULD): the SDK generates random trace-ids but sends new
/// traces with flags 01, never 0x02
#[tokio::test]
async fn level_2_a_new_random_trace_id_sets_the_random_flag() {
    let received = run_one(&[]).await;
    assert_eq!(received.traceparent().flags & 0x02, 0x02, "random-trace-id flag not set on a new trace");
}
