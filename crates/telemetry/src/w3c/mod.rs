//! W3C Trace Context (<https://www.w3.org/TR/trace-context-2/>), held to the
//! spec at every boundary: the grammar of each header, the rules it can
//! break, and the propagator that applies them.

pub mod http_fields;
mod propagator;
pub mod traceparent;
pub mod tracestate;
mod violation;

pub use propagator::W3cPropagator;
pub use violation::Violation;
