//! USE-m3 per message, beside the lexical engine's answer in the same run for the ratio.
//!
//! `embed/one-thread/*` runs inside a one-thread rayon pool, so `rten-gemm` does not split a
//! product across cores; `embed/default/*` uses the global pool (both cores here). Each bench
//! checks its result inside the timed loop. Load time is `load/use-m3` (checksum, parse,
//! decode check of every row, weight packing); the first load and the resident set before and
//! after it are printed first.
//!
//! The wheel's own engine, for the same messages: `python3 models/use_reference.py --bench`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wabot::engine::Engine;
use wabot::engine::semantic::{Role, SentenceEncoder};
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::knowledge::semantic_models::{default_dir, load_use_m3};

const SHORT: &str = "How do I reset my password?";
const LONG: &str = "I'm travelling to Lyon next week for a client meeting: how do I book the train and the \
                    hotel, and which costs are covered by the company?";

/// The process's resident set, from `/proc/self/status` (0 where there is none).
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

fn use_m3(c: &mut Criterion) {
    let dir = default_dir();
    let without = resident_mib();
    let started = std::time::Instant::now();
    let first = load_use_m3(&dir).expect("model");
    let load = started.elapsed();
    let with = resident_mib();
    assert_eq!(first.embed(SHORT, Role::Query).len(), 512);
    eprintln!(
        "USE-m3: first load {load:.0?}; resident {without:.1} MiB before, {with:.1} MiB with the model, {:.1} MiB after a first message",
        resident_mib()
    );
    drop(first);
    c.bench_function("load/use-m3", |b| b.iter(|| assert_eq!(load_use_m3(&dir).expect("model").dim(), 512)));
    let model = load_use_m3(&dir).expect("model");
    let kb = KnowledgeBase::embedded().expect("embedded corpus");
    let engine = Engine::build(kb.entries(), kb.lexicon());
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");

    c.bench_function("lexical/answer/short", |b| {
        b.iter(|| {
            assert_eq!(engine.answer(black_box(SHORT), None).expect("answered").entry.id, "password-reset-en")
        })
    });
    for (name, text) in [("short", SHORT), ("long", LONG)] {
        let tokens = model.tokenize(text).len();
        c.bench_function(&format!("embed/one-thread/{name} ({tokens} tokens)"), |b| {
            one.install(|| b.iter(|| assert_eq!(model.embed(black_box(text), Role::Query).len(), 512)))
        });
        c.bench_function(&format!("embed/default/{name} ({tokens} tokens)"), |b| {
            b.iter(|| assert_eq!(model.embed(black_box(text), Role::Query).len(), 512))
        });
        c.bench_function(&format!("tokenize/{name}"), |b| {
            b.iter(|| assert_eq!(model.tokenize(black_box(text)).len(), tokens))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = use_m3
}
criterion_main!(benches);
