//! The matching engine: which FAQ entry answers a message, and how sure it is.
//!
//! TF-IDF over stemmed words and lexicon concepts, L2-normalised sparse vectors
//! ([`sprs`]), cosine similarity, a confidence threshold. Every question of an entry and
//! its answer are indexed as separate *units*; an entry scores as its best unit, so one
//! close paraphrase is enough.
//!
//! Owns: tokenization ([`text`]), stop words ([`stopwords`]), stemming and concepts
//! ([`analyze`]), typo correction ([`fuzzy`]) and scoring ([`index`]); sentence encoders and
//! the dense index for semantic matching ([`semantic`]).
//! Must not: do I/O, log, or depend on the web or async stack — it could be its own crate.
//!
//! ```
//! use wabot::engine::{Engine, FaqEntry, Lang, Lexicon};
//! let entries = vec![FaqEntry::new("pw-en", Lang::En, &["How do I reset my password?"], "Use it.example.com.")];
//! let engine = Engine::build(&entries, &Lexicon::default());
//! assert_eq!(engine.best("reset password pls").unwrap().entry.id, "pw-en");
//! assert!(engine.best("what's the weather like").is_none());
//! ```

pub mod analyze;
pub mod fuzzy;
pub mod index;
pub mod segment;
pub mod semantic;
pub mod simd;
pub mod stopwords;
pub mod text;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use analyze::Analyzer;
pub use index::{Explanation, Index, Match, QueryVector};

/// Which text of an entry a unit is. Ordered questions first, then the answer: of two
/// units scoring the same, the first is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// The entry's `n`-th question.
    Question(usize),
    /// The entry's answer.
    Answer,
}

impl Unit {
    /// 0 for questions, 1 for answers: the two classes of units, weighted apart.
    pub(crate) fn class(self) -> usize {
        usize::from(self == Unit::Answer)
    }
}

/// What a change to the index can fail with.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The entry cannot be indexed.
    #[error("entry {id:?}: {message}")]
    InvalidEntry {
        /// The entry's id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// A language the FAQ and the bot speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
}

impl Lang {
    /// The ISO 639-1 code: `en`, `fr`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// Parses an ISO 639-1 code.
    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            _ => None,
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One FAQ entry: a question asked several ways, in one language, and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqEntry {
    /// Unique identifier, e.g. `leave-balance-en`.
    pub id: String,
    /// The entry's language.
    pub lang: Lang,
    /// Ways of asking; at least one.
    pub questions: Vec<String>,
    /// The answer sent back.
    pub answer: String,
    /// The menu category it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Entries of one topic in different languages share it: the bot answers a topic in
    /// the user's language when the topic has an entry in it. Defaults to the id without
    /// a language suffix (`leave-balance-en` and `leave-balance-fr` → `leave-balance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

impl FaqEntry {
    /// An entry without a category.
    pub fn new(id: &str, lang: Lang, questions: &[&str], answer: &str) -> Self {
        FaqEntry {
            id: id.to_owned(),
            lang,
            questions: questions.iter().map(|q| (*q).to_owned()).collect(),
            answer: answer.to_owned(),
            category: None,
            topic: None,
        }
    }

    /// Checks the entry can be indexed and answered: a usable id, at least one question,
    /// no empty question, a non-empty answer.
    pub fn validate(&self) -> Result<(), EngineError> {
        let fail = |message: &str| {
            Err(EngineError::InvalidEntry { id: self.id.clone(), message: message.to_owned() })
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 128
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !id_ok {
            return fail("id must be 1 to 128 ASCII letters, digits, '-', '_', '.' or ':'");
        }
        if self.questions.is_empty() {
            return fail("needs at least one question");
        }
        if self.questions.iter().any(|q| q.trim().is_empty()) {
            return fail("has an empty question");
        }
        if self.answer.trim().is_empty() {
            return fail("has an empty answer");
        }
        Ok(())
    }

    /// The topic this entry answers (see [`FaqEntry::topic`]).
    pub fn topic_key(&self) -> &str {
        if let Some(t) = &self.topic {
            return t;
        }
        let code = self.lang.code();
        for sep in ['-', '_', '.'] {
            if let Some(base) = self.id.strip_suffix(code).and_then(|b| b.strip_suffix(sep))
                && !base.is_empty()
            {
                return base;
            }
        }
        &self.id
    }
}

/// Terms that mean the same thing, across English and French.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    /// English words or phrases.
    #[serde(default)]
    pub en: Vec<String>,
    /// French words or phrases.
    #[serde(default)]
    pub fr: Vec<String>,
}

/// The domain lexicon: concepts shared by documents and queries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lexicon {
    /// The concepts.
    #[serde(default, rename = "concept")]
    pub concepts: Vec<Concept>,
}

/// Tunable knobs of the engine; [`Default`] holds the values measured best on the
/// quality set (see the README's *Matching quality*).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineParams {
    /// Below this cosine the engine declines to answer.
    pub threshold: f32,
    /// How much an answer's text counts against a question's (0 ignores answers).
    pub answer_weight: f32,
    /// How much a word the index does not know counts in the query's norm, relative to
    /// the rarest known word: 1 makes every unknown word dilute the match fully.
    pub unknown_weight: f32,
    /// Correct unknown words to the closest known word.
    pub fuzzy: bool,
    /// Weight of a typo-corrected word relative to a word typed right.
    pub fuzzy_weight: f32,
    /// Add lexicon concept terms.
    pub concepts: bool,
    /// Weight of a concept term in a query relative to a word.
    pub concept_weight: f32,
}

impl Default for EngineParams {
    fn default() -> Self {
        EngineParams {
            threshold: 0.25,
            answer_weight: 0.75,
            unknown_weight: 1.0,

            fuzzy: true,
            fuzzy_weight: 0.8,
            concepts: true,
            concept_weight: 1.5,
        }
    }
}

/// The matching engine: readers query an immutable snapshot of the index and never
/// wait; the single writer prepares the next snapshot and publishes it atomically.
#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Index>,
    writer: Mutex<()>,
}

impl Engine {
    /// Builds the engine with default parameters.
    pub fn build(entries: &[FaqEntry], lexicon: &Lexicon) -> Engine {
        Engine::with_params(entries, lexicon, EngineParams::default())
    }

    /// Builds the engine with the given parameters.
    pub fn with_params(entries: &[FaqEntry], lexicon: &Lexicon, params: EngineParams) -> Engine {
        Engine {
            current: ArcSwap::from_pointee(Index::build(entries, lexicon, &params)),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot: unaffected by later changes.
    pub fn snapshot(&self) -> Arc<Index> {
        self.current.load_full()
    }

    /// The parameters in force.
    pub fn params(&self) -> EngineParams {
        *self.current.load().params()
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// True when no entry is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live entries, in insertion order.
    pub fn entries(&self) -> Vec<Arc<FaqEntry>> {
        self.current.load().entries()
    }

    /// The entry with this id.
    pub fn entry(&self, id: &str) -> Option<Arc<FaqEntry>> {
        self.current.load().entry(id)
    }

    /// The entry of `e`'s topic in `lang`, when `e` is in another language and one exists.
    pub fn twin(&self, e: &FaqEntry, lang: Lang) -> Option<Arc<FaqEntry>> {
        self.current.load().twin(e, lang)
    }

    /// The `k` best entries for `query`, best first, whatever their score.
    pub fn search(&self, query: &str, k: usize) -> Vec<Match> {
        let index = self.current.load();
        let q = index.query_vector(query, index.params());
        index.top_k(&q, k, 0.0)
    }

    /// The best entry if its score reaches the threshold.
    pub fn best(&self, query: &str) -> Option<Match> {
        let index = self.current.load();
        let q = index.query_vector(query, index.params());
        index.top_k(&q, 1, index.params().threshold).into_iter().next()
    }

    /// The answer for a user: the best entry above the threshold, given in the user's
    /// language (`preferred`, else the language `query` is written in) when the entry's
    /// topic has an entry in that language.
    pub fn answer(&self, query: &str, preferred: Option<Lang>) -> Option<Match> {
        let index = self.current.load();
        answer_in(&index, query, preferred, index.params())
    }

    /// What a user's message comes to, the query analysed once: its language (as written,
    /// else `fallback`), the answer as [`Engine::answer`] gives it, and when there is none,
    /// up to `k` nearest entries scoring at least `floor`, best first.
    pub fn consult(&self, query: &str, fallback: Option<Lang>, k: usize, floor: f32) -> Consultation {
        let index = self.current.load();
        let params = index.params();
        let q = index.query_vector(query, params);
        let lang = q.lang.or(fallback);
        let answer = best_in(&index, &q, lang, params);
        let nearest = if answer.is_some() { Vec::new() } else { index.top_k(&q, k, floor) };
        Consultation { lang, answer, nearest }
    }

    /// [`Engine::answer`] with other parameters (a lower threshold, say) for scoring.
    pub fn answer_with(&self, query: &str, preferred: Option<Lang>, params: &EngineParams) -> Option<Match> {
        answer_in(&self.current.load(), query, preferred, params)
    }

    /// [`Engine::answer`] for many queries at once, on all cores; one snapshot serves
    /// the whole batch.
    pub fn answer_batch<S: AsRef<str> + Sync>(
        &self,
        queries: &[S],
        preferred: Option<Lang>,
    ) -> Vec<Option<Match>> {
        use rayon::prelude::*;
        let index = self.snapshot();
        queries.par_iter().map(|q| answer_in(&index, q.as_ref(), preferred, index.params())).collect()
    }

    /// Why `query` scored what it did against `m`'s unit: the shared terms and weights.
    pub fn explain(&self, query: &str, m: &Match) -> Explanation {
        let index = self.current.load();
        let q = index.query_vector(query, index.params());
        index.explain(&q, m)
    }

    /// The language `text` is most likely written in, if it says.
    pub fn detect_language(&self, text: &str) -> Option<Lang> {
        let index = self.current.load();
        let words = index.analyzer().words(text);
        Analyzer::detect_language(&words, text)
    }

    /// Adds `entry`, or replaces the entry with its id; returns the replaced one. Only
    /// the new entry is analysed, and the next query sees the change.
    pub fn upsert(&self, entry: FaqEntry) -> Result<Option<Arc<FaqEntry>>, EngineError> {
        entry.validate()?;
        Ok(self.write(|next| next.upsert(entry)))
    }

    /// Removes the entry `id`; returns it, or `None` if there was none.
    pub fn remove(&self, id: &str) -> Option<Arc<FaqEntry>> {
        self.write(|next| next.remove(id))
    }

    /// Replaces the whole index (a corpus reloaded from disk, a new lexicon).
    pub fn reload(&self, entries: &[FaqEntry], lexicon: &Lexicon) {
        let params = self.params();
        let fresh = Index::build(entries, lexicon, &params);
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.current.store(Arc::new(fresh));
    }

    fn write<T>(&self, change: impl FnOnce(&mut Index) -> T) -> T {
        // One writer at a time; readers are never blocked. A panic in a previous change
        // left the published snapshot intact, so a poisoned lock is safe to reuse.
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Index::clone(&self.current.load());
        let out = change(&mut next);
        self.current.store(Arc::new(next));
        out
    }
}

/// What [`Engine::consult`] found.
#[derive(Debug, Clone)]
pub struct Consultation {
    /// The language of the message, as written, else the one the caller knew.
    pub lang: Option<Lang>,
    /// The answer, when an entry reaches the threshold.
    pub answer: Option<Match>,
    /// Without an answer, the nearest entries, best first.
    pub nearest: Vec<Match>,
}

fn answer_in(index: &Index, query: &str, preferred: Option<Lang>, params: &EngineParams) -> Option<Match> {
    let q = index.query_vector(query, params);
    best_in(index, &q, preferred.or(q.lang), params)
}

/// The best entry for `q` if it reaches the threshold, in `lang` where it has a twin there
/// (in its own language without one).
fn best_in(index: &Index, q: &QueryVector, lang: Option<Lang>, params: &EngineParams) -> Option<Match> {
    let top = index.top_k(q, 1, params.threshold).into_iter().next()?;
    match index.twin(&top.entry, lang.unwrap_or(top.entry.lang)) {
        Some(twin) => Some(Match { entry: twin, ..top }),
        None => Some(top),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::KnowledgeBase;

    #[test]
    fn a_consultation_gives_what_answer_and_search_give_separately() {
        let kb = KnowledgeBase::embedded().unwrap();
        let engine = Engine::build(kb.entries(), kb.lexicon());
        for (query, fallback) in
            [("comment obtenir mon bulletin de paie", None), ("payslip copy please", Some(Lang::Fr))]
        {
            let found = engine.consult(query, fallback, 6, 0.1);
            let lang = engine.detect_language(query).or(fallback);
            assert_eq!(found.lang, lang, "{query}");
            let answer = engine.answer(query, lang).unwrap();
            assert_eq!(found.answer.unwrap().entry.id, answer.entry.id, "{query}");
            assert!(found.nearest.is_empty(), "an answer needs no suggestions");
        }
        let vague = "bonjour j'ai une question sur le truc";
        let found = engine.consult(vague, None, 6, 0.01);
        assert!(found.answer.is_none() && engine.answer(vague, None).is_none());
        let searched: Vec<String> = engine
            .search(vague, 6)
            .into_iter()
            .filter(|m| m.score >= 0.01)
            .map(|m| m.entry.id.clone())
            .collect();
        let nearest: Vec<String> = found.nearest.iter().map(|m| m.entry.id.clone()).collect();
        assert_eq!(nearest, searched);
        assert!(!nearest.is_empty(), "something comes close to {vague:?}");
    }
}
