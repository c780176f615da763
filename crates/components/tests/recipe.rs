//! The recipe in `infra/lineage/` (book: "Use lineage on your own system"):
//! the collector configs must fan every span out to lineage unsampled, and
//! the collector this project builds must accept them.

use std::path::PathBuf;

use stitch_components::otelcol::COLLECTOR_VERSION;
use stitch_components::project_root;

const CONFIGS: [&str; 2] = ["infra/lineage/collector-fanout.yaml", "infra/lineage/collector-scale-out.yaml"];

fn read(file: &str) -> String {
    std::fs::read_to_string(project_root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The lines of the pipeline `name` under `service.pipelines`.
fn pipeline<'a>(config: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("    {name}:");
    let mut lines = config.lines().skip_while(|line| *line != header);
    assert!(lines.next().is_some(), "no pipeline {name}");
    lines.take_while(|line| line.starts_with("      ")).collect()
}

#[test]
fn lineage_gets_every_span_beside_the_usual_exporter() {
    for file in CONFIGS {
        let config = read(file);
        let usual = pipeline(&config, "traces").join("\n");
        let lineage = pipeline(&config, "traces/lineage").join("\n");
        assert!(usual.contains("receivers: [otlp]") && usual.contains("exporters: [otlp_grpc/backend]"), "{file}");
        assert!(lineage.contains("receivers: [otlp]"), "{file}: lineage must share the receiver");
        assert!(lineage.contains("lineage]"), "{file}: the lineage pipeline exports to lineage");
        // A sampler before lineage turns sampled spans into orphans.
        assert!(!lineage.contains("sampl"), "{file}: no sampling in lineage's pipeline");
    }
    let scale_out = read(CONFIGS[1]);
    assert!(scale_out.contains("routing_key: traceID"), "instances must each see whole traces");
    assert_eq!(scale_out.matches("_OTLP_GRPC:-").count(), 4, "receiver, backend and two lineage instances");
}

/// The cached collector, if `cargo xtask deps` (or a check) built it.
fn cached_collector() -> Option<PathBuf> {
    let binary = stitch_components::cache_dir().join(format!("otelcol-{COLLECTOR_VERSION}")).join("otelcol-stitch");
    binary.is_file().then_some(binary)
}

#[test]
fn the_collector_validates_the_recipe() {
    let Some(collector) = cached_collector() else {
        eprintln!("the collector is not built yet (`cargo xtask deps`): only the structure of the recipe was checked");
        return;
    };
    for file in CONFIGS {
        let output = std::process::Command::new(&collector)
            .arg("validate")
            .arg("--config")
            .arg(project_root().join(file))
            .output()
            .expect("the collector runs");
        assert!(
            output.status.success(),
            "{file} does not validate:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
