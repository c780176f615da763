//! The shape of a request of the fixed flow, one definition for the gate,
//! the flow steps' checks and the tests.

use lineage::Boundary;

use crate::hop::Hop;

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

/// The position in [`EXPECTED_CHAIN`] of the span right after `boundary`:
/// its parent, the span before it, is on the boundary's other side.
pub fn after(boundary: Boundary) -> usize {
    match boundary {
        Boundary::Http => 2,
        Boundary::Async => 3,
        Boundary::Messaging => 5,
    }
}

/// The hop at `index` of [`EXPECTED_CHAIN`].
pub fn hop(index: usize) -> Hop {
    EXPECTED_CHAIN[index].parse().expect("EXPECTED_CHAIN holds `service:kind` hops")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_boundary_is_crossed_between_two_services_or_out_of_a_request() {
        // The HTTP hop and the queue cross services; the hand-off stays in the worker.
        assert_ne!(hop(after(Boundary::Http)).service, hop(after(Boundary::Http) - 1).service);
        assert_eq!(hop(after(Boundary::Async)).service, hop(after(Boundary::Async) - 1).service);
        assert_ne!(hop(after(Boundary::Messaging)).service, hop(after(Boundary::Messaging) - 1).service);
        for (index, expected) in EXPECTED_CHAIN.iter().enumerate() {
            assert_eq!(hop(index).to_string(), *expected);
        }
    }
}
