//! `compose.yaml` cannot run here (no Docker engine), so these checks keep it
//! in step with the native launcher's configuration.

use stitch_harness::kafka::APACHE_KAFKA_VERSION;
use stitch_harness::project_root;

fn compose() -> String {
    std::fs::read_to_string(project_root().join("compose.yaml")).expect("compose.yaml exists")
}

#[test]
fn compose_runs_the_kafka_version_the_native_launcher_runs() {
    let image = format!("image: apache/kafka:{APACHE_KAFKA_VERSION}");
    assert!(compose().contains(&image), "compose.yaml must use `{image}` (infra/kafka/pom.xml pins that version)");
}

#[test]
fn compose_mounts_the_shared_infra_files() {
    let compose = compose();
    for file in ["./infra/kafka/server.properties", "infra/lineage/Dockerfile"] {
        assert!(compose.contains(file), "compose.yaml must use {file}");
        let path = project_root().join(file.trim_start_matches("./"));
        assert!(path.is_file(), "{} is missing", path.display());
    }
}

#[test]
fn compose_publishes_only_on_loopback() {
    for line in compose().lines().map(str::trim).filter(|line| line.starts_with("- \"") && line.contains(':')) {
        if line.contains("/") {
            continue; // a volume, not a port
        }
        assert!(line.starts_with("- \"127.0.0.1:"), "published beyond loopback: {line}");
    }
}
