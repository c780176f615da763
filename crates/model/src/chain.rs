//! The shape of a request of the fixed flow, one definition for the gate,
//! the flow steps' checks and the tests.

/// A request of the fixed flow (step 3 solved), span by span from the root
/// down, each as `service:kind`.
pub const EXPECTED_CHAIN: [&str; 6] = [
    "gateway:server",    // POST /orders
    "gateway:client",    // the call to the worker
    "worker:server",     // POST /work
    "worker:internal",   // the deferred work
    "worker:producer",   // orders publish
    "consumer:consumer", // orders process
];
