//! `compose.yaml` cannot run here (no Docker engine), so these checks keep it
//! in step with the native launcher's configuration.

use stitch_components::kafka::APACHE_KAFKA_VERSION;
use stitch_components::project_root;

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

#[test]
fn compose_runs_envoy_from_the_learners_file_as_the_harness_renders_it() {
    use stitch_components::envoy::{CONFIG_FILE, ENVOY_VERSION, EnvoyPorts, render_config};
    let compose = compose();
    let image = format!("image: envoyproxy/envoy:v{ENVOY_VERSION}");
    assert!(compose.contains(&image), "compose.yaml must use `{image}` (the harness runs Envoy {ENVOY_VERSION})");
    // What a learner runs is step 6's lesson as they left it.
    let mounted = format!("./steps/step-06-mesh/{CONFIG_FILE}:");
    assert!(compose.contains(&mounted), "compose.yaml must mount {mounted}");
    // compose's sed must fill in every placeholder the harness fills in,
    // the solved file's (which uses them all) as well as the shipped one's.
    let ports = EnvoyPorts { admin: 9901, listen: 10000, worker: 8081, lineage_otlp: 4317 };
    for dir in ["steps", "solutions"] {
        let path = project_root().join(dir).join("step-06-mesh").join(CONFIG_FILE);
        let template = std::fs::read_to_string(&path).expect("step 6's Envoy template");
        render_config(&template, &ports).unwrap_or_else(|err| panic!("{}: {err:#}", path.display()));
    }
    for (placeholder, port, _) in ports.placeholders() {
        assert!(compose.contains(&format!("s/{placeholder}/{port}/")), "compose.yaml must replace {placeholder}");
    }
}

#[test]
fn compose_runs_the_tier_from_the_files_and_releases_the_native_launcher_builds() {
    use stitch_components::otelcol::{COLLECTOR_VERSION, JAEGER_VERSION};
    let compose = compose();
    let collector = format!("image: otel/opentelemetry-collector-contrib:{COLLECTOR_VERSION}");
    assert!(compose.contains(&collector), "compose.yaml must use `{collector}`");
    // Jaeger's Go module v1.x.y is its v2.(x-63).y release.
    let minor: u32 = JAEGER_VERSION.split('.').nth(1).and_then(|minor| minor.parse().ok()).expect("v1.N.P");
    let patch = JAEGER_VERSION.rsplit('.').next().expect("v1.N.P");
    let jaeger = format!("image: jaegertracing/jaeger:2.{}.{patch}", minor - 63);
    assert!(compose.contains(&jaeger), "compose.yaml must use `{jaeger}` (the module {JAEGER_VERSION})");
    for file in [
        "./infra/collector/tier1.yaml",
        "./infra/collector/tier2.yaml",
        "./infra/jaeger/config.yaml",
        // Step 4's lesson, layered last: compose runs the learner's settings.
        "./steps/step-04-tail-sampling/sampling.yaml",
    ] {
        assert!(compose.contains(file), "compose.yaml must mount {file}");
    }
    // Every variable a config reads must be set by compose for the service
    // that mounts it (or have a default in the file).
    for (file, services) in [
        ("infra/collector/tier1.yaml", &["tier1"][..]),
        ("infra/collector/tier2.yaml", &["tier2-a", "tier2-b"][..]),
        ("solutions/step-04-tail-sampling/sampling.yaml", &["tier2-a", "tier2-b"][..]),
        ("infra/jaeger/config.yaml", &["jaeger"][..]),
    ] {
        let config = std::fs::read_to_string(project_root().join(file)).expect("config exists");
        for variable in config.split("${env:").skip(1).filter_map(|rest| rest.split('}').next()) {
            if variable.contains(":-") {
                continue;
            }
            for service in services {
                let block =
                    compose.split(&format!("\n  {service}:\n")).nth(1).expect("the service").split("\n\n").next();
                assert!(
                    block.is_some_and(|block| block.contains(&format!("{variable}:"))),
                    "compose.yaml's {service} must set {variable}, which {file} reads"
                );
            }
        }
    }
}
