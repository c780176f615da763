//! Whether the `stitch` binary and the services share one build of every
//! dependency: cargo unifies features only among the packages of one build,
//! and `cargo xtask` builds the command line, then each step on its own. A
//! dependency whose features differ between the two graphs is compiled
//! twice, and so is everything above it (see crates/workspace-hack).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};

/// Each package of `package`'s graph (normal and build edges) with the
/// feature sets it is built with: a build dependency can be built for the
/// build scripts with other features than for the binary.
pub fn features(package: &str) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let output = stitch_components::process::cargo(&[
        &"tree",
        &"--package",
        &package,
        &"--edges",
        &"normal,build",
        &"--prefix",
        &"none",
        &"--format",
        &"{p}|{f}",
    ])
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .run()
    .context("running cargo tree")?;
    if !output.status.success() {
        bail!("cargo tree -p {package} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8(output.stdout).context("cargo tree printed non-UTF-8")?;
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let Some((package, features)) = line.trim_end_matches(" (*)").split_once('|') else { continue };
        let Some(name) = package.split(" (").next() else { continue };
        graph.entry(name.trim().to_owned()).or_default().insert(features.trim().to_owned());
    }
    Ok(graph)
}

/// The shared dependencies that `b` builds with a feature set `a` does not.
pub fn differences(a: &BTreeMap<String, BTreeSet<String>>, b: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    b.iter()
        .filter_map(|(package, sets)| {
            let other = a.get(package)?;
            let missing: Vec<&String> = sets.difference(other).collect();
            (!missing.is_empty()).then(|| {
                let other: Vec<&String> = other.iter().collect();
                format!("{package}: {missing:?}, where stitch-cli has {other:?}")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_package_and_both_feature_sets() {
        let set = |sets: &[&str]| sets.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<String>>();
        let a = BTreeMap::from([("mio v1".to_owned(), set(&["log,net"])), ("w v1".to_owned(), set(&["", "std"]))]);
        let b = BTreeMap::from([
            ("mio v1".to_owned(), set(&["net"])),
            ("w v1".to_owned(), set(&["std"])),
            ("y v1".to_owned(), set(&[""])),
        ]);
        assert_eq!(differences(&a, &b), vec![r#"mio v1: ["net"], where stitch-cli has ["log,net"]"#.to_owned()]);
    }

    /// The command line and every flow step see the same features of each
    /// dependency they share: a first `cargo xtask demo` compiles each once.
    #[test]
    fn one_build_of_each_dependency() {
        let cli = features("stitch-cli").unwrap();
        for step in stitch_runner::step::all().unwrap().iter().filter(|step| step.is_flow()) {
            for solution in [false, true] {
                if solution && !step.has_solution() {
                    continue;
                }
                let package = step.package(solution);
                let differ = differences(&cli, &features(&package).unwrap());
                assert!(
                    differ.is_empty(),
                    "{package} and stitch-cli turn on different features of shared dependencies, which are then \
                     compiled twice; add the union to crates/workspace-hack:\n{}",
                    differ.join("\n")
                );
            }
        }
    }
}
