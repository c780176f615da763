//! The final flow broken at the async hand-off and the queue (step 2 as shipped).

fn main() -> std::process::ExitCode {
    stitch_flow::run(env!("CARGO_BIN_NAME"), stitch_broken_flows::BROKEN_FROM_ASYNC)
}
