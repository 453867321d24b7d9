//! Memory of an index: builds synthetic corpora and reports the heap the index holds (live
//! allocations, counted exactly) and the process's resident set, with the binary's
//! allocator. Run with `cargo bench --bench memory`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use wabot::engine::Engine;

/// mimalloc, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to mimalloc, a correct allocator; the counter
// only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_mib() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / 1048576.0
}

/// Resident set size in MiB, from /proc (Linux).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run passes nothing and
    // only needs this to build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let kb = wabot::knowledge::corpus::KnowledgeBase::embedded().expect("embedded corpus");
    for n in [10_000, 100_000] {
        let corpus = wabot::synthetic::corpus(n, 42);
        let text_mib = corpus
            .iter()
            .map(|e| e.id.len() + e.answer.len() + e.questions.iter().map(String::len).sum::<usize>())
            .sum::<usize>() as f64
            / 1048576.0;
        let before = rss_mib().unwrap_or(0.0);
        let heap_before = live_mib();
        let engine = Engine::build(&corpus, kb.lexicon());
        drop(corpus);
        let heap = live_mib() - heap_before + text_mib;
        // Give the allocator its moment to return the build's freed pages.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let after = rss_mib().unwrap_or(0.0);
        assert_eq!(engine.len(), n);
        println!(
            "{n:>7} entries: index heap {heap:.1} MiB (of which the entries' text {text_mib:.1} MiB); \
             resident set grew {:.1} MiB to {after:.1} MiB — {}",
            after - before,
            engine.snapshot().stats()
        );
    }
}
