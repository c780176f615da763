//! The Prometheus rules of `infra/lineage/` read only series lineage exposes.

mod common;

use common::*;
use lineage::{Config, Store};

#[test]
fn recording_rules_name_only_exposed_series() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/lineage/orphan-rules.yaml");
    let rules = std::fs::read_to_string(path).expect("infra/lineage/orphan-rules.yaml");
    let mut store = Store::new(Config::ephemeral());
    store.ingest(&request(connected_chain(1, 0, "1")), BASE);
    store.ingest(&request(vec![server(2, 2, "worker", "POST /work").parent(1).order("2")]), BASE);
    store.settle_all();
    let exposition = lineage::render_metrics(&store);
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("lineage_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        let exposed = exposition
            .lines()
            .any(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')));
        assert!(exposed, "{name} is not in lineage's /metrics:\n{exposition}");
    }
}
