//! `allowlist.js` in seconds: runs `tests/allowlist.test.mjs` under Node's
//! own test runner, the Node the check bundles the page with.

use std::path::Path;

/// What Node's spec reporter says of the failed tests: each test's name and
/// its message, without stack frames or the assertion's fields.
fn failures(report: &str) -> String {
    let failed = report.split("failing tests:").nth(1).unwrap_or(report);
    let noise = ["at ", "generatedMessage:", "code:", "actual:", "expected:", "operator:", "}"];
    failed
        .lines()
        .filter(|line| !noise.iter().any(|start| line.trim_start().starts_with(start)))
        .map(|line| line.trim_end().trim_end_matches(" {"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_allowlist_matches_every_allowed_url_and_no_look_alike() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "tests/allowlist.test.mjs"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "running `node --test` ({err}): step 7 needs Node 20 or later, as its check does (`cargo xtask doctor`)"
            )
        });
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the propagation allowlist is wrong; Node's test runner (`node --test tests/allowlist.test.mjs`) says:\n{}\n\n\
         read the exercise in book/src/step-07-browser.md, or take a hint: cargo xtask hint step-7",
        failures(&report)
    );
}
