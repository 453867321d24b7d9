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
pub mod hybrid;
pub mod index;
pub mod respell;
pub mod segment;
pub mod semantic;
pub mod simd;
pub mod stopwords;
#[cfg(feature = "synthetic")]
pub mod synthetic;
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
        if !valid_id(&self.id) {
            return fail(ID_RULE);
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
    /// With the semantic scorer on, count the lexical engine's evidence in the fused score;
    /// off, the encoders rank alone (an ablation, for `wabot eval --semantic-only`).
    pub lexical_evidence: bool,
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
            lexical_evidence: true,
        }
    }
}

/// The matching engine: readers query an immutable snapshot of the index and never
/// wait; the single writer prepares the next snapshot and publishes it atomically.
#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Index>,
    /// The semantic scorer, when on: the encoders and the entries' vectors.
    semantic: Option<Dense>,
    writer: Mutex<()>,
}

/// The semantic side of the engine: its snapshot is published after the lexical one's, so
/// a reader may see an entry in one and not yet the other (it then scores 0 there).
struct Dense {
    models: hybrid::Semantic,
    index: ArcSwap<hybrid::SemanticIndex>,
    cache: Arc<dyn hybrid::VectorCache + Send>,
}

impl std::fmt::Debug for Dense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dense")
            .field("models", &self.models)
            .field("rows", &self.index.load().rows())
            .finish()
    }
}

/// An entry ranked by the fused scorer, with what each scorer said.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// The entry.
    pub entry: Arc<FaqEntry>,
    /// The evidence and the confidence.
    pub evidence: hybrid::Evidence,
    /// The unit the lexical engine matched, when its best entry is this one.
    pub unit: Unit,
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
            semantic: None,
            writer: Mutex::new(()),
        }
    }

    /// Builds the engine with a semantic scorer beside the lexical one: every entry is
    /// embedded (from `cache` where it has the vectors) and answers come from the fused
    /// confidence ([`hybrid`]); `params.threshold` is then a confidence.
    pub fn with_semantic(
        entries: &[FaqEntry],
        lexicon: &Lexicon,
        params: EngineParams,
        models: hybrid::Semantic,
        cache: Arc<dyn hybrid::VectorCache + Send>,
    ) -> Engine {
        let index = models.build(entries, cache.as_ref());
        Engine {
            current: ArcSwap::from_pointee(Index::build(entries, lexicon, &params)),
            semantic: Some(Dense { models, index: ArcSwap::from_pointee(index), cache }),
            writer: Mutex::new(()),
        }
    }

    /// The semantic scorer's encoders, by model id (none when it is off).
    pub fn encoder_names(&self) -> Vec<String> {
        self.semantic
            .as_ref()
            .map(|d| d.models.encoders().iter().map(|e| e.model.model_id().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Whether the semantic scorer is on.
    pub fn is_semantic(&self) -> bool {
        self.semantic.is_some()
    }

    /// The `k` best entries by the fused scorer, best first, with their evidence; `None`
    /// when the semantic scorer is off.
    pub fn rank(&self, query: &str, k: usize) -> Option<Vec<Ranked>> {
        let dense = self.semantic.as_ref()?;
        let index = self.current.load();
        let q = index.query_vector(query, index.params());
        Some(rank_in(&index, dense, query, &q, k, index.params().lexical_evidence))
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
        match &self.semantic {
            Some(dense) => rank_in(&index, dense, query, &q, k, index.params().lexical_evidence)
                .into_iter()
                .map(Ranked::into_match)
                .collect(),
            None => index.top_k(&q, k, 0.0),
        }
    }

    /// The best entry if its score reaches the threshold.
    pub fn best(&self, query: &str) -> Option<Match> {
        let threshold = self.params().threshold;
        self.search(query, 1).into_iter().next().filter(|m| m.score >= threshold)
    }

    /// The answer for a user: the best entry above the threshold, given in the user's
    /// language (`preferred`, else the language `query` is written in) when the entry's
    /// topic has an entry in that language.
    pub fn answer(&self, query: &str, preferred: Option<Lang>) -> Option<Match> {
        let index = self.current.load();
        answer_in(&index, self.semantic.as_ref(), query, preferred, index.params())
    }

    /// What a user's message comes to, the query analysed once: its language (as written,
    /// else `fallback`), the answer as [`Engine::answer`] gives it, and when there is none,
    /// up to `k` nearest entries scoring at least `floor`, best first.
    pub fn consult(&self, query: &str, fallback: Option<Lang>, k: usize, floor: f32) -> Consultation {
        let index = self.current.load();
        let params = index.params();
        let q = index.query_vector(query, params);
        let lang = q.lang.or(fallback);
        let Some(dense) = &self.semantic else {
            let answer = best_in(&index, &q, lang, params);
            let nearest = if answer.is_some() { Vec::new() } else { index.top_k(&q, k, floor) };
            return Consultation { lang, answer, nearest };
        };
        let ranked = rank_in(&index, dense, query, &q, k.max(1), params.lexical_evidence);
        let answer = answered(&index, ranked.first(), lang, params);
        let nearest = if answer.is_some() {
            Vec::new()
        } else {
            ranked.into_iter().filter(|r| r.evidence.confidence >= floor).map(Ranked::into_match).collect()
        };
        Consultation { lang, answer, nearest }
    }

    /// [`Engine::answer`] with other parameters (a lower threshold, say) for scoring.
    pub fn answer_with(&self, query: &str, preferred: Option<Lang>, params: &EngineParams) -> Option<Match> {
        answer_in(&self.current.load(), self.semantic.as_ref(), query, preferred, params)
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
        let dense = self.semantic.as_ref();
        queries.par_iter().map(|q| answer_in(&index, dense, q.as_ref(), preferred, index.params())).collect()
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
        // Embedding takes milliseconds: done before the writer's lock is taken.
        let vectors = self.semantic.as_ref().map(|d| d.models.embed_entry(&entry, d.cache.as_ref()));
        let id = entry.id.clone();
        Ok(self.write(|next, dense| {
            if let (Some(dense), Some(vectors)) = (dense, vectors) {
                let mut sem = hybrid::SemanticIndex::clone(&dense.index.load());
                sem.upsert(&id, vectors);
                sem.learn(&entry);
                dense.index.store(Arc::new(sem));
            }
            next.upsert(entry)
        }))
    }

    /// Removes the entry `id`; returns it, or `None` if there was none.
    pub fn remove(&self, id: &str) -> Option<Arc<FaqEntry>> {
        self.write(|next, dense| {
            if let Some(dense) = dense {
                let mut sem = hybrid::SemanticIndex::clone(&dense.index.load());
                sem.remove(id);
                dense.index.store(Arc::new(sem));
            }
            next.remove(id)
        })
    }

    /// Replaces the whole index (a corpus reloaded from disk, a new lexicon).
    pub fn reload(&self, entries: &[FaqEntry], lexicon: &Lexicon) {
        let params = self.params();
        let fresh = Index::build(entries, lexicon, &params);
        let sem = self.semantic.as_ref().map(|d| d.models.build(entries, d.cache.as_ref()));
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(dense), Some(sem)) = (&self.semantic, sem) {
            dense.index.store(Arc::new(sem));
        }
        self.current.store(Arc::new(fresh));
    }

    fn write<T>(&self, change: impl FnOnce(&mut Index, Option<&Dense>) -> T) -> T {
        // One writer at a time; readers are never blocked. A panic in a previous change
        // left the published snapshot intact, so a poisoned lock is safe to reuse.
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Index::clone(&self.current.load());
        let out = change(&mut next, self.semantic.as_ref());
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

fn answer_in(
    index: &Index,
    dense: Option<&Dense>,
    query: &str,
    preferred: Option<Lang>,
    params: &EngineParams,
) -> Option<Match> {
    let q = index.query_vector(query, params);
    let lang = preferred.or(q.lang);
    match dense {
        Some(dense) => answered(
            index,
            rank_in(index, dense, query, &q, 1, params.lexical_evidence).first(),
            lang,
            params,
        ),
        None => best_in(index, &q, lang, params),
    }
}

/// The fused ranking's `k` best entries; without `lexical_evidence`, the encoders' alone.
fn rank_in(
    index: &Index,
    dense: &Dense,
    text: &str,
    q: &QueryVector,
    k: usize,
    lexical_evidence: bool,
) -> Vec<Ranked> {
    let entries = index.entries();
    if entries.is_empty() {
        return Vec::new();
    }
    let lexical_best = index.top_k(q, 1, 0.0).into_iter().next().filter(|_| lexical_evidence);
    let lexical: Vec<f32> = entries
        .iter()
        .map(|e| match &lexical_best {
            Some(m) if m.entry.topic_key() == e.topic_key() => m.score,
            _ => 0.0,
        })
        .collect();
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let semantic = dense.index.load();
    let query = dense.models.embed_query(&semantic.respell(text, &q.corrected));
    let sims = dense.models.similarities(&semantic, &query, &ids);
    let fused = hybrid::fuse(&sims, &lexical);
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let by_fused = |a: &usize, b: &usize| fused[*b].total_cmp(&fused[*a]).then(a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k, by_fused);
        order.truncate(k);
    }
    order.sort_unstable_by(by_fused);
    order
        .into_iter()
        .map(|i| {
            let unit = match &lexical_best {
                Some(m) if m.matched.id == entries[i].id => m.unit,
                _ => Unit::Question(0),
            };
            Ranked {
                entry: Arc::clone(&entries[i]),
                evidence: hybrid::evidence(&sims, &lexical, &fused, i),
                unit,
            }
        })
        .collect()
}

/// The answer from the fused ranking's best entry, if confident enough, in `lang` where its
/// topic has an entry in it.
fn answered(index: &Index, top: Option<&Ranked>, lang: Option<Lang>, params: &EngineParams) -> Option<Match> {
    let top = top.filter(|r| r.evidence.confidence >= params.threshold)?.clone().into_match();
    match index.twin(&top.entry, lang.unwrap_or(top.entry.lang)) {
        Some(twin) => Some(Match { entry: twin, ..top }),
        None => Some(top),
    }
}

impl Ranked {
    /// As a [`Match`] scored by its confidence.
    pub fn into_match(self) -> Match {
        Match {
            matched: Arc::clone(&self.entry),
            entry: self.entry,
            score: self.evidence.confidence,
            unit: self.unit,
        }
    }
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

/// The longest entry id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// What [`valid_id`] accepts, as error messages say it.
pub const ID_RULE: &str =
    "id must be 1 to 128 ASCII letters, digits, '-', '_', '.' or ':', starting with a letter or a digit";

/// Whether `id` can name an entry: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-`, `_`, `.`
/// or `:`, the first a letter or a digit — so never `.`, `..` or a hidden-file name, whatever
/// path or log the id ends up in.
pub fn valid_id(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::corpus::KnowledgeBase;

    #[test]
    fn ids_are_letters_digits_and_four_marks_starting_with_a_letter_or_digit() {
        for ok in ["payslip-en", "a", "Leave_2026.v2:fr", &"x".repeat(MAX_ID_LEN)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [".", "..", ".hidden", "-x", "", "a/b", "a b", "café", "a\0", &"x".repeat(MAX_ID_LEN + 1)]
        {
            assert!(!valid_id(bad), "{bad:?}");
            let entry = FaqEntry::new(bad, Lang::En, &["q?"], "a.");
            assert!(entry.validate().is_err(), "{bad:?}");
        }
    }

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
