//! The tail-sampling settings as the check reads them, on a solved file: the
//! policies parsed, variables expanded, and traces kept as the collector would.
//! (Here, not beside the parser: the solved file is step 4's answer, and the
//! model crate is one a lesson can call.)

use std::time::Duration;

use stitch_model::sampling::*;

const SOLVED: &str = r"
processors:
  tail_sampling:
    decision_wait: 10s
    num_traces: 4400
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow
        type: latency
        latency: {threshold_ms: ${env:STITCH_SLOW_MS}}
      - name: baseline
        type: probabilistic
        probabilistic: {sampling_percentage: 1}
";

fn check_variables() -> Vec<(&'static str, String)> {
    vec![(SLOW_MS_VARIABLE, CHECK_SLOW_THRESHOLD.as_millis().to_string())]
}

fn trace(lasting_ms: u64, status: SpanStatus) -> Trace {
    let span = |name: &str, status, end_ms| TraceSpan {
        service: "worker".to_owned(),
        name: name.to_owned(),
        status,
        start_ms: 1_000,
        end_ms,
    };
    Trace { spans: vec![span("root", SpanStatus::Unset, 1_000 + lasting_ms), span("leaf", status, 1_010)] }
}

#[test]
fn reads_the_settings_with_the_checks_variables() {
    let settings = SamplingSettings::parse(SOLVED, &check_variables()).unwrap();
    assert_eq!(settings.decision_wait, Duration::from_secs(10));
    assert_eq!(settings.num_traces, 4400);
    let described: Vec<String> = settings.policies.iter().map(Policy::describe).collect();
    assert_eq!(described, ["errors (status_code)", "slow (latency)", "baseline (probabilistic)"]);
    assert_eq!(settings.policies[1].rule, Rule::Latency { threshold_ms: 4000, upper_threshold_ms: None });
}

#[test]
fn a_variable_the_check_does_not_set_is_an_error_unless_it_has_a_default() {
    let error = SamplingSettings::parse(SOLVED, &[]).unwrap_err().to_string();
    assert!(error.contains("the check does not set STITCH_SLOW_MS"), "{error}");
    let defaulted = SOLVED.replace("${env:STITCH_SLOW_MS}", "${env:STITCH_SLOW_MS:-2000}");
    let settings = SamplingSettings::parse(&defaulted, &[]).unwrap();
    assert_eq!(settings.policies[1].rule, Rule::Latency { threshold_ms: 2000, upper_threshold_ms: None });
}

#[test]
fn a_file_without_the_settings_names_what_is_missing() {
    let error = SamplingSettings::parse("processors:\n  batch: {}\n", &[]).unwrap_err();
    assert!(format!("{error:#}").contains("processors.tail_sampling"), "{error:#}");
    let no_policy = SOLVED.split("    policies:").next().unwrap().to_owned() + "    policies: []\n";
    let error = SamplingSettings::parse(&no_policy, &[]).unwrap_err();
    assert!(format!("{error:#}").contains("no policy"), "{error:#}");
    let bare = SOLVED.replace("        latency: {threshold_ms: ${env:STITCH_SLOW_MS}}\n", "");
    let error = SamplingSettings::parse(&bare, &check_variables()).unwrap_err();
    assert!(format!("{error:#}").contains("policy `slow` of type latency has no `latency` settings"), "{error:#}");
}

#[test]
fn durations_are_read_with_their_unit() {
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("10h").is_err());
}

#[test]
fn a_trace_is_kept_for_its_error_or_its_length_and_otherwise_by_chance() {
    let settings = SamplingSettings::parse(SOLVED, &check_variables()).unwrap();
    assert_eq!(settings.keeps(&trace(150, SpanStatus::Error)).unwrap(), 1.0);
    assert_eq!(settings.keeps(&trace(5_100, SpanStatus::Unset)).unwrap(), 1.0);
    let ordinary = settings.keeps(&trace(150, SpanStatus::Unset)).unwrap();
    assert!((ordinary - 0.01).abs() < 1e-12, "{ordinary}");
    // Two probabilistic policies: kept unless both drop it.
    let twice = SOLVED.replace(
        "sampling_percentage: 1}",
        "sampling_percentage: 1}\n      - {name: more, type: probabilistic, probabilistic: {sampling_percentage: 50}}",
    );
    let ordinary = SamplingSettings::parse(&twice, &check_variables()).unwrap().keeps(&trace(150, SpanStatus::Unset));
    assert!((ordinary.unwrap() - 0.505).abs() < 1e-12);
}

#[test]
fn a_policy_type_it_cannot_evaluate_is_named() {
    let composite =
        SOLVED.replace("type: status_code\n        status_code: {status_codes: [ERROR]}", "type: ottl_condition");
    let settings = SamplingSettings::parse(&composite, &check_variables()).unwrap();
    assert_eq!(settings.policies[0].describe(), "errors (ottl_condition)");
    let error = settings.keeps(&trace(150, SpanStatus::Unset)).unwrap_err().to_string();
    assert!(error.contains("policy `errors` is of type ottl_condition"), "{error}");
}

#[test]
fn a_threshold_typed_as_the_checks_number_does_not_follow_the_variable() {
    assert!(SamplingSettings::slow_threshold_follows_variable(SOLVED).unwrap());
    let defaulted = SOLVED.replace("${env:STITCH_SLOW_MS}", "${env:STITCH_SLOW_MS:-2000}");
    assert!(SamplingSettings::slow_threshold_follows_variable(&defaulted).unwrap());
    for typed in ["4000", "2000"] {
        let fixed = SOLVED.replace("${env:STITCH_SLOW_MS}", typed);
        assert!(!SamplingSettings::slow_threshold_follows_variable(&fixed).unwrap(), "{typed}");
    }
    let no_slow = SOLVED.replace("name: slow", "name: late");
    assert!(!SamplingSettings::slow_threshold_follows_variable(&no_slow).unwrap());
}
