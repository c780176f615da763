//! The final flow broken at the queue only (step 3 as shipped).

fn main() -> std::process::ExitCode {
    stitch_flow::run(env!("CARGO_BIN_NAME"), stitch_broken_flows::BROKEN_FROM_MESSAGING)
}
