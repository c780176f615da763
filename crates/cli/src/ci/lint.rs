//! The lint gate `cargo xtask ci` runs before anything slow.

use anyhow::Context as _;
use stitch_components::process;

/// Formatting, then clippy with every warning an error. Either failing stops
/// `ci` at once.
pub(super) fn lint() -> anyhow::Result<()> {
    type Gate<'a> = (&'a str, &'a [&'a dyn AsRef<std::ffi::OsStr>], &'a str);
    let gates: [Gate; 2] = [
        ("cargo fmt --all -- --check", &[&"fmt", &"--all", &"--", &"--check"], "run `cargo fmt --all` and commit"),
        (
            "cargo clippy --workspace --all-targets -- -D warnings",
            &[&"clippy", &"--workspace", &"--all-targets", &"--", &"-D", &"warnings"],
            "fix the warnings above",
        ),
    ];
    for (name, args, fix) in gates {
        eprintln!("── {name}");
        let status = process::cargo(args).unchecked().run().with_context(|| format!("running {name}"))?.status;
        if !status.success() {
            anyhow::bail!("lint gate: `{name}` failed; {fix}");
        }
    }
    Ok(())
}
