//! Silent failure 2: no global propagator.
//!
//! The final solution's boundaries, unchanged, in services whose telemetry
//! set-up never calls `global::set_text_map_propagator`. OpenTelemetry's
//! global propagator is then a no-op: `inject` writes nothing and `extract`
//! finds nothing, without an error. The HTTP hop and the Kafka queue break in
//! every request; the async hand-off holds, because the context it carries
//! never leaves the process.
//!
//! Runs like a step: `trap-no-propagator gateway|worker|consumer`.

fn main() -> std::process::ExitCode {
    stitch_flow::run_with(env!("CARGO_PKG_NAME"), step_03_kafka_solution::BOUNDARIES, |telemetry| {
        telemetry.install_propagator = false;
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry::global;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use rdkafka::message::{Headers as _, OwnedHeaders};

    #[test]
    fn the_final_solution_injects_nothing_until_a_propagator_is_set() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let _inside = runtime.enter();
        let _telemetry = stitch_telemetry::init(&stitch_telemetry::Options {
            service: "worker".to_owned(),
            // Nothing is exported: the test ends long before the first batch.
            otlp_endpoint: "http://127.0.0.1:9".to_owned(),
            filter: "info".to_owned(),
            resource: Vec::new(),
            install_propagator: false,
            export_delay: None,
            tracing: stitch_telemetry::Tracing::On,
            max_queue_size: stitch_telemetry::MAX_QUEUE_SIZE,
        })
        .expect("telemetry starts");
        let span = tracing::info_span!("publish", otel.kind = "producer");

        let headers = step_03_kafka_solution::messaging::inject(&span, OwnedHeaders::new());
        assert_eq!(headers.count(), 0, "the no-op propagator writes nothing");

        global::set_text_map_propagator(TraceContextPropagator::new());
        let headers = step_03_kafka_solution::messaging::inject(&span, OwnedHeaders::new());
        let keys: Vec<&str> = headers.iter().map(|header| header.key).collect();
        assert!(keys.contains(&"traceparent"), "the same code injects once a propagator is set: {keys:?}");
    }
}
