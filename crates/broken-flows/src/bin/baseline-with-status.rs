//! The broken baseline, its failures marked on their spans as step 4's
//! solution marks them (what `cargo xtask sampling-cannot-repair` runs).

fn main() -> std::process::ExitCode {
    stitch_flow::run(env!("CARGO_BIN_NAME"), stitch_broken_flows::BASELINE_WITH_STATUS)
}
