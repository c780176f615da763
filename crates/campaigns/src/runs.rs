//! Runs of a stage outside its step's own check, for the book's chapters:
//! step 0's broken flow through step 4's tier, step 6's Envoy with one span
//! per request, and step 8's long mode. The stages know nothing of the runner; these compose the two.

use std::time::Duration;

use anyhow::{Context as _, Result};

use stitch_model::CheckRun;
use stitch_model::stage::long_trace::{HardLimit, Workload};

use stitch_runner::lesson::LessonCrate;

use crate::check::{CheckOptions, Variant, run_staged};
use crate::envoy::SpanShape;
use crate::kafka::BrokerKind;
use crate::long_trace::{LongTraceOptions, LongTraceStage, long_mode};
use crate::mesh::MeshStage;
use crate::stages::StageKind;
use crate::tier::{Lesson, TierOptions, TierStage};

/// Step 0's broken flow, its failures marked as step 4's solution marks
/// them, through step 4's tier: what a sampler does with
/// orphan fragments. `requests` as many as step 4 drives, so that 1% of each
/// fragment kind is a count.
pub fn sampling_cannot_repair(requests: usize, kafka: BrokerKind) -> Result<CheckRun> {
    let step = crate::step::all()?.into_iter().next().context("no steps")?;
    let options = TierOptions {
        spans_per_request: step.full_expectation()?.spans_per_request as usize,
        ..TierOptions::solved()?
    };
    let mut stage = TierStage::new(Lesson::CannotRepair, options);
    let variant = Variant { name: Some(format!("{}-through-the-tier", step.name)), ..Default::default() };
    // Failures marked on their spans (step 4's solution), or the errors
    // policy would have nothing to keep, fragment or request.
    let lesson = LessonCrate::other("stitch-broken-flows", "baseline-with-status");
    let check = CheckOptions { lesson, step, requests, kafka, concurrency: 8 };
    run_staged(&check, &variant, Some(&mut stage))
}

/// Step 6's solution with Envoy recording one span per request
/// (`spawn_upstream_span: false`), beside the check's two.
pub fn mesh_one_sidecar_span(requests: usize, kafka: BrokerKind) -> Result<CheckRun> {
    let step = crate::step::all()?
        .into_iter()
        .find(|step| step.meta.stage == Some(StageKind::Mesh))
        .context("no step with the mesh stage")?;
    let lesson = LessonCrate::solution(&step);
    let mut stage = MeshStage::with_shape(&lesson.dir, SpanShape::OneSidecarSpan)?;
    let variant = Variant { name: Some(format!("{}-one-sidecar-span", step.name)), ..Default::default() };
    let check = CheckOptions { lesson, step, requests, kafka, concurrency: 8 };
    run_staged(&check, &variant, Some(&mut stage))
}

/// One long run of step 8, unsolved or solved, with this tier.
pub fn long_trace(
    label: &str,
    solution: bool,
    workload: Workload,
    decision_wait: Duration,
    memory_limit_mib: Option<(u64, u64)>,
    hard_limit: Option<HardLimit>,
    kafka: BrokerKind,
) -> Result<CheckRun> {
    let step = crate::step::all()?
        .into_iter()
        .find(|step| step.meta.stage == Some(StageKind::LongTrace))
        .context("no step with the long-trace stage")?;
    let orders = workload.orders.context("a long run's workload says how many orders go alongside")?;
    let mut stage = LongTraceStage::new(LongTraceOptions {
        label: label.to_owned(),
        workload,
        decision_wait,
        // By step 4's rule for the run's wait: a decided trace keeps its
        // slot until a newer one takes it, so an oversized `num_traces`
        // holds every trace of the run.
        num_traces: None,
        decision_cache: long_mode::DECISION_CACHE,
        memory_limit_mib,
        sample_every: Duration::from_secs(5),
        hard_limit,
    });
    let variant = Variant { name: Some(format!("{}-long-{label}", step.name)), ..Default::default() };
    let check =
        CheckOptions { lesson: LessonCrate::of(&step, solution), step, requests: orders, kafka, concurrency: 8 };
    run_staged(&check, &variant, Some(&mut stage))
}
