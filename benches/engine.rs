//! Matching speed on the shipped knowledge base. Each bench asserts its result inside the
//! timed loop, so a fast-but-wrong change fails instead of looking good.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wabot::engine::Engine;
use wabot::knowledge::corpus::KnowledgeBase;

fn shipped_corpus(c: &mut Criterion) {
    let kb = KnowledgeBase::embedded().expect("embedded corpus");
    c.bench_function("build/shipped", |b| {
        b.iter(|| {
            let e = Engine::build(black_box(kb.entries()), kb.lexicon());
            assert_eq!(e.len(), kb.entries().len());
        })
    });
    let engine = Engine::build(kb.entries(), kb.lexicon());
    c.bench_function("query/shipped/en", |b| {
        b.iter(|| {
            let m = engine.answer(black_box("how do I reset my password?"), None).expect("answered");
            assert_eq!(m.entry.id, "password-reset-en");
        })
    });
    c.bench_function("query/shipped/fr-typo", |b| {
        b.iter(|| {
            let m = engine.answer(black_box("attestation de travial svp"), None).expect("answered");
            assert_eq!(m.entry.id, "employment-certificate-fr");
        })
    });
    c.bench_function("query/shipped/out-of-scope", |b| {
        b.iter(|| assert!(engine.answer(black_box("who won the match last night?"), None).is_none()))
    });
}

criterion_group!(benches, shipped_corpus);
criterion_main!(benches);
