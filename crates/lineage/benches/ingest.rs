//! Receiver throughput: batches of 512 spans decoded from protobuf bytes and
//! stored, as the OTLP receivers do; criterion reports spans per second.
//!
//! `decode_ingest_and_settle_512` is the receivers' path (only the fields
//! lineage keeps are read); the `full_decode_*` benches decode whole
//! requests into opentelemetry-proto's types first, as the JSON path does.
//! The `ingest_thread_cpu_time` group times the receivers' path by the
//! thread's CPU time: its cost on one core even on a busy machine.

mod workload;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lineage::{Config, Store};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// Distinct batches cycled through; the store is reset (untimed) on each wrap
/// so spans are never duplicates and the store stays within its bounds.
const BATCHES: u64 = 64;

fn encoded_batches() -> Vec<Vec<u8>> {
    (0..BATCHES).map(|b| workload::batch(b).encode_to_vec()).collect()
}

/// Which clock a bench reads.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    /// CPU time of this thread: the cost on one core, whatever else the
    /// machine runs (on a shared machine wall time also counts the time
    /// other processes held the core).
    ThreadCpu,
}

impl Clock {
    fn now(self) -> Duration {
        match self {
            Clock::Wall => WALL_ORIGIN.get_or_init(Instant::now).elapsed(),
            Clock::ThreadCpu => {
                let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: clock_gettime writes into the timespec it is given.
                let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
                assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
                Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
            }
        }
    }
}

static WALL_ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Times `iters` rounds of `work` on one store, emptied every `BATCHES`
/// rounds so it stays within its bounds.
fn timed(iters: u64, work: impl FnMut(&mut Store, usize, u64)) -> Duration {
    timed_with(Clock::Wall, iters, work)
}

fn timed_with(clock: Clock, iters: u64, mut work: impl FnMut(&mut Store, usize, u64)) -> Duration {
    let mut store = Store::new(Config::ephemeral());
    let mut elapsed = Duration::ZERO;
    let now = 1_700_000_000_000_000_000u64;
    for i in 0..iters {
        let n = (i % BATCHES) as usize;
        if n == 0 && i > 0 {
            store.reset();
        }
        let started = clock.now();
        work(&mut store, n, now + i);
        elapsed += clock.now().saturating_sub(started);
    }
    elapsed
}

/// Store work only: requests are decoded before the clock starts.
fn run_predecoded(requests: &[ExportTraceServiceRequest], iters: u64) -> Duration {
    timed(iters, |store, n, now| {
        black_box(store.ingest(&requests[n], now));
        store.settle_all();
    })
}

/// The receivers' path: bytes read in place, then stored.
fn run_wire(batches: &[Vec<u8>], iters: u64, settle: bool) -> Duration {
    run_wire_on(Clock::Wall, batches, iters, settle)
}

fn run_wire_on(clock: Clock, batches: &[Vec<u8>], iters: u64, settle: bool) -> Duration {
    timed_with(clock, iters, |store, n, now| {
        black_box(store.ingest_protobuf(&batches[n], now).expect("valid batch"));
        if settle {
            store.settle_all();
        }
    })
}

fn run_full_decode(batches: &[Vec<u8>], iters: u64, settle: bool) -> Duration {
    timed(iters, |store, n, now| {
        let request = ExportTraceServiceRequest::decode(&batches[n][..]).expect("valid batch");
        black_box(store.ingest(&request, now));
        if settle {
            store.settle_all();
        }
    })
}

fn ingest(c: &mut Criterion) {
    let batches = encoded_batches();
    let bytes: usize = batches.iter().map(Vec::len).sum::<usize>() / batches.len();
    let sample = workload::batch(0);
    let spans = sample.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
    let attributes = spans.map(|s| s.attributes.len()).sum::<usize>() as f64 / workload::SPANS_PER_BATCH as f64;
    eprintln!(
        "batch of {} spans: {bytes} bytes of protobuf, {attributes:.1} attributes per span",
        workload::SPANS_PER_BATCH
    );
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(workload::SPANS_PER_BATCH as u64));
    group.bench_function("full_decode_512", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % batches.len();
            black_box(ExportTraceServiceRequest::decode(&batches[i][..]).expect("valid batch"))
        })
    });
    let requests: Vec<ExportTraceServiceRequest> = (0..BATCHES).map(workload::batch).collect();
    group.bench_function("ingest_and_settle_512_predecoded", |b| {
        b.iter_custom(|iters| run_predecoded(&requests, iters))
    });
    group.bench_function("decode_and_ingest_512", |b| b.iter_custom(|iters| run_wire(&batches, iters, false)));
    group.bench_function("decode_ingest_and_settle_512", |b| b.iter_custom(|iters| run_wire(&batches, iters, true)));
    group.bench_function("full_decode_ingest_and_settle_512", |b| {
        b.iter_custom(|iters| run_full_decode(&batches, iters, true))
    });
    group.finish();

    let mut group = c.benchmark_group("ingest_thread_cpu_time");
    group.throughput(Throughput::Elements(workload::SPANS_PER_BATCH as u64));
    group.bench_function("decode_ingest_and_settle_512", |b| {
        b.iter_custom(|iters| run_wire_on(Clock::ThreadCpu, &batches, iters, true))
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
