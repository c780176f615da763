//! The rules of W3C Trace Context a carrier's context can break, each named
//! after the part of the spec it comes from, and the once-per-kind record of
//! which ones a process has already reported.

use std::sync::atomic::{AtomicBool, Ordering};

/// One rule a received `traceparent` or `tracestate` broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Violation {
    /// More than one `traceparent` field: it is a single value, not a list
    /// (RFC 9110 §5.3), so no one of them is the caller's.
    TraceparentDuplicated,
    /// One field holding a comma-joined list of traceparents, as a proxy
    /// that combines repeated fields writes it.
    TraceparentCombined,
    /// Fields named `traceparent` that the carrier cannot give as text
    /// (not visible ASCII or not UTF-8, or a Kafka header without a value).
    TraceparentUnreadable,
    /// `version` is not 2 lowercase hex digits followed by `-`.
    VersionFormat,
    /// Version `ff` is forbidden.
    VersionFf,
    /// `trace-id` is not 32 lowercase hex digits followed by `-`.
    TraceIdFormat,
    TraceIdAllZero,
    /// `parent-id` is not 16 lowercase hex digits followed by `-`.
    ParentIdFormat,
    ParentIdAllZero,
    /// `trace-flags` is not 2 lowercase hex digits.
    TraceFlagsFormat,
    /// Version 00 has exactly four fields: nothing follows `trace-flags`.
    Version00TrailingData,
    /// A later version's `trace-flags` are followed by neither the end nor `-`.
    FutureVersionFlagsNotDelimited,
    /// A traceparent these rules accept that OpenTelemetry's parser refused:
    /// the two disagree, and the trace starts anew rather than guess.
    RefusedBySdk,
    /// Fields named `tracestate` that the carrier cannot give as text.
    TracestateUnreadable,
    /// The carrier lists more `tracestate` fields than it returns values
    /// for (its `Extractor` has no `get_all`): the fields cannot be combined
    /// in order, as RFC 9110 §5.3 asks.
    TracestateFieldsHidden,
    /// A non-empty list member without `=`.
    TracestateMemberFormat,
    /// A key outside `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`.
    TracestateKey,
    /// A value outside `value = 0*255(chr) nblk-chr`.
    TracestateValue,
    /// More than 32 list members.
    TracestateTooManyMembers,
}

impl Violation {
    /// Every kind, in declaration order.
    pub const ALL: [Violation; 19] = [
        Violation::TraceparentDuplicated,
        Violation::TraceparentCombined,
        Violation::TraceparentUnreadable,
        Violation::VersionFormat,
        Violation::VersionFf,
        Violation::TraceIdFormat,
        Violation::TraceIdAllZero,
        Violation::ParentIdFormat,
        Violation::ParentIdAllZero,
        Violation::TraceFlagsFormat,
        Violation::Version00TrailingData,
        Violation::FutureVersionFlagsNotDelimited,
        Violation::RefusedBySdk,
        Violation::TracestateUnreadable,
        Violation::TracestateFieldsHidden,
        Violation::TracestateMemberFormat,
        Violation::TracestateKey,
        Violation::TracestateValue,
        Violation::TracestateTooManyMembers,
    ];

    /// The rule's name in the log: the header, then the part of its grammar.
    pub fn rule(self) -> &'static str {
        match self {
            Violation::TraceparentDuplicated => "traceparent: one field only",
            Violation::TraceparentCombined => "traceparent: not a list",
            Violation::TraceparentUnreadable => "traceparent: a value that reads as text",
            Violation::VersionFormat => "traceparent: version = 2HEXDIGLC \"-\"",
            Violation::VersionFf => "traceparent: version ff is forbidden",
            Violation::TraceIdFormat => "traceparent: trace-id = 32HEXDIGLC",
            Violation::TraceIdAllZero => "traceparent: trace-id all zeroes forbidden",
            Violation::ParentIdFormat => "traceparent: parent-id = 16HEXDIGLC",
            Violation::ParentIdAllZero => "traceparent: parent-id all zeroes forbidden",
            Violation::TraceFlagsFormat => "traceparent: trace-flags = 2HEXDIGLC",
            Violation::Version00TrailingData => "traceparent: version 00 ends after trace-flags",
            Violation::FutureVersionFlagsNotDelimited => {
                "traceparent: a later version's trace-flags end the value or are followed by \"-\""
            }
            Violation::RefusedBySdk => "traceparent: refused by OpenTelemetry's parser",
            Violation::TracestateUnreadable => "tracestate: a value that reads as text",
            Violation::TracestateFieldsHidden => "tracestate: every field combined in order",
            Violation::TracestateMemberFormat => "tracestate: list-member = key \"=\" value",
            Violation::TracestateKey => "tracestate: key = ( lcalpha / DIGIT ) 0*255 ( keychar )",
            Violation::TracestateValue => "tracestate: value = 0*255(chr) nblk-chr",
            Violation::TracestateTooManyMembers => "tracestate: at most 32 list-members",
        }
    }

    /// Whether the rule is `traceparent`'s: breaking it starts a new trace.
    /// Breaking a `tracestate` rule drops the tracestate and keeps the trace.
    pub fn restarts_the_trace(self) -> bool {
        !matches!(
            self,
            Violation::TracestateUnreadable
                | Violation::TracestateFieldsHidden
                | Violation::TracestateMemberFormat
                | Violation::TracestateKey
                | Violation::TracestateValue
                | Violation::TracestateTooManyMembers
        )
    }
}

/// The kinds of violation already reported: a service fed the same bad
/// header a thousand times says so once, not a thousand times.
#[derive(Debug, Default)]
pub struct Reported([AtomicBool; Violation::ALL.len()]);

impl Reported {
    /// True the first time `violation` is seen, false after.
    pub fn first(&self, violation: Violation) -> bool {
        !self.0[violation as usize].swap(true, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_at_its_own_index() {
        for (index, violation) in Violation::ALL.into_iter().enumerate() {
            assert_eq!(violation as usize, index, "{violation:?}");
        }
    }

    #[test]
    fn each_kind_is_reported_once() {
        let reported = Reported::default();
        assert!(reported.first(Violation::TraceIdFormat));
        assert!(!reported.first(Violation::TraceIdFormat));
        assert!(reported.first(Violation::TracestateKey), "another kind is reported on its own");
    }
}
