//! The engine's matching quality on the shipped corpus, held to the figures the README
//! reports: a change that makes answers worse fails here.

use std::path::Path;

use wabot::engine::Engine;
use wabot::eval::{evaluate, load_queries};
use wabot::knowledge::corpus::KnowledgeBase;

#[test]
fn the_quality_set_is_answered_and_declined_as_reported() {
    let kb = KnowledgeBase::embedded().unwrap();
    let engine = Engine::build(kb.entries(), kb.lexicon());
    let queries = load_queries(Path::new("tests/data/quality.jsonl"), &engine).unwrap();
    assert!(queries.len() >= 150);
    assert!(queries.iter().filter(|q| q.expected.is_none()).count() >= 25);
    let report = evaluate(&engine, &queries);
    let t = report.at_threshold;
    assert!(t.top1_accuracy >= TOP1_FLOOR, "top-1 accuracy {:.3} < {TOP1_FLOOR}\n{report}", t.top1_accuracy);
    assert!(
        t.out_of_scope_rejection >= OOS_FLOOR,
        "out-of-scope rejection {:.3} < {OOS_FLOOR}\n{report}",
        t.out_of_scope_rejection
    );
}

/// The measured figures, rounded down (see the README's *Matching quality*).
const TOP1_FLOOR: f32 = 0.82;
const OOS_FLOOR: f32 = 0.90;
