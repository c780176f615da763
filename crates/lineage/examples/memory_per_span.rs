//! Prints how many heap bytes the store holds per span, counted by a global
//! allocator: 100 000 realistic spans (traces of 8), open and then settled.
//!
//!     cargo run --release -p lineage --example memory_per_span

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use lineage::{Config, Store};
use prost::Message;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SPANS: usize = 100_000;

fn main() {
    let batches: Vec<Vec<u8>> =
        (0..SPANS.div_ceil(workload::SPANS_PER_BATCH) as u64).map(|b| workload::batch(b).encode_to_vec()).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut store = Store::new(Config { max_spans: 1_000_000, max_traces: 1_000_000, ..Config::ephemeral() });
    let now = 1_700_000_000_000_000_000u64;
    for (i, bytes) in batches.iter().enumerate() {
        store.ingest_protobuf(bytes, now + i as u64 * 1_000_000).expect("valid batch");
    }
    let held = store.held_spans();
    let open = LIVE.load(Ordering::Relaxed) - before;
    store.settle_all();
    let settled = LIVE.load(Ordering::Relaxed) - before;
    println!("spans held:               {held} in {} traces", store.held_traces());
    println!("heap held, open traces:   {open} bytes = {:.1} bytes/span", open as f64 / held as f64);
    println!("heap held, settled:       {settled} bytes = {:.1} bytes/span", settled as f64 / held as f64);
    let report = store.report();
    assert_eq!(report.spans_settled, held);
}
