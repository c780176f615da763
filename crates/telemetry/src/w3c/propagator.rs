//! The propagator every Stitch service installs as the global one.

use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::http_fields::UNREADABLE;
use super::violation::{Reported, Violation};
use super::{traceparent, tracestate};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// trace-flags bit 0: the caller may have recorded the trace.
const SAMPLED: u8 = 0x01;
/// trace-flags bit 1 (Level 2): at least the right-most 7 bytes of the
/// trace-id are random.
const RANDOM: u8 = 0x02;

/// W3C Trace Context, held to the spec: OpenTelemetry's
/// [`TraceContextPropagator`] behind a validator.
///
/// **Extract** reads every `traceparent` and `tracestate` field the carrier
/// has ([`Extractor::get_all`], and [`Extractor::keys`] for carriers whose
/// `get_all` shows only the first), checks them against the grammar
/// ([`traceparent::parse`], [`tracestate::parse`]), and only then lets the
/// SDK's parser build the span context, from the checked fields. A
/// traceparent that breaks a rule is not continued: extract returns the
/// context it was given, and the request starts a new trace. A tracestate
/// that breaks a rule is dropped and the trace goes on. Each kind of
/// violation is logged once per propagator, at debug level.
///
/// **Inject** is written here: the SDK's sends only the sampled bit and an
/// empty `tracestate:` when there is none. This one keeps the random-trace-id
/// flag of a continued trace, sets it on a trace this process started (the
/// SDK's default id generator draws all 16 bytes at random), sends the
/// received tracestate on whole, including the keys OpenTelemetry's
/// `TraceState` cannot hold, and sends no tracestate when it is empty.
#[derive(Debug, Default)]
pub struct W3cPropagator {
    sdk: TraceContextPropagator,
    reported: Reported,
}

impl W3cPropagator {
    pub fn new() -> W3cPropagator {
        W3cPropagator::default()
    }

    /// The checked context of `extractor`'s fields, or the rule they break.
    fn read<'a>(&self, extractor: &'a dyn Extractor) -> Result<Option<Received>, Refused<'a>> {
        let value = match fields(extractor, TRACEPARENT) {
            Fields::Absent => return Ok(None),
            Fields::Unreadable => return Err((Violation::TraceparentUnreadable, Vec::new())),
            Fields::Hidden(values) => return Err((Violation::TraceparentDuplicated, values)),
            Fields::Values(values) => match values.as_slice() {
                [one] if *one == UNREADABLE => return Err((Violation::TraceparentUnreadable, values)),
                [one] => *one,
                _ => return Err((Violation::TraceparentDuplicated, values)),
            },
        };
        let parent = traceparent::parse(value).map_err(|violation| (violation, vec![value]))?;
        // Parsed only once traceparent is valid; its failure must not affect traceparent.
        let members = match members(extractor) {
            Ok(members) => members,
            Err((violation, values)) => {
                self.report(violation, &values);
                Vec::new()
            }
        };
        let header = join(members.iter().copied());
        let held_by_sdk = join(members.iter().copied().filter(|member| TraceState::from_key_value([*member]).is_ok()));
        // Downgraded to version 00 ("the first mutation"), so the SDK's
        // parser sees only fields checked here.
        let checked = format!("00-{}-{}-{:02x}", parent.trace_id, parent.parent_id, parent.flags);
        let from_sdk = self
            .sdk
            .extract_with_context(&Context::new(), &Checked { traceparent: &checked, tracestate: &held_by_sdk });
        let span_context = from_sdk.span().span_context().clone();
        if !span_context.is_valid() {
            return Err((Violation::RefusedBySdk, vec![value]));
        }
        Ok(Some(Received {
            span_context: SpanContext::new(
                span_context.trace_id(),
                span_context.span_id(),
                // The SDK keeps the sampled bit only; Level 2 defines the random one.
                TraceFlags::new(parent.flags & (SAMPLED | RANDOM)),
                true,
                span_context.trace_state().clone(),
            ),
            tracestate: header.into(),
        }))
    }

    /// Says why a context was refused, the first time this kind is seen
    /// while debug logging is on.
    fn report(&self, violation: Violation, values: &[&str]) {
        if !tracing::enabled!(tracing::Level::DEBUG) || !self.reported.first(violation) {
            return;
        }
        let consequence = if violation.restarts_the_trace() {
            "the context is not continued: a new trace starts"
        } else {
            "the tracestate is dropped: the trace goes on without it"
        };
        tracing::debug!(
            rule = %violation.rule(),
            value = %excerpt(&values.join(" | ")),
            "received trace context breaks a W3C rule; {consequence} (said once per rule)"
        );
    }
}

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        let received = cx.get::<Received>().filter(|received| received.trace_id() == span_context.trace_id());
        let random = match received {
            // "If the flag is set in the incoming traceparent header, it MUST
            // also be set in all outgoing traceparent headers which use the
            // same trace-id", and unset when it was unset.
            Some(received) => received.span_context.trace_flags().to_u8() & RANDOM != 0,
            // No context received for this trace: it started here, or in a
            // context that kept the flag.
            None => !span_context.is_remote() || span_context.trace_flags().to_u8() & RANDOM != 0,
        };
        let flags = if span_context.is_sampled() { SAMPLED } else { 0 } | if random { RANDOM } else { 0 };
        injector.set(TRACEPARENT, format!("00-{}-{}-{flags:02x}", span_context.trace_id(), span_context.span_id()));
        let tracestate = match received {
            // Unchanged since it was received: send it on as it came,
            // keys the SDK's TraceState cannot hold included.
            Some(received) if span_context.trace_state() == received.span_context.trace_state() => {
                received.tracestate.to_string()
            }
            // Changed in this process (a sampler, the code): the SDK's state.
            _ => at_most(tracestate::MAX_MEMBERS, &span_context.trace_state().header()),
        };
        // "Vendors ... SHOULD avoid sending" empty tracestate headers.
        if !tracestate.is_empty() {
            injector.set(TRACESTATE, tracestate);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match self.read(extractor) {
            Ok(Some(received)) => cx.with_remote_span_context(received.span_context.clone()).with_value(received),
            Ok(None) => cx.clone(),
            // "MUST NOT store a new value in the Context" (OpenTelemetry's
            // propagators API): the context as given, no remote parent added.
            Err((violation, values)) => {
                self.report(violation, &values);
                cx.clone()
            }
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.sdk.fields()
    }
}

/// A context extract continued, kept in the `Context` beside its span
/// context: what inject needs that the SDK's types drop.
#[derive(Debug, Clone)]
struct Received {
    /// As extracted, with the random-trace-id flag.
    span_context: SpanContext,
    /// The checked tracestate, as it goes on.
    tracestate: Arc<str>,
}

impl Received {
    fn trace_id(&self) -> TraceId {
        self.span_context.trace_id()
    }
}

/// A rule broken, and the values that broke it.
type Refused<'a> = (Violation, Vec<&'a str>);

/// The members of every tracestate field, checked.
fn members<'a>(extractor: &'a dyn Extractor) -> Result<Vec<(&'a str, &'a str)>, Refused<'a>> {
    match fields(extractor, TRACESTATE) {
        Fields::Absent => Ok(Vec::new()),
        Fields::Unreadable => Err((Violation::TracestateUnreadable, Vec::new())),
        Fields::Hidden(values) => Err((Violation::TracestateFieldsHidden, values)),
        Fields::Values(values) if values.contains(&UNREADABLE) => Err((Violation::TracestateUnreadable, values)),
        Fields::Values(values) => match tracestate::parse(&values) {
            Ok(members) => Ok(members),
            Err(violation) => Err((violation, values)),
        },
    }
}

/// The fields of one name in a carrier.
enum Fields<'a> {
    Absent,
    /// Named in the carrier, but no value reads as text.
    Unreadable,
    /// More fields named than values returned: the carrier's `get_all`
    /// (the trait's default, `get`) shows only the first.
    Hidden(Vec<&'a str>),
    Values(Vec<&'a str>),
}

fn fields<'a>(extractor: &'a dyn Extractor, name: &str) -> Fields<'a> {
    let values = extractor.get_all(name).unwrap_or_default();
    let named = extractor.keys().into_iter().filter(|key| key.eq_ignore_ascii_case(name)).count();
    match values.len() {
        0 if named == 0 => Fields::Absent,
        0 => Fields::Unreadable,
        shown if named > shown => Fields::Hidden(values),
        _ => Fields::Values(values),
    }
}

/// What the SDK's parser is given: the checked fields only.
struct Checked<'a> {
    traceparent: &'a str,
    tracestate: &'a str,
}

impl Extractor for Checked<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE if !self.tracestate.is_empty() => Some(self.tracestate),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

fn join<'a>(members: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    members.map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",")
}

/// The first `count` members of a tracestate header: "the right-most
/// list-member should be removed".
fn at_most(count: usize, header: &str) -> String {
    header.split(',').filter(|member| !member.is_empty()).take(count).collect::<Vec<_>>().join(",")
}

/// A header value as the log shows it: escaped, and cut after 80 characters.
fn excerpt(value: &str) -> String {
    const SHOWN: usize = 80;
    let shown: String = value.chars().take(SHOWN).flat_map(char::escape_debug).collect();
    match value.chars().count() {
        total if total > SHOWN => format!("\"{shown}…\" ({total} characters)"),
        _ => format!("\"{shown}\""),
    }
}
