//! The job against an in-process lineage: every span lost without shutdown,
//! every span received with it.

use std::process::Command;

const SPANS: u64 = 20;

fn spans_received(lineage: &lineage::Lineage, shutdown: bool) -> u64 {
    lineage.reset();
    let mut job = Command::new(env!("CARGO_BIN_EXE_trap-no-shutdown"));
    job.args(["--spans", &SPANS.to_string(), "--otlp-endpoint", &lineage.otlp_grpc_endpoint()])
        .env_remove("RUST_LOG")
        .env_remove("OTEL_BSP_SCHEDULE_DELAY");
    if shutdown {
        job.arg("--shutdown");
    }
    let status = job.status().expect("the job starts");
    assert!(status.success(), "the job failed: {status}");
    // The job has exited: whatever it exported was acknowledged already.
    lineage.report().spans_received
}

#[test]
fn a_job_that_exits_without_shutdown_loses_every_span() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let lineage = runtime
        .block_on(lineage::Lineage::start(lineage::Config {
            entry_services: vec!["orders-job".to_owned()],
            ..lineage::Config::ephemeral()
        }))
        .expect("lineage starts");
    assert_eq!(spans_received(&lineage, false), 0);
    assert_eq!(spans_received(&lineage, true), SPANS);
    runtime.block_on(lineage.shutdown());
}
