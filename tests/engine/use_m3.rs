//! USE-m3 on real text, with the committed model: its tokens and vectors against the wheel's own
//! engine (`tests/data/use_m3_reference.json`, made by `models/use_reference.py`), cross-lingual
//! matching on the shipped corpus, and a corrupt model file refused.

use std::sync::LazyLock;

use wabot::engine::Lang;
use wabot::engine::semantic::{Role, SemanticError, SentenceEncoder, UseM3};
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::knowledge::semantic_models::{self, USE_M3_FILE, USE_M3_RESTORE, USE_M3_SHA256};

/// Loaded once for the whole test binary.
static MODEL: LazyLock<UseM3> = LazyLock::new(|| {
    semantic_models::load_use_m3(&semantic_models::default_dir()).expect("the committed model loads")
});

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<Sentence>,
    corpus_tokens: Vec<Tokens>,
}

#[derive(serde::Deserialize)]
struct Sentence {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Tokens {
    text: String,
    ids: Vec<u32>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/use_m3_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn vectors_match_the_wheels_own_engine_on_english_and_french_sentences() {
    let reference = reference();
    assert!(reference.sentences.len() >= 30);
    let mut worst = (1.0_f32, String::new());
    for s in &reference.sentences {
        let v = MODEL.embed(&s.text, Role::Query);
        assert_eq!(v.len(), MODEL.dim());
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{:?} has norm {norm}", s.text);
        let c = cosine(&v, &s.embedding);
        if c < worst.0 {
            worst = (c, s.text.clone());
        }
    }
    eprintln!("lowest cosine to the wheel: {:.6} on {:?}", worst.0, worst.1);
    assert!(worst.0 >= 0.99, "cosine {} on {:?}", worst.0, worst.1);
}

#[test]
fn the_tokenizer_cuts_every_sentence_and_corpus_text_as_the_wheel_does() {
    let reference = reference();
    let all = reference
        .sentences
        .iter()
        .map(|s| (&s.text, &s.ids))
        .chain(reference.corpus_tokens.iter().map(|t| (&t.text, &t.ids)));
    let mut n = 0;
    for (text, ids) in all {
        assert_eq!(&MODEL.tokenize(text), ids, "{text:?}");
        n += 1;
    }
    assert!(n > 500, "{n} texts");
}

#[test]
fn a_long_text_read_in_runs_matches_the_wheel_read_whole() {
    let reference = reference();
    let long = reference.sentences.iter().max_by_key(|s| s.ids.len()).unwrap();
    assert!(long.ids.len() > 4 * wabot::engine::semantic::use_m3::RUN, "{} pieces", long.ids.len());
    let c = cosine(&MODEL.embed(&long.text, Role::Passage), &long.embedding);
    assert!(c >= 0.9999, "cosine {c}");
}

#[test]
fn scripts_outside_english_and_french_are_unknown_pieces_not_errors() {
    for text in ["你好，世界", "Привет, мир", "مرحبا", "", "   ", "\u{0}\u{7f}\u{feff}"] {
        let ids = MODEL.tokenize(text);
        assert_eq!((ids[0], ids[ids.len() - 1]), (1, 2), "{text:?}: <s> … </s>");
        let v = MODEL.embed(text, Role::Query);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(v.iter().all(|x| x.is_finite()) && (norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
    }
    assert!(MODEL.tokenize("你好").contains(&0), "<unk>");
}

#[test]
fn a_query_and_a_passage_get_the_same_vector() {
    let text = "Comment réinitialiser mon mot de passe ?";
    assert_eq!(MODEL.embed(text, Role::Query), MODEL.embed(text, Role::Passage));
}

/// For each entry of `from` with a twin in `to` (same topic), the rank of the twin among all
/// entries of `to`, by the cosine of their first questions.
fn twin_ranks(from: Lang, to: Lang) -> Vec<(String, usize)> {
    let kb = KnowledgeBase::embedded().unwrap();
    let targets: Vec<_> = kb.entries().iter().filter(|e| e.lang == to).collect();
    let vecs: Vec<Vec<f32>> = targets.iter().map(|e| MODEL.embed(&e.questions[0], Role::Passage)).collect();
    let mut ranks = Vec::new();
    for entry in kb.entries().iter().filter(|e| e.lang == from) {
        let Some(twin) = targets.iter().position(|t| t.topic_key() == entry.topic_key()) else { continue };
        let q = MODEL.embed(&entry.questions[0], Role::Query);
        let sims: Vec<f32> = vecs.iter().map(|v| cosine(&q, v)).collect();
        let rank = 1 + sims.iter().filter(|&&s| s > sims[twin]).count();
        ranks.push((entry.questions[0].clone(), rank));
    }
    ranks
}

fn assert_twins_come_first(from: Lang, to: Lang) {
    let ranks = twin_ranks(from, to);
    let first = ranks.iter().filter(|(_, r)| *r == 1).count();
    eprintln!("{from} → {to}: {first} of {} twins ranked first", ranks.len());
    assert!(ranks.len() >= 40, "{} twins", ranks.len());
    assert!(first * 10 >= ranks.len() * 9, "{first} of {}: {ranks:?}", ranks.len());
    assert!(ranks.iter().all(|(_, r)| *r <= 3), "{ranks:?}");
}

#[test]
fn an_english_question_is_closer_to_its_french_twin_than_to_unrelated_entries() {
    assert_twins_come_first(Lang::En, Lang::Fr);
}

#[test]
fn a_french_question_is_closer_to_its_english_twin_than_to_unrelated_entries() {
    assert_twins_come_first(Lang::Fr, Lang::En);
}

#[test]
fn a_corrupt_model_file_is_refused_with_the_command_that_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(semantic_models::default_dir().join(USE_M3_FILE)).unwrap();
    std::fs::write(dir.path().join(USE_M3_FILE), &real[..real.len() / 2]).unwrap();
    let err = semantic_models::load_use_m3(dir.path()).unwrap_err();
    assert!(matches!(err, SemanticError::ModelChecksum { .. }), "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains(USE_M3_SHA256) && shown.contains(USE_M3_FILE) && shown.contains(USE_M3_RESTORE),
        "{shown}"
    );
}

#[test]
fn bytes_cut_anywhere_are_an_error_not_a_panic() {
    let real = std::fs::read(semantic_models::default_dir().join(USE_M3_FILE)).unwrap();
    for cut in [0, 7, 12, 20, 1_000, real.len() / 3, real.len() - 1] {
        let err = UseM3::from_bytes(&real[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                SemanticError::BadMagic { .. } | SemanticError::Truncated { .. } | SemanticError::Invalid(_)
            ),
            "cut at {cut}: {err}"
        );
    }
}
