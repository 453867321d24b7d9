//! The incremental index answers exactly as a fresh build over the same entries.
//!
//! Random sequences of adds, replaces and removes are applied to a live engine; after each
//! sequence its rankings and scores for a fixed set of queries must equal those of an
//! engine built from scratch over the live entries (within float tolerance).

use proptest::prelude::*;
use wabot::engine::{Concept, Engine, EngineParams, FaqEntry, Lang, Lexicon};

const EN: &[&str] = &[
    "leave",
    "payslip",
    "password",
    "badge",
    "laptop",
    "expense",
    "receipt",
    "holiday",
    "salary",
    "training",
    "remote",
    "manager",
    "certificate",
    "reset",
    "lost",
    "request",
    "balance",
    "office",
    "parking",
    "meal",
];
const FR: &[&str] = &[
    "congé",
    "bulletin",
    "paie",
    "passe",
    "badge",
    "ordinateur",
    "frais",
    "justificatif",
    "salaire",
    "formation",
    "télétravail",
    "responsable",
    "attestation",
    "perdu",
    "demande",
    "solde",
    "bureau",
    "repas",
];

fn lexicon() -> Lexicon {
    Lexicon {
        concepts: vec![
            Concept { en: vec!["payslip".into()], fr: vec!["bulletin de paie".into()] },
            Concept { en: vec!["leave".into(), "holiday".into()], fr: vec!["congé".into()] },
        ],
    }
}

fn text(words: &[usize], lang: Lang) -> String {
    let pool = if lang == Lang::En { EN } else { FR };
    words.iter().map(|&w| pool[w % pool.len()]).collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone)]
struct Spec {
    lang: Lang,
    topic: usize,
    questions: Vec<Vec<usize>>,
    answer: Vec<usize>,
}

impl Spec {
    fn entry(&self, id: usize) -> FaqEntry {
        let questions: Vec<String> = self.questions.iter().map(|q| text(q, self.lang)).collect();
        let refs: Vec<&str> = questions.iter().map(String::as_str).collect();
        let mut e = FaqEntry::new(
            &format!("e{id}-{}", self.lang.code()),
            self.lang,
            &refs,
            &text(&self.answer, self.lang),
        );
        e.topic = Some(format!("t{}", self.topic));
        e
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![Just(Lang::En), Just(Lang::Fr)],
        0..6usize,
        prop::collection::vec(prop::collection::vec(0..40usize, 1..6), 1..4),
        prop::collection::vec(0..40usize, 1..10),
    )
        .prop_map(|(lang, topic, questions, answer)| Spec { lang, topic, questions, answer })
}

#[derive(Debug, Clone)]
enum Op {
    Add(Spec),
    Replace(usize, Spec),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => spec().prop_map(Op::Add),
        2 => (any::<usize>(), spec()).prop_map(|(i, s)| Op::Replace(i, s)),
        2 => any::<usize>().prop_map(Op::Remove),
    ]
}

/// Queries over the same vocabulary, with typos, unknown words and both languages.
fn queries() -> Vec<String> {
    let mut qs: Vec<String> = EN.iter().chain(FR).map(|w| (*w).to_owned()).collect();
    qs.extend(
        [
            "reset password laptop",
            "lost badge office",
            "bulletin de paie salaire",
            "congé solde demande",
            "pasword reset",
            "atestation formation",
            "payslip holiday weather",
            "remote télétravail",
            "certificate request manager parking meal",
            "ordinateur perdu bureau",
            "zzz unknown words only",
        ]
        .map(str::to_owned),
    );
    qs
}

fn assert_same(live: &Engine, params: EngineParams) -> Result<(), TestCaseError> {
    let entries: Vec<FaqEntry> = live.entries().iter().map(|e| (**e).clone()).collect();
    let fresh = Engine::with_params(&entries, &lexicon(), params);
    prop_assert_eq!(live.len(), fresh.len());
    for q in queries() {
        let (a, b) = (live.search(&q, 5), fresh.search(&q, 5));
        let ids = |v: &[wabot::engine::Match]| {
            v.iter().map(|m| format!("{} {:.7}", m.entry.id, m.score)).collect::<Vec<_>>()
        };
        let order: Vec<String> = live.entries().iter().map(|e| e.id.clone()).collect();
        prop_assert_eq!(
            ids(&a),
            ids(&b),
            "query {:?}, live order {:?}, segments {}",
            q,
            order,
            live.snapshot().segment_count()
        );
        for (x, y) in a.iter().zip(&b) {
            prop_assert!((x.score - y.score).abs() < 1e-5, "query {:?}: {} vs {}", q, x.score, y.score);
            prop_assert_eq!(x.unit, y.unit);
        }
        let (a, b) = (live.answer(&q, Some(Lang::Fr)), fresh.answer(&q, Some(Lang::Fr)));
        prop_assert_eq!(a.map(|m| m.entry.id.clone()), b.map(|m| m.entry.id.clone()), "answer {:?}", q);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_changes_score_exactly_like_a_fresh_build(
        initial in prop::collection::vec(spec(), 0..12),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let params = EngineParams { threshold: 0.05, ..EngineParams::default() };
        let start: Vec<FaqEntry> = initial.iter().enumerate().map(|(i, s)| s.entry(i)).collect();
        let live = Engine::with_params(&start, &lexicon(), params);
        let mut next_id = start.len();
        for op in ops {
            let ids: Vec<String> = live.entries().iter().map(|e| e.id.clone()).collect();
            match op {
                Op::Add(s) => {
                    live.upsert(s.entry(next_id)).unwrap();
                    next_id += 1;
                }
                Op::Replace(i, s) if !ids.is_empty() => {
                    let mut e = s.entry(0);
                    e.id = ids[i % ids.len()].clone();
                    prop_assert!(live.upsert(e).unwrap().is_some());
                }
                Op::Remove(i) if !ids.is_empty() => {
                    prop_assert!(live.remove(&ids[i % ids.len()]).is_some());
                }
                _ => {}
            }
        }
        assert_same(&live, params)?;
    }
}

#[test]
fn many_single_adds_merge_into_few_segments() {
    let live = Engine::build(&[], &Lexicon::default());
    for i in 0..2000 {
        let spec =
            Spec { lang: Lang::En, topic: i, questions: vec![vec![i, i / 3, i / 7]], answer: vec![i / 11] };
        live.upsert(spec.entry(i)).unwrap();
    }
    assert_eq!(live.len(), 2000);
    let segments = live.snapshot().segment_count();
    assert!(segments <= 12, "{segments} segments");
}

#[test]
fn readers_keep_their_snapshot_while_the_writer_publishes() {
    let e = FaqEntry::new("pw-en", Lang::En, &["How do I reset my password?"], "it.example.com");
    let live = Engine::build(std::slice::from_ref(&e), &Lexicon::default());
    let before = live.snapshot();
    live.remove("pw-en");
    assert!(live.best("reset my password").is_none());
    assert_eq!(before.len(), 1, "an old snapshot is unaffected");
    assert!(before.entry("pw-en").is_some());
}

#[test]
fn an_invalid_entry_is_refused_and_nothing_changes() {
    let live = Engine::build(&[], &Lexicon::default());
    let bad = FaqEntry::new("x", Lang::En, &[], "answer");
    assert!(live.upsert(bad).unwrap_err().to_string().contains("at least one question"));
    assert_eq!(live.len(), 0);
}
