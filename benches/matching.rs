//! Matching speed on synthetic corpora of 1k to 100k entries ([`wabot::synthetic`]), beside
//! the tutorial's refit-per-message algorithm ([`baseline`]).
//!
//! Groups: `tokenizer` (MB/s), `build`, `query` (one `answer`), `batch` (1,000 queries by
//! `answer_batch`, and one by one), `incremental` (`upsert` / `remove` in a 100k index) and
//! `baseline`. Every bench asserts its result inside the timed loop, so a fast-but-wrong
//! change fails instead of looking good. Queries are the synthetic paraphrases the engine answered right when the fixture
//! was built; they must stay right.
//!
//! Corpora and engines are built once, on first use, and shared by the groups; selecting
//! groups (`cargo bench --bench matching -- query`) builds only what they need. The whole
//! run takes a few minutes on two cores, most of it building 100k entries.

#[path = "baseline/mod.rs"]
mod baseline;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wabot::engine::{Engine, FaqEntry, Lexicon, text};
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::synthetic;

// The binary's allocator, so that the figures are the ones `wabot` gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Seed of every corpus and query list here.
const SEED: u64 = 42;
/// Queries generated per fixture, before keeping the verified ones.
const CANDIDATE_QUERIES: usize = 300;
/// Verified queries a bench cycles through.
const QUERIES: usize = 100;
/// Queries in one `answer_batch` call.
const BATCH: usize = 1_000;
/// Bytes of text the tokenizer chews per iteration.
const TOKENIZER_BYTES: usize = 1_000_000;

/// Corpus sizes: 1k, 10k, 100k entries.
#[derive(Debug, Clone, Copy)]
enum Size {
    K1,
    K10,
    K100,
}

impl Size {
    fn entries(self) -> usize {
        match self {
            Size::K1 => 1_000,
            Size::K10 => 10_000,
            Size::K100 => 100_000,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Size::K1 => "1k",
            Size::K10 => "10k",
            Size::K100 => "100k",
        }
    }
}

/// A corpus, its engine, and queries the engine answers right.
struct Fixture {
    entries: Vec<FaqEntry>,
    engine: Engine,
    /// `(query, expected entry id)`.
    queries: Vec<(String, String)>,
}

fn lexicon() -> &'static Lexicon {
    static KB: OnceLock<KnowledgeBase> = OnceLock::new();
    KB.get_or_init(|| KnowledgeBase::embedded().expect("embedded corpus")).lexicon()
}

fn corpus(size: Size) -> &'static [FaqEntry] {
    static CORPORA: [OnceLock<Vec<FaqEntry>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    CORPORA[size as usize].get_or_init(|| synthetic::corpus(size.entries(), SEED))
}

fn fixture(size: Size) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    FIXTURES[size as usize].get_or_init(|| {
        let entries = corpus(size).to_vec();
        let started = Instant::now();
        let engine = Engine::build(&entries, lexicon());
        let built = started.elapsed();
        let candidates = synthetic::queries(&entries, CANDIDATE_QUERIES, SEED);
        let right: Vec<(String, String)> = candidates
            .iter()
            .filter(|(q, id)| engine.answer(q, None).is_some_and(|m| m.entry.id == *id))
            .cloned()
            .collect();
        // The share answered right is a quality figure of its own; print it with the run.
        eprintln!(
            "fixture {}: built in {built:.1?}, {} of {} synthetic queries answered right ({:.1}%)",
            size.label(),
            right.len(),
            candidates.len(),
            100.0 * right.len() as f64 / candidates.len() as f64
        );
        assert!(right.len() >= QUERIES, "only {} verified queries", right.len());
        Fixture { entries, engine, queries: right.into_iter().take(QUERIES).collect() }
    })
}

fn tokenizer(c: &mut Criterion) {
    let mut group = c.benchmark_group("tokenizer");
    let text = mixed_text(TOKENIZER_BYTES);
    let expected = text::words(&text);
    let expected_bytes: usize = expected.iter().map(String::len).sum();
    // The reference run is checked against a count that knows nothing of the tokenizer:
    // whitespace-separated tokens. Elisions and hyphens add words, one-letter words and
    // lone punctuation remove some; far outside ±25% means the tokenizer broke.
    let rough = text.split_whitespace().count();
    assert!(
        expected.len() * 4 > rough * 3 && expected.len() * 4 < rough * 5,
        "{} vs {rough}",
        expected.len()
    );
    assert!(expected.iter().any(|w| w == "conge") && expected.iter().all(|w| w.to_lowercase() == *w));
    group.sample_size(30).throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("words/1MB", |b| {
        b.iter(|| {
            let words = text::words(black_box(&text));
            assert_eq!(words.len(), expected.len());
            assert_eq!(words.last(), expected.last());
            words
        })
    });
    // The same words without a `String` each: what the allocation costs.
    group.bench_function("for_each_word/1MB", |b| {
        b.iter(|| {
            let (mut count, mut bytes) = (0, 0);
            text::for_each_word(black_box(&text), |w| {
                count += 1;
                bytes += w.len();
            });
            assert_eq!(count, expected.len());
            assert_eq!(bytes, expected_bytes);
        })
    });
    group.finish();
}

/// Questions and answers of the synthetic corpus, one per line, until `bytes`.
fn mixed_text(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 1_000);
    for e in corpus(Size::K10) {
        for t in e.questions.iter().chain([&e.answer]) {
            text.push_str(t);
            text.push('\n');
        }
        if text.len() >= bytes {
            return text;
        }
    }
    panic!("the 10k corpus holds less than {bytes} bytes");
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for size in [Size::K1, Size::K10, Size::K100] {
        group.bench_function(BenchmarkId::from_parameter(size.label()), |b| {
            let entries = corpus(size);
            let probe = &entries[entries.len() / 2];
            b.iter_with_large_drop(|| {
                let engine = Engine::build(black_box(entries), lexicon());
                assert_eq!(engine.len(), entries.len());
                assert!(engine.search(&probe.questions[0], 3).iter().any(|m| m.entry.id == probe.id));
                engine
            })
        });
    }
    group.finish();
}

fn query(c: &mut Criterion) {
    let mut group = c.benchmark_group("query");
    for size in [Size::K1, Size::K10, Size::K100] {
        group.bench_function(BenchmarkId::from_parameter(size.label()), |b| {
            let f = fixture(size);
            let mut next = f.queries.iter().cycle();
            b.iter(|| {
                let (q, id) = next.next().expect("cycle never ends");
                let m = f.engine.answer(black_box(q), None).expect("a verified query is answered");
                assert_eq!(m.entry.id, *id, "{q}");
                m
            })
        });
        latency_percentiles(size);
    }
    group.finish();
}

/// Criterion's figure above is the mean over the cycle of queries; a query's own latency
/// varies with its words, so this prints the distribution over the queries: each one's
/// median over repeated runs, then the percentiles of those.
fn latency_percentiles(size: Size) {
    const RUNS: usize = 201;
    let f = fixture(size);
    let mut per_query: Vec<Duration> = f
        .queries
        .iter()
        .map(|(q, id)| {
            let mut runs: Vec<Duration> = (0..RUNS)
                .map(|_| {
                    let started = Instant::now();
                    let m = f.engine.answer(black_box(q), None);
                    let took = started.elapsed();
                    assert!(m.is_some_and(|m| m.entry.id == *id), "{q}");
                    took
                })
                .collect();
            runs.sort_unstable();
            runs[RUNS / 2]
        })
        .collect();
    per_query.sort_unstable();
    let at = |p: usize| per_query[(per_query.len() - 1) * p / 100];
    eprintln!(
        "query/{}: per-query latency over {} queries: p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?}",
        size.label(),
        per_query.len(),
        at(50),
        at(90),
        at(99),
        at(100)
    );
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    group.sample_size(10).throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::from_parameter("10k"), |b| {
        let f = fixture(Size::K10);
        let (queries, ids): (Vec<String>, Vec<&str>) =
            f.queries.iter().cycle().take(BATCH).map(|(q, id)| (q.clone(), id.as_str())).unzip();
        b.iter_with_large_drop(|| {
            let answers = f.engine.answer_batch(black_box(&queries), None);
            assert_eq!(answers.len(), BATCH);
            for ((m, id), q) in answers.iter().zip(&ids).zip(&queries) {
                assert_eq!(m.as_ref().map(|m| m.entry.id.as_str()), Some(*id), "{q}");
            }
            answers
        })
    });
    // The same queries one `answer` after another, for what the parallelism buys.
    group.bench_function(BenchmarkId::new("sequential", "10k"), |b| {
        let f = fixture(Size::K10);
        b.iter(|| {
            for (q, id) in f.queries.iter().cycle().take(BATCH) {
                let m = f.engine.answer(black_box(q), None).expect("a verified query is answered");
                assert_eq!(m.entry.id, *id, "{q}");
            }
        })
    });
    group.finish();
}

/// Upserts entries the 100k index has not seen, then removes them, so it stays at 100k;
/// only the change under test is timed. After each upsert the new entry must be found by
/// its first question, and after each remove the index must be back to its size.
fn incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("incremental");
    group.sample_size(10);
    // Entries from another seed, renamed so their ids are new to the index.
    let fresh: Vec<FaqEntry> = synthetic::corpus(50, SEED + 1)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.id = format!("new-{i}-{}", e.lang.code());
            e
        })
        .collect();
    group.bench_function(BenchmarkId::new("upsert", "100k"), |b| {
        let f = fixture(Size::K100);
        let size = f.engine.len();
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for i in 0..iters as usize {
                let entry = fresh[i % fresh.len()].clone();
                let (id, question) = (entry.id.clone(), entry.questions[0].clone());
                let started = Instant::now();
                let replaced = f.engine.upsert(black_box(entry)).expect("a valid entry");
                timed += started.elapsed();
                assert!(replaced.is_none(), "{id} was already there");
                assert_eq!(f.engine.len(), size + 1);
                assert!(found(&f.engine, &question, &id), "{id} not found by {question:?}");
                assert!(f.engine.remove(&id).is_some());
            }
            assert_eq!(f.engine.len(), size);
            timed
        })
    });
    group.bench_function(BenchmarkId::new("remove", "100k"), |b| {
        let f = fixture(Size::K100);
        let size = f.engine.len();
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for i in 0..iters as usize {
                let entry = fresh[i % fresh.len()].clone();
                let (id, question) = (entry.id.clone(), entry.questions[0].clone());
                f.engine.upsert(entry).expect("a valid entry");
                let started = Instant::now();
                let removed = f.engine.remove(black_box(&id));
                timed += started.elapsed();
                assert_eq!(removed.map(|e| e.id.clone()), Some(id.clone()));
                assert_eq!(f.engine.len(), size);
                assert!(!found(&f.engine, &question, &id), "{id} still found after its removal");
            }
            timed
        })
    });
    group.finish();
}

/// True when `id` is among the five best entries for `question`.
fn found(engine: &Engine, question: &str, id: &str) -> bool {
    engine.search(question, 5).iter().any(|m| m.entry.id == id)
}

/// The tutorial's algorithm on the same queries. It is not always right where the engine
/// is; where it was right on the reference run it must stay right, elsewhere it must at
/// least find some shared word.
fn refit_baseline(c: &mut Criterion) {
    baseline::check_against_known_values();
    let mut group = c.benchmark_group("baseline");
    group.sample_size(10);
    for size in [Size::K1, Size::K10] {
        group.bench_function(BenchmarkId::from_parameter(size.label()), |b| {
            let cases = baseline_cases(size);
            let mut next = cases.queries.iter().cycle();
            b.iter(|| {
                let (q, expected) = next.next().expect("cycle never ends");
                let (i, score) = baseline::refit_and_match(&cases.questions, black_box(q));
                match expected {
                    Some(id) => assert_eq!(cases.owners[i], *id, "{q}"),
                    None => assert!(score > 0.0, "{q}"),
                }
                (i, score)
            })
        });
    }
    group.finish();
}

/// Every question of a corpus flattened as the tutorial sees them, and the fixture's
/// queries with the expected id where the baseline got it right on a reference run.
struct BaselineCases {
    questions: Vec<String>,
    owners: Vec<&'static str>,
    queries: Vec<(&'static str, Option<&'static str>)>,
}

fn baseline_cases(size: Size) -> &'static BaselineCases {
    static CASES: [OnceLock<BaselineCases>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    CASES[size as usize].get_or_init(|| {
        let f = fixture(size);
        let owners: Vec<&'static str> =
            f.entries.iter().flat_map(|e| e.questions.iter().map(|_| e.id.as_str())).collect();
        let questions: Vec<String> = f.entries.iter().flat_map(|e| e.questions.iter().cloned()).collect();
        let queries: Vec<(&'static str, Option<&'static str>)> = f
            .queries
            .iter()
            .map(|(q, id)| {
                let (i, _) = baseline::refit_and_match(&questions, q);
                (q.as_str(), (owners[i] == id).then_some(id.as_str()))
            })
            .collect();
        let right = queries.iter().filter(|(_, e)| e.is_some()).count();
        eprintln!(
            "baseline {}: {right} of {} engine-verified queries answered right",
            size.label(),
            queries.len()
        );
        BaselineCases { questions, owners, queries }
    })
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    // `incremental` changes the shared 100k engine (and puts it back): it runs after `query`.
    targets = tokenizer, build, query, batch, refit_baseline, incremental
}
criterion_main!(benches);
