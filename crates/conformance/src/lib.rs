//! The W3C Trace Context test service: the contract of the suite in
//! github.com/w3c/trace-context (`test/`), on the propagation set-up every
//! Stitch service uses, with the project's propagator or, to measure the
//! difference, OpenTelemetry's alone ([`telemetry::Propagator`]).
//!
//! The suite POSTs a JSON list of `{"url": ..., "arguments": [...]}` to the
//! service; the service POSTs each item's `arguments` to its `url`, carrying
//! `traceparent`/`tracestate` as the W3C propagator decides.

pub mod inbound;
pub mod listen;
pub mod service;
pub mod telemetry;
