//! The fused engine (lexical + e5 + USE-m3) with the real models on real FAQs: answers
//! across languages without a lexicon, declines what no entry answers, changes one entry
//! by embedding that entry only, and finds its vectors in the disk cache after a restart.

use std::sync::{Arc, OnceLock};

use wabot::engine::hybrid::{NoCache, Semantic, VectorCache};
use wabot::engine::semantic::Role;
use wabot::engine::{Engine, EngineParams, FaqEntry, Lang, Lexicon};
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::knowledge::vector_cache::DiskCache;

fn models() -> Semantic {
    static MODELS: OnceLock<Semantic> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            wabot::knowledge::semantic_models::load_encoders(&wabot::knowledge::semantic_models::default_dir())
                .expect("the committed models load")
        })
        .clone()
}

fn params() -> EngineParams {
    EngineParams { threshold: wabot::engine::hybrid::DEFAULT_THRESHOLD, ..EngineParams::default() }
}

fn it_desk() -> Vec<FaqEntry> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/itdesk/faq");
    KnowledgeBase::load(std::path::Path::new(path)).expect("the IT-desk FAQ loads").entries().to_vec()
}

#[test]
fn without_a_lexicon_a_question_finds_an_entry_written_only_in_the_other_language() {
    let entries = it_desk();
    let engine = Engine::with_semantic(&entries, &Lexicon::default(), params(), models(), Arc::new(NoCache));
    // Topics the IT-desk FAQ has in one language only.
    let only_fr = entries.iter().filter(|e| e.lang == Lang::Fr && engine.twin(e, Lang::En).is_none()).count();
    assert!(only_fr > 0);
    let m = engine.answer("where can I park my bike at the Lyon site?", None).expect("answered");
    assert_eq!(m.entry.lang, Lang::Fr, "{}", m.entry.id);
    assert!(m.entry.id.contains("velo"), "{}", m.entry.id);
    let m = engine.answer("comment obtenir un permis de stationnement à Montréal ?", None).expect("answered");
    assert_eq!(m.entry.lang, Lang::En, "{}", m.entry.id);
    assert!(m.entry.id.contains("parking"), "{}", m.entry.id);
}

#[test]
fn the_confidence_declines_what_no_entry_answers_and_explains_itself() {
    let kb = KnowledgeBase::embedded().unwrap();
    let engine = Engine::with_semantic(kb.entries(), kb.lexicon(), params(), models(), Arc::new(NoCache));
    for q in
        ["who won the football match last night", "raconte-moi une blague", "what's the weather tomorrow"]
    {
        assert!(engine.answer(q, None).is_none(), "{q} is declined");
    }
    let m = engine.answer("my kid is ill, can I stay home to look after him?", None).expect("answered");
    assert!(m.entry.id.starts_with("sick-child"), "{}", m.entry.id);
    assert!((0.5..=1.0).contains(&m.score), "{}", m.score);
    let top = engine.rank("my kid is ill, can I stay home to look after him?", 2).unwrap();
    let ev = &top[0].evidence;
    assert_eq!(ev.similarity.len(), 2, "one similarity per encoder");
    assert!(ev.margin > 0.0 && top[1].evidence.margin < 0.0);
    assert!((ev.confidence - m.score).abs() < 1e-6);
}

/// Counts the texts embedded through it.
#[derive(Default)]
struct Counting(std::sync::atomic::AtomicUsize);

impl VectorCache for Counting {
    fn get(&self, _: &str, _: Role, _: &str) -> Option<Vec<f32>> {
        None
    }
    fn put(&self, _: &str, _: Role, _: &str, _: &[f32]) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn an_added_entry_is_embedded_alone_and_answers_at_once_and_a_removed_one_no_longer_does() {
    let kb = KnowledgeBase::embedded().unwrap();
    let counting = Arc::new(Counting::default());
    let engine = Engine::with_semantic(kb.entries(), kb.lexicon(), params(), models(), counting.clone());
    let built = counting.0.load(std::sync::atomic::Ordering::Relaxed);
    assert!(built > kb.entries().len(), "every entry's passage and questions were embedded");
    let entry = FaqEntry::new(
        "canteen-hours-en",
        Lang::En,
        &["When is the staff canteen open?", "canteen opening hours", "Can I get lunch at work?"],
        "The canteen on the ground floor serves lunch from 11:45 to 14:00 on weekdays.",
    );
    engine.upsert(entry).unwrap();
    let after = counting.0.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(after - built, 2 * 4, "two encoders × (one passage + three questions)");
    let m = engine.answer("what time does the cafeteria serve lunch?", None).expect("answered");
    assert_eq!(m.entry.id, "canteen-hours-en");
    engine.remove("canteen-hours-en");
    assert!(
        engine
            .answer("what time does the cafeteria serve lunch?", None)
            .is_none_or(|m| m.entry.id != "canteen-hours-en")
    );
}

#[test]
fn a_restart_finds_every_entry_vector_in_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let kb = KnowledgeBase::embedded().unwrap();
    let first = Arc::new(DiskCache::open(dir.path()).unwrap());
    let engine = Engine::with_semantic(kb.entries(), kb.lexicon(), params(), models(), first.clone());
    let answer = engine.answer("how do I get a copy of my payslip", None).map(|m| m.entry.id.clone());
    let stored = first.len();
    assert!(stored > kb.entries().len());
    drop(engine);
    drop(first);

    let again = Arc::new(DiskCache::open(dir.path()).unwrap());
    let engine = Engine::with_semantic(kb.entries(), kb.lexicon(), params(), models(), again.clone());
    let (hits, misses) = again.hits_and_misses();
    assert_eq!(misses, 0, "nothing embedded twice");
    assert!(hits as usize >= stored);
    assert_eq!(engine.answer("how do I get a copy of my payslip", None).map(|m| m.entry.id.clone()), answer);
}
