//! Lexical and semantic evidence fused into one confidence.
//!
//! Each sentence encoder scores every entry: `w · cos(query, passage) + (1 − w) · max over
//! the entry's questions of cos(query, question)`, where the passage is the entry's
//! questions and answer as one text and `w` is the encoder's passage weight. An encoder's
//! scores are standardised over the FAQ for this message (z-scores: how far an entry stands
//! out from the rest, which does not depend on the FAQ's size or the encoder's range), and
//! summed with the lexical engine's score on its best entry's topic:
//!
//! `fused(e) = Σ_k z_k(e) + LEXICAL_WEIGHT · lexical(e)`.
//!
//! The best-fused entry's **confidence** is a logistic model over what the scorers say about
//! it — its fused score, its margin over the runner-up, each encoder's raw similarity, the
//! lexical score, whether each encoder ranks it first. It was fitted once
//! (`scripts/confidence.py`) on labelled messages of two FAQs of different organisations and
//! styles (the shipped one and an IT-desk one), each with the same generic out-of-scope messages
//! any helpdesk must decline (`src/eval/out_of_scope.txt`); a third FAQ, held out, only checks
//! it. A probability that the answer is right, so one threshold means the same on any FAQ:
//! below it, the engine declines.
//!
//! Entry vectors live in one [`DenseIndex`] per encoder (row 0 the passage, then one row per
//! question); adding, replacing or removing an entry embeds that entry only.

use std::sync::Arc;

use rayon::prelude::*;

use super::FaqEntry;
use super::respell::Spellings;
use super::semantic::dense::Query;
use super::semantic::{DenseIndex, Role, SentenceEncoder};

/// The confidence below which the fused engine declines, by default: even odds.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// Weight of the lexical cosine, in z-score units, in the fused score.
pub const LEXICAL_WEIGHT: f32 = 2.0;

/// The confidence model: `p = σ(b + Σ wᵢ · featureᵢ)`, features in [`confidence`]'s order;
/// printed by `python3 scripts/confidence.py fit`.
const CONFIDENCE_BIAS: f32 = -33.963;
const CONFIDENCE_WEIGHTS: [f32; 7] = [0.541, 0.213, 35.297, 1.581, -0.130, 0.120, 0.120];

/// One sentence encoder and how it scores an entry.
#[derive(Clone)]
pub struct Encoder {
    /// The model.
    pub model: Arc<dyn SentenceEncoder>,
    /// Weight of the whole-entry passage against the best single question.
    pub passage_weight: f32,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("model", &self.model.model_id())
            .field("passage_weight", &self.passage_weight)
            .finish()
    }
}

/// Where entry vectors may already be: a cache keyed by model and text, so a restart or a
/// reload embeds only what changed. The engine stays pure: the caller brings the storage.
pub trait VectorCache: Sync {
    /// The vector `model` gave `text` in `role`, if known.
    fn get(&self, model: &str, role: Role, text: &str) -> Option<Vec<f32>>;
    /// Remembers a vector just computed.
    fn put(&self, model: &str, role: Role, text: &str, vector: &[f32]);
}

/// No cache: every text is embedded.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCache;

impl VectorCache for NoCache {
    fn get(&self, _: &str, _: Role, _: &str) -> Option<Vec<f32>> {
        None
    }
    fn put(&self, _: &str, _: Role, _: &str, _: &[f32]) {}
}

/// Told how far a build has come: `(entries embedded, entries in all)`, from any thread,
/// after each entry. The engine stays pure: the caller draws the bar or writes the log.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The sentence encoders in use.
#[derive(Clone)]
pub struct Semantic {
    encoders: Arc<[Encoder]>,
    progress: Option<Progress>,
}

impl std::fmt::Debug for Semantic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semantic").field("encoders", &self.encoders).finish_non_exhaustive()
    }
}

/// The semantic scorer's models and the cache of entry vectors it embeds through.
#[derive(Clone)]
pub struct SemanticSetup {
    /// The encoders.
    pub models: Semantic,
    /// Where entry vectors are remembered.
    pub cache: Arc<dyn VectorCache + Send>,
}

impl std::fmt::Debug for SemanticSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticSetup").field("models", &self.models).finish_non_exhaustive()
    }
}

/// Entry vectors, one dense index per encoder, keyed by entry id.
#[derive(Debug, Clone, Default)]
pub struct SemanticIndex {
    dense: Vec<Arc<DenseIndex<Arc<str>>>>,
    /// How the FAQ spells its words, to write a message's words that way before it is
    /// embedded ([`super::respell`]).
    spellings: Arc<Spellings>,
}

/// An entry's vectors: per encoder, the passage then each question.
pub type EntryVectors = Vec<Vec<Vec<f32>>>;

/// What each scorer says about one entry for one message.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evidence {
    /// The lexical cosine credited to the entry (its topic is the lexical engine's best).
    pub lexical: f32,
    /// Per encoder: the entry's similarity.
    pub similarity: Vec<f32>,
    /// Per encoder: that similarity's z-score over the FAQ.
    pub z: Vec<f32>,
    /// Per encoder: whether it ranks the entry first.
    pub ranked_first: Vec<bool>,
    /// The fused score.
    pub fused: f32,
    /// Fused score minus the best other entry's.
    pub margin: f32,
    /// The calibrated confidence, in `[0, 1]`.
    pub confidence: f32,
}

/// Text embedded for an entry's passage.
fn passage_text(e: &FaqEntry) -> String {
    let mut s = e.questions.join(" ");
    s.push(' ');
    s.push_str(&e.answer);
    s
}

fn embed_cached(encoder: &Encoder, role: Role, text: &str, cache: &dyn VectorCache) -> Vec<f32> {
    let id = encoder.model.model_id();
    if let Some(v) = cache.get(id, role, text).filter(|v| v.len() == encoder.model.dim()) {
        return v;
    }
    let v = encoder.model.embed(text, role);
    cache.put(id, role, text, &v);
    v
}

impl Semantic {
    /// The encoders, in the order their evidence is reported.
    pub fn new(encoders: Vec<Encoder>) -> Semantic {
        Semantic { encoders: encoders.into(), progress: None }
    }

    /// Reports each full build's progress to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Semantic {
        self.progress = Some(progress);
        self
    }

    /// The encoders.
    pub fn encoders(&self) -> &[Encoder] {
        &self.encoders
    }

    /// An entry's vectors, from `cache` where it has them.
    pub fn embed_entry(&self, e: &FaqEntry, cache: &dyn VectorCache) -> EntryVectors {
        let passage = passage_text(e);
        self.encoders
            .iter()
            .map(|enc| {
                let mut rows = Vec::with_capacity(1 + e.questions.len());
                rows.push(embed_cached(enc, Role::Passage, &passage, cache));
                rows.extend(e.questions.iter().map(|q| embed_cached(enc, Role::Query, q, cache)));
                rows
            })
            .collect()
    }

    /// A message's vector for each encoder.
    pub fn embed_query(&self, text: &str) -> Vec<Vec<f32>> {
        self.encoders.iter().map(|enc| enc.model.embed(text, Role::Query)).collect()
    }

    /// Embeds every entry (on all cores) and indexes them.
    pub fn build(&self, entries: &[FaqEntry], cache: &dyn VectorCache) -> SemanticIndex {
        let done = std::sync::atomic::AtomicUsize::new(0);
        let vectors: Vec<EntryVectors> = entries
            .par_iter()
            .map(|e| {
                let v = self.embed_entry(e, cache);
                if let Some(progress) = &self.progress {
                    progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, entries.len());
                }
                v
            })
            .collect();
        let mut index = SemanticIndex {
            dense: self.encoders.iter().map(|enc| Arc::new(DenseIndex::new(enc.model.dim()))).collect(),
            spellings: Arc::new(Spellings::of(entries)),
        };
        for (e, v) in entries.iter().zip(vectors) {
            index.upsert(&e.id, v);
        }
        index
    }

    /// Per encoder, every entry's similarity to the message, in `ids`' order.
    pub fn similarities(&self, index: &SemanticIndex, query: &[Vec<f32>], ids: &[&str]) -> Vec<Vec<f32>> {
        let mut rows = Vec::new();
        self.encoders
            .iter()
            .zip(&index.dense)
            .zip(query)
            .map(|((enc, dense), q)| {
                dense.score_rows(&Query::new(q), &mut rows);
                ids.iter()
                    .map(|id| {
                        let Some(own) = dense.rows_of(&Arc::from(*id)) else { return 0.0 };
                        let Some((&passage, questions)) = own.split_first() else { return 0.0 };
                        let p = rows[passage as usize];
                        let best_q =
                            questions.iter().map(|&r| rows[r as usize]).fold(f32::NEG_INFINITY, f32::max);
                        if best_q.is_finite() {
                            enc.passage_weight * p + (1.0 - enc.passage_weight) * best_q
                        } else {
                            p
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

impl SemanticIndex {
    /// Indexes `id`'s vectors, replacing what it had.
    pub fn upsert(&mut self, id: &str, vectors: EntryVectors) {
        for (dense, rows) in self.dense.iter_mut().zip(vectors) {
            // The vectors come from the encoder that owns this index: same dimension.
            let _ = Arc::make_mut(dense).upsert(Arc::from(id), &rows);
        }
    }

    /// Learns how `entry` spells its words.
    pub fn learn(&mut self, entry: &FaqEntry) {
        Arc::make_mut(&mut self.spellings).learn(entry);
    }

    /// `text` as the encoders should read it: see [`super::respell`].
    pub fn respell<'t>(&self, text: &'t str, corrected: &[(String, String)]) -> std::borrow::Cow<'t, str> {
        self.spellings.respell(text, corrected)
    }

    /// Forgets `id`.
    pub fn remove(&mut self, id: &str) {
        let key: Arc<str> = Arc::from(id);
        for dense in &mut self.dense {
            Arc::make_mut(dense).remove(&key);
        }
    }

    /// Rows held, over every encoder.
    pub fn rows(&self) -> usize {
        self.dense.iter().map(|d| d.rows()).sum()
    }
}

/// Fuses the evidence: `similarity[k][i]` is encoder `k`'s similarity for entry `i`,
/// `lexical[i]` the lexical cosine credited to entry `i`. Returns every entry's fused score.
pub fn fuse(similarity: &[Vec<f32>], lexical: &[f32]) -> Vec<f32> {
    let mut fused: Vec<f32> = lexical.iter().map(|l| LEXICAL_WEIGHT * l).collect();
    for sims in similarity {
        let (mean, sd) = mean_sd(sims);
        for (f, s) in fused.iter_mut().zip(sims) {
            *f += (s - mean) / sd;
        }
    }
    fused
}

/// The evidence for entry `i`, given every entry's fused score.
pub fn evidence(similarity: &[Vec<f32>], lexical: &[f32], fused: &[f32], i: usize) -> Evidence {
    let other_best =
        fused.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &f)| f).fold(f32::NEG_INFINITY, f32::max);
    let margin = if other_best.is_finite() { fused[i] - other_best } else { fused[i] };
    let mut ev = Evidence { lexical: lexical[i], fused: fused[i], margin, ..Evidence::default() };
    for sims in similarity {
        let (mean, sd) = mean_sd(sims);
        ev.similarity.push(sims[i]);
        ev.z.push((sims[i] - mean) / sd);
        ev.ranked_first.push(sims.iter().all(|&s| s <= sims[i]));
    }
    ev.confidence = confidence(&ev);
    ev
}

/// The calibrated probability that the entry is the right answer. The model was fitted with
/// two encoders (e5, then USE-m3); with fewer, the missing ones count as neutral.
fn confidence(ev: &Evidence) -> f32 {
    let sim = |k: usize| ev.similarity.get(k).copied().unwrap_or(0.0);
    let first = |k: usize| f32::from(u8::from(ev.ranked_first.get(k).copied().unwrap_or(false)));
    let features = [ev.fused, ev.margin, sim(0), sim(1), ev.lexical, first(0), first(1)];
    let x = CONFIDENCE_BIAS + features.iter().zip(CONFIDENCE_WEIGHTS).map(|(f, w)| f * w).sum::<f32>();
    1.0 / (1.0 + (-x).exp())
}

fn mean_sd(xs: &[f32]) -> (f32, f32) {
    if xs.is_empty() {
        return (0.0, 1.0);
    }
    let n = xs.len() as f32;
    let mean = xs.iter().sum::<f32>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    (mean, var.sqrt() + 1e-6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_that_stands_out_for_every_scorer_is_confident_and_a_flat_field_is_not() {
        let n = 50;
        let mut e5 = vec![0.78; n];
        let mut usem = vec![0.2; n];
        e5[7] = 0.9;
        usem[7] = 0.7;
        let mut lex = vec![0.0; n];
        lex[7] = 0.5;
        let sims = vec![e5, usem];
        let fused = fuse(&sims, &lex);
        let best = evidence(&sims, &lex, &fused, 7);
        assert!(best.ranked_first.iter().all(|&f| f) && best.margin > 0.0);
        assert!(best.confidence > 0.9, "{best:?}");

        let flat = vec![(0..n).map(|i| 0.78 + i as f32 * 1e-4).collect::<Vec<_>>(), vec![0.2; n]];
        let none = vec![0.0; n];
        let fused = fuse(&flat, &none);
        let top = evidence(&flat, &none, &fused, n - 1);
        assert!(top.confidence < 0.2, "{top:?}");
    }
}
