//! The queue: the worker publishes to Kafka, the consumer processes.

// ANCHOR: fix
// The mesh changes nothing here: the application writes and reads the
// message headers, exactly as in step 3.
pub use step_03_kafka_solution::messaging::{continue_trace, inject};
// ANCHOR_END: fix
