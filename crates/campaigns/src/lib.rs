//! Campaigns: measurements that are not a learner's check. The soak (a
//! steady load, faults, generated bad input), the book's other runs (step 0
//! through the tier, the mesh with one sidecar span, step 8's long mode).
//! Each starts its parts through the runner and the components.

pub mod overhead;
pub mod profile;
pub mod runs;
pub mod soak;

use stitch_components::{envoy, kafka, proc_stat, process};
use stitch_runner::{check, gateway, long_trace, mesh, sdk_export, stages, step, tier};
