//! The walk from every span up its parent chain, and what the top of the chain means.

use crate::model::{Boundary, Cause, LineageStatus, SpanRec, flags, kind};
use crate::trace::Trace;

/// What the fragment under one top span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FragmentClass {
    /// Top is a root span of an entry service: a request.
    Request,
    /// Top is a root span of a non-entry service with span links.
    Linked,
    /// Top is a break span.
    Broken { cause: Cause, boundary: Boundary },
}

impl FragmentClass {
    pub fn status(self) -> LineageStatus {
        match self {
            FragmentClass::Request => LineageStatus::Connected,
            FragmentClass::Linked => LineageStatus::Linked,
            FragmentClass::Broken { .. } => LineageStatus::Orphan,
        }
    }

    pub fn cause(self) -> Option<Cause> {
        match self {
            FragmentClass::Broken { cause, .. } => Some(cause),
            _ => None,
        }
    }

    pub fn boundary(self) -> Option<Boundary> {
        match self {
            FragmentClass::Broken { boundary, .. } => Some(boundary),
            _ => None,
        }
    }
}

/// Per span (by position in `Trace::spans`): the index of the topmost span its
/// parent walk reaches. A span whose top is itself heads a fragment.
pub(crate) struct Classification {
    pub top: Vec<u32>,
}

const UNSEEN: u32 = u32::MAX;
const ON_PATH: u32 = u32::MAX - 1;

/// Walks every span to the top of its chain, iteratively and with memoisation:
/// each span is visited once, so deep chains neither recurse nor go quadratic.
pub(crate) fn classify(trace: &Trace) -> Classification {
    let spans = &trace.spans;
    let mut top = vec![UNSEEN; spans.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..spans.len() {
        if top[start] != UNSEEN {
            continue;
        }
        let mut current = start;
        let reached = loop {
            match top[current] {
                ON_PATH => {
                    // A parent cycle: no member is above the others, so the
                    // member with the smallest span id is the break span, which
                    // keeps the result independent of arrival order.
                    let from = path.iter().rposition(|&p| p == current).unwrap_or(0);
                    let member = path[from..].iter().copied().min_by_key(|&i| spans[i].span_id).unwrap_or(current);
                    break member as u32;
                }
                UNSEEN => {}
                known => break known,
            }
            top[current] = ON_PATH;
            path.push(current);
            let parent = spans[current].parent_id;
            if parent == 0 {
                break current as u32;
            }
            match trace.position(parent) {
                Some(p) => current = p as usize,
                None => break current as u32,
            }
        };
        for &p in &path {
            top[p] = reached;
        }
        path.clear();
    }
    Classification { top }
}

/// What the fragment headed by `top` is.
pub(crate) fn fragment_class(top: &SpanRec, is_entry_service: impl Fn(u32) -> bool) -> FragmentClass {
    if top.parent_id == 0 {
        if is_entry_service(top.service) {
            return FragmentClass::Request;
        }
        if top.has(flags::LINKS) {
            return FragmentClass::Linked;
        }
        return FragmentClass::Broken { cause: Cause::RootInInternalService, boundary: boundary_of(top) };
    }
    FragmentClass::Broken { cause: Cause::MissingParent, boundary: boundary_of(top) }
}

pub(crate) fn boundary_of(span: &SpanRec) -> Boundary {
    if span.kind == kind::SERVER {
        Boundary::Http
    } else if span.kind == kind::CONSUMER || span.has(flags::MESSAGING) {
        Boundary::Messaging
    } else {
        Boundary::Async
    }
}
