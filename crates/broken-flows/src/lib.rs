//! The final flow broken at one boundary and every later one, as the
//! unsolved steps ship it: step 2's crate (the HTTP hop fixed, the async
//! hand-off and the queue broken) and step 3's (only the queue broken).
//! Step 5's gate is judged on runs of these, so they are built from crates a
//! learner never edits: the broken baseline and the solutions. `cargo xtask
//! ci` proves that each unsolved lesson file is the baseline's code.
//! (Broken at the HTTP hop, the flow is the baseline itself.) And the
//! baseline with its failures marked as step 4's solution marks them: what
//! the tail-sampling tier is fed to show that sampling cannot repair lineage.

use stitch_flow::Boundaries;

/// Step 2 as shipped: the HTTP hop of step 1's solution, the rest broken.
pub const BROKEN_FROM_ASYNC: Boundaries = Boundaries {
    http_client: step_01_http_solution::http::client,
    continue_http: step_01_http_solution::http::continue_trace,
    ..step_00_broken::BOUNDARIES
};

/// Step 3 as shipped: the HTTP hop and the async hand-off of the solutions,
/// the queue broken.
pub const BROKEN_FROM_MESSAGING: Boundaries =
    Boundaries { spawn: step_02_async_solution::spawn::spawn, ..BROKEN_FROM_ASYNC };

/// The baseline, every boundary broken, its failed orders marked on their
/// spans (step 4's solution): the tier's errors policy can keep the failed
/// order's fragment, and still never the request.
pub const BASELINE_WITH_STATUS: Boundaries =
    Boundaries { record_failure: step_04_tail_sampling_solution::status::record_failure, ..step_00_broken::BOUNDARIES };
