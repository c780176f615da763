//! No code: see `Cargo.toml`. The workshop's command line and its services
//! share one build of every dependency because both depend on this crate.
