//! Walking a trace by parent: the shape checks of the CI gate (one chain from
//! the root down) and of the mesh (the hops above the worker's server span).
//! They read spans as `service:kind` hops, so the tests need no lineage.

/// One span of a trace as the shape checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// `service:kind`, the kind in lowercase, e.g. `gateway:client`.
    pub hop: String,
}

/// A trace's spans as hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHops {
    pub trace_id: String,
    pub hops: Vec<Hop>,
}

impl TraceHops {
    pub fn of(trace: &lineage::TraceView) -> TraceHops {
        let hops = trace
            .spans
            .iter()
            .map(|span| Hop {
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                hop: format!("{}:{}", span.service, span.kind.to_lowercase()),
            })
            .collect();
        TraceHops { trace_id: trace.trace_id.clone(), hops }
    }

    fn parent_of(&self, hop: &Hop) -> Option<&Hop> {
        let parent = hop.parent_span_id.as_deref()?;
        self.hops.iter().find(|candidate| candidate.span_id == parent)
    }
}

/// The hops from the root down, when the trace has one root and every span
/// has at most one child: a single parent chain through all its spans.
pub fn linear_chain(trace: &TraceHops) -> Option<Vec<String>> {
    let roots: Vec<&Hop> = trace.hops.iter().filter(|hop| hop.parent_span_id.is_none()).collect();
    let [root] = roots.as_slice() else { return None };
    let mut chain = vec![root.hop.clone()];
    let mut current = root.span_id.as_str();
    loop {
        let children: Vec<&Hop> =
            trace.hops.iter().filter(|hop| hop.parent_span_id.as_deref() == Some(current)).collect();
        match children.as_slice() {
            [] => break,
            [child] => {
                chain.push(child.hop.clone());
                current = &child.span_id;
            }
            _ => return None,
        }
    }
    (chain.len() == trace.hops.len()).then_some(chain)
}

/// The one `start` span among `traces` and its ancestors, which must be
/// `parents` in order (nearest first). The chain from the top down, or what
/// is wrong with it.
pub fn chain_above(traces: &[TraceHops], start: &str, parents: &[&str]) -> Result<Vec<String>, String> {
    let mut found =
        traces.iter().flat_map(|trace| trace.hops.iter().filter(|hop| hop.hop == start).map(move |hop| (trace, hop)));
    let (trace, mut hop) = match (found.next(), found.next()) {
        (Some(found), None) => found,
        (None, _) => return Err(format!("no {start} span")),
        (Some(_), Some(_)) => return Err(format!("more than one {start} span")),
    };
    let mut chain = vec![hop.hop.clone()];
    for expected in parents {
        if hop.parent_span_id.is_none() {
            return Err(format!("{} is a root", chain.join(" ← ")));
        }
        let Some(next) = trace.parent_of(hop) else {
            return Err(format!("the parent of {} is not in trace {}", hop.hop, trace.trace_id));
        };
        chain.push(next.hop.clone());
        if next.hop != *expected {
            return Err(format!("{} (expected {expected})", chain.join(" ← ")));
        }
        hop = next;
    }
    chain.reverse();
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace of `(span id, parent id, hop)`.
    fn trace(spans: &[(&str, Option<&str>, &str)]) -> TraceHops {
        TraceHops {
            trace_id: "t1".to_owned(),
            hops: spans
                .iter()
                .map(|(id, parent, hop)| Hop {
                    span_id: (*id).to_owned(),
                    parent_span_id: parent.map(str::to_owned),
                    hop: (*hop).to_owned(),
                })
                .collect(),
        }
    }

    const MESH: [(&str, Option<&str>, &str); 5] = [
        ("a", None, "gateway:server"),
        ("b", Some("a"), "gateway:client"),
        ("c", Some("b"), "envoy:server"),
        ("d", Some("c"), "envoy:client"),
        ("e", Some("d"), "worker:server"),
    ];
    const ABOVE_WORKER: [&str; 3] = ["envoy:client", "envoy:server", "gateway:client"];

    #[test]
    fn a_single_parent_chain_is_read_from_the_root_down() {
        let chain = linear_chain(&trace(&MESH)).expect("one chain");
        assert_eq!(chain, ["gateway:server", "gateway:client", "envoy:server", "envoy:client", "worker:server"]);
    }

    #[test]
    fn two_roots_or_a_fork_are_not_a_chain() {
        let mut two_roots = MESH;
        two_roots[4].1 = None;
        assert_eq!(linear_chain(&trace(&two_roots)), None);
        let mut fork = MESH;
        fork[4].1 = Some("c");
        assert_eq!(linear_chain(&trace(&fork)), None);
    }

    #[test]
    fn the_hops_above_the_worker_pass_through_envoy() {
        let chain = chain_above(&[trace(&MESH)], "worker:server", &ABOVE_WORKER).expect("chained");
        assert_eq!(chain, ["gateway:client", "envoy:server", "envoy:client", "worker:server"]);
    }

    #[test]
    fn a_worker_called_around_envoy_or_as_a_root_is_not_chained() {
        let mut around = MESH;
        around[4].1 = Some("b");
        let error = chain_above(&[trace(&around)], "worker:server", &ABOVE_WORKER).unwrap_err();
        assert_eq!(error, "worker:server ← gateway:client (expected envoy:client)");
        let mut root = MESH;
        root[4].1 = None;
        let error = chain_above(&[trace(&root)], "worker:server", &ABOVE_WORKER).unwrap_err();
        assert_eq!(error, "worker:server is a root");
        let error = chain_above(&[trace(&MESH[..4])], "worker:server", &ABOVE_WORKER).unwrap_err();
        assert_eq!(error, "no worker:server span");
    }
}
