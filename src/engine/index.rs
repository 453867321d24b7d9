//! The index: segments, deletions, and scoring.
//!
//! The SMART `lnc.ltc` TF-IDF scheme: units weigh their terms by log term frequency, the
//! query by log term frequency times idf, both L2-normalised; the score is their cosine.
//! With `N` live entries and `df(t)` the number of live entries whose text holds `t`:
//!
//! ```text
//! idf(t)      = ln((1 + N) / (1 + df(t))) + 1
//! unit(t)     = 1 + ln tf(t)                        then L2-normalised per unit
//! query(t)    = tf(t) · idf(t)                      normalised together with unknown words
//! score(e, q) = max over units u of e:  cos(q, u) · (answer_weight if u is the answer)
//! ```
//!
//! Idf enters once, on the query side: a unit's vector depends on its own text only, so
//! adding or removing entries changes no stored weight — only `N` and `df`, which are
//! summed over the segments at query time. Results are therefore exactly those of a fresh
//! build over the same entries. (Measured on the quality set, this scores as well as
//! weighting both sides.) Document frequency counts entries, not units, so an entry asked
//! five ways does not make its own words look common. A query word the index has never
//! seen (and could not correct) still counts in the query's norm with the highest idf:
//! "how do I cook pasta on my laptop" must not score like "laptop".
//!
//! Scoring is exact top-k with pruning (MaxScore): query terms are taken rarest first;
//! each new unit found in a term's postings is scored in full with the
//! [`super::simd::dot`] kernel; once the upper bounds (query weight × the term's largest
//! unit weight) of the remaining terms add up to less than the k-th best score (or the
//! floor asked for), no unit still unseen can enter the results and the long postings of
//! common terms are never read.

use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::sync::Arc;

use super::analyze::{Analyzer, StemCache, Word};
use super::fuzzy::{FuzzyIndex, best_candidate};
use super::segment::{Deletes, NewEntry, Segment};
use super::{EngineParams, FaqEntry, Lang, Lexicon, Unit, simd, text};

/// A scored entry.
#[derive(Debug, Clone)]
pub struct Match {
    /// The entry to answer with.
    pub entry: Arc<FaqEntry>,
    /// The entry whose text matched: `entry` itself, or its twin in another language.
    pub matched: Arc<FaqEntry>,
    /// Cosine similarity of its best unit, in `[0, 1]`.
    pub score: f32,
    /// The unit that scored best.
    pub unit: Unit,
}

/// A query as the index sees it.
#[derive(Debug, Clone, Default)]
pub struct QueryVector {
    /// `(term, weight)`, L2-normalised together with the unknown words.
    pub terms: Vec<(String, f32)>,
    /// Content words the index does not know.
    pub unknown: Vec<String>,
    /// Typos corrected: `(typed, corrected)`.
    pub corrected: Vec<(String, String)>,
    /// The language the stop words suggest.
    pub lang: Option<Lang>,
}

/// Why a query matched a unit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    /// Shared terms: `(term, query weight, unit weight, contribution)`, largest first.
    pub terms: Vec<(String, f32, f32, f32)>,
    /// Query words the index does not know.
    pub unknown: Vec<String>,
    /// Typos corrected: `(typed, corrected)`.
    pub corrected: Vec<(String, String)>,
    /// The text of the unit that matched.
    pub unit_text: String,
}

/// An immutable snapshot of the index. Cloning it is cheap (segments are shared), which
/// is how the writer prepares the next snapshot while readers keep using this one.
#[derive(Debug, Clone)]
pub struct Index {
    params: EngineParams,
    analyzer: Arc<Analyzer>,
    /// Words of the lexicon: known to typo correction even when no entry uses them.
    lexicon_words: Arc<FuzzyIndex>,
    segments: Vec<Arc<Segment>>,
    deletes: Vec<Arc<Deletes>>,
    live: usize,
    next_seq: u64,
}

/// A prefix shorter than this is too ambiguous to stand for a word.
const MIN_PREFIX_CHARS: usize = 5;

/// Margin kept when pruning on score bounds, well above `f32` rounding of a dot product.
const PRUNING_SLACK: f32 = 1e-5;

/// A segment is merged into its predecessor once it holds at least this fraction of it.
const MERGE_RATIO: usize = 4;

fn idf(n_entries: usize, df: u32) -> f32 {
    ((1.0 + n_entries as f32) / (1.0 + df as f32)).ln() + 1.0
}

/// Reusable per-thread buffers: the query as a dense vector over a segment's terms, and
/// the units already scored.
#[derive(Default)]
struct Scratch {
    dense: Vec<f32>,
    /// One bit per unit: already met in this segment. A bitset keeps it in cache: 50 KB
    /// for 400,000 units.
    seen: Vec<u64>,
    /// The words of `seen` set, to clear them afterwards.
    dirty: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The best `k` distinct entries seen so far.
struct TopK {
    k: usize,
    floor: f32,
    /// `(score, seq, segment, entry, unit)`.
    items: Vec<(f32, u64, usize, u32, Unit)>,
}

impl TopK {
    /// The score a unit must beat to matter.
    fn bar(&self) -> f32 {
        if self.items.len() < self.k {
            self.floor
        } else {
            self.items.iter().map(|i| i.0).fold(f32::INFINITY, f32::min).max(self.floor)
        }
    }

    fn offer(&mut self, score: f32, seq: u64, seg: usize, entry: u32, unit: Unit) {
        if score < self.floor || score <= 0.0 {
            return;
        }
        if let Some(item) = self.items.iter_mut().find(|i| i.2 == seg && i.3 == entry) {
            if score > item.0 || (score == item.0 && unit < item.4) {
                item.0 = score;
                item.4 = unit;
            }
            return;
        }
        let new = (score, seq, seg, entry, unit);
        if self.items.len() < self.k {
            self.items.push(new);
            return;
        }
        // The worst: lowest score, then latest insertion.
        let worst = (0..self.items.len()).max_by(|&a, &b| {
            let (x, y) = (&self.items[a], &self.items[b]);
            y.0.total_cmp(&x.0).then(x.1.cmp(&y.1))
        });
        if let Some(w) = worst {
            let old = &self.items[w];
            if score > old.0 || (score == old.0 && seq < old.1) {
                self.items[w] = new;
            }
        }
    }
}

impl Index {
    /// Indexes `entries` in one segment. Later entries with an id already seen replace
    /// earlier ones; the corpus loader refuses duplicates before this point.
    pub fn build(entries: &[FaqEntry], lexicon: &Lexicon, params: &EngineParams) -> Index {
        use rayon::prelude::*;
        let empty = Lexicon::default();
        let analyzer = Arc::new(Analyzer::new(if params.concepts { lexicon } else { &empty }));
        let mut lexicon_words: Vec<(String, u32)> = Vec::new();
        for phrase in lexicon.concepts.iter().flat_map(|c| c.en.iter().chain(&c.fr)) {
            text::for_each_word(phrase, |w| lexicon_words.push((w.to_owned(), 1)));
        }
        let mut last: HashMap<&str, usize> = HashMap::default();
        for (i, e) in entries.iter().enumerate() {
            last.insert(&e.id, i);
        }
        let index_answer = params.answer_weight > 0.0;
        let kept: Vec<(usize, &FaqEntry)> =
            entries.iter().enumerate().filter(|(i, e)| last.get(e.id.as_str()) == Some(i)).collect();
        let analysed: Vec<NewEntry> = kept
            .par_iter()
            .map_init(StemCache::default, |cache, &(i, e)| NewEntry {
                entry: Arc::new(e.clone()),
                seq: i as u64,
                analysis: analyzer.analyze_entry(e, index_answer, cache),
            })
            .collect();
        let live = analysed.len();
        let segment = Segment::build(analysed);
        Index {
            params: *params,
            analyzer,
            lexicon_words: Arc::new(FuzzyIndex::from_counts(
                lexicon_words.iter().map(|(w, c)| (w.as_str(), *c)),
            )),
            segments: vec![Arc::new(segment)],
            deletes: vec![Arc::new(Deletes::default())],
            live,
            next_seq: entries.len() as u64,
        }
    }

    /// The parameters the index was built with.
    pub fn params(&self) -> &EngineParams {
        &self.params
    }

    /// The analyzer in use.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no entry is indexed.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Sizes of the index, for diagnostics: segments, units, terms, postings, words.
    pub fn stats(&self) -> String {
        let sum = |f: &dyn Fn(&Segment) -> usize| self.segments.iter().map(|s| f(s)).sum::<usize>();
        format!(
            "{} segments, {} entries, {} units, {} terms, {} postings, {} words ({} typo variants)",
            self.segments.len(),
            self.live,
            sum(&|s| s.unit_kinds.len()),
            sum(&|s| s.term_names.len()),
            sum(&|s| s.rows.nnz()),
            sum(&|s| s.words.len()),
            sum(&|s| s.words.variants()),
        )
    }

    /// Number of segments (for tests and diagnostics).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn is_deleted(&self, seg: usize, e: u32) -> bool {
        self.deletes[seg].entries.contains(&e)
    }

    /// Live entries in insertion order.
    pub fn entries(&self) -> Vec<Arc<FaqEntry>> {
        let mut all: Vec<(u64, Arc<FaqEntry>)> = Vec::with_capacity(self.live);
        for (s, seg) in self.segments.iter().enumerate() {
            for (e, entry) in seg.entries.iter().enumerate() {
                if !self.is_deleted(s, e as u32) {
                    all.push((seg.seqs[e], entry.clone()));
                }
            }
        }
        all.sort_unstable_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, e)| e).collect()
    }

    /// Where the live entry `id` is: `(segment, local entry)`.
    fn locate(&self, id: &str) -> Option<(usize, u32)> {
        self.segments
            .iter()
            .enumerate()
            .rev()
            .find_map(|(s, seg)| seg.ids.get(id).copied().filter(|&e| !self.is_deleted(s, e)).map(|e| (s, e)))
    }

    /// The live entry with this id.
    pub fn entry(&self, id: &str) -> Option<Arc<FaqEntry>> {
        self.locate(id).map(|(s, e)| self.segments[s].entries[e as usize].clone())
    }

    /// The entry of `e`'s topic in `lang`, if `e` is in another language and one exists
    /// (the earliest inserted, if several).
    pub fn twin(&self, e: &FaqEntry, lang: Lang) -> Option<Arc<FaqEntry>> {
        if e.lang == lang {
            return None;
        }
        let key = (e.topic_key().to_owned(), lang);
        let mut best: Option<(u64, &Arc<FaqEntry>)> = None;
        for (s, seg) in self.segments.iter().enumerate() {
            let Some(locals) = seg.topics.get(&key) else { continue };
            if let Some(&l) = locals.iter().find(|&&l| !self.is_deleted(s, l)) {
                let seq = seg.seqs[l as usize];
                if best.is_none_or(|(b, _)| seq < b) {
                    best = Some((seq, &seg.entries[l as usize]));
                }
            }
        }
        best.map(|(_, e)| e.clone())
    }

    /// Live entries holding `term`.
    fn df(&self, term: &str) -> u32 {
        let mut df = 0;
        for (seg, del) in self.segments.iter().zip(&self.deletes) {
            if let Some(&t) = seg.terms.get(term) {
                df += seg.df[t as usize] - del.df.get(&t).copied().unwrap_or(0);
            }
        }
        df
    }

    /// Live entries holding the content word `word`.
    fn word_count(&self, word: &str) -> u32 {
        let mut n = 0;
        for (seg, del) in self.segments.iter().zip(&self.deletes) {
            n += seg.words.count(word).saturating_sub(del.words.get(word).copied().unwrap_or(0));
        }
        n
    }

    fn known(&self, w: &Word) -> bool {
        w.stems.iter().any(|s| self.df(s) > 0)
            || self.word_count(&w.surface) > 0
            || self.lexicon_words.count(&w.surface) > 0
    }

    /// The closest known word to `word`, over every segment and the lexicon.
    fn correct(&self, word: &str) -> Option<String> {
        let mut candidates: Vec<(&str, usize)> = self.lexicon_words.candidates(word);
        for seg in &self.segments {
            for c in seg.words.candidates(word) {
                if !candidates.iter().any(|(w, _)| *w == c.0) {
                    candidates.push(c);
                }
            }
        }
        let counted = candidates.into_iter().map(|(w, d)| {
            // Lexicon words count once, so an entry's word wins a tie with them.
            let n = self.word_count(w) * 2 + u32::from(self.lexicon_words.count(w) > 0);
            (w, d, n)
        });
        best_candidate(counted).map(|(w, _)| w.to_owned())
    }

    /// The longest live term that is a prefix of `word` and keeps most of it.
    fn known_prefix(&self, word: &str) -> Option<String> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        let min = MIN_PREFIX_CHARS.max((chars.len() * 2).div_ceil(3));
        (min..chars.len()).rev().map(|n| &word[..chars[n].0]).find(|p| self.df(p) > 0).map(str::to_owned)
    }

    /// Analyses a query: stems both ways, typo correction, concepts, TF-IDF, norm.
    pub fn query_vector(&self, text: &str, params: &EngineParams) -> QueryVector {
        let mut words = self.analyzer.words(text);
        let lang = Analyzer::detect_language(&words, text);
        let mut factor = vec![1.0f32; words.len()];
        let mut corrected = Vec::new();
        if params.fuzzy {
            let mut names: Option<Vec<String>> = None;
            for (i, w) in words.iter_mut().enumerate() {
                if !w.content || self.known(w) {
                    continue;
                }
                // Only a message with an unknown word needs its names found.
                if names.get_or_insert_with(|| text::proper_names(text)).contains(&w.surface) {
                    continue;
                }
                if let Some(fixed) = self.correct(&w.surface) {
                    corrected.push((w.surface.clone(), fixed.clone()));
                    *w = self.analyzer.word(&fixed);
                    factor[i] = params.fuzzy_weight;
                } else if let Some(stem) = self.known_prefix(&w.surface) {
                    // A derived form the stemmer did not reduce: `teletravailler` → `teletravail`.
                    corrected.push((w.surface.clone(), stem.clone()));
                    w.stems = [stem.clone(), stem];
                    factor[i] = params.fuzzy_weight;
                }
            }
        }

        let n = self.live;
        let max_idf = idf(n, 0);
        let mut tf: Vec<(String, f32, u32)> = Vec::new();
        let mut add = |term: &str, weight: f32, df: u32| match tf.iter_mut().find(|(t, _, _)| t == term) {
            Some(slot) => slot.1 += weight,
            None => tf.push((term.to_owned(), weight, df)),
        };
        let mut unknown = Vec::new();
        let mut unknown_sq = 0.0f32;
        for (w, f) in words.iter().zip(&factor).filter(|(w, _)| w.content) {
            let mut stems: Vec<(&str, u32)> =
                w.stems.iter().map(|s| (s.as_str(), self.df(s))).filter(|&(_, df)| df > 0).collect();
            stems.dedup_by(|a, b| a.0 == b.0);
            if stems.is_empty() {
                unknown.push(w.surface.clone());
                unknown_sq += (max_idf * f * params.unknown_weight).powi(2);
                continue;
            }
            // A word whose two stems both exist counts once in all, not twice.
            let share = f / (stems.len() as f32).sqrt();
            for (s, df) in stems {
                add(s, share, df);
            }
        }
        if params.concepts {
            for c in self.analyzer.concepts(&words, &[0, 1]) {
                let term = self.analyzer.concept_term(c);
                let df = self.df(&term);
                if df > 0 {
                    add(&term, params.concept_weight, df);
                }
            }
        }
        let mut terms: Vec<(String, f32)> = tf.into_iter().map(|(t, f, df)| (t, f * idf(n, df))).collect();
        let norm = (terms.iter().map(|(_, w)| w * w).sum::<f32>() + unknown_sq).sqrt();
        if norm > 0.0 {
            for (_, w) in &mut terms {
                *w /= norm;
            }
        }
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        QueryVector { terms, unknown, corrected, lang }
    }

    fn unit_weight(&self, unit: Unit) -> f32 {
        match unit {
            Unit::Question(_) => 1.0,
            Unit::Answer => self.params.answer_weight,
        }
    }

    /// The `k` best entries scoring at least `floor`, best first; ties go to the entry
    /// inserted first.
    pub fn top_k(&self, q: &QueryVector, k: usize, floor: f32) -> Vec<Match> {
        if q.terms.is_empty() || k == 0 {
            return Vec::new();
        }
        let mut top = TopK { k, floor, items: Vec::with_capacity(k + 1) };
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            for s in 0..self.segments.len() {
                self.score_segment(s, q, &mut top, &mut scratch);
            }
        });
        let mut items = top.items;
        items.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        items
            .into_iter()
            .map(|(score, _, s, e, unit)| {
                let entry = self.segments[s].entries[e as usize].clone();
                Match { matched: entry.clone(), entry, score: score.min(1.0), unit }
            })
            .collect()
    }

    fn score_segment(&self, s: usize, q: &QueryVector, top: &mut TopK, scratch: &mut Scratch) {
        let seg = &self.segments[s];
        // (local term, query weight, upper bound), by decreasing bound.
        let mut local: Vec<(u32, f32, f32)> = q
            .terms
            .iter()
            .filter_map(|(t, w)| {
                seg.terms.get(t.as_str()).map(|&id| (id, *w, w * seg.max_weight[id as usize]))
            })
            .collect();
        if local.is_empty() {
            return;
        }
        // Cheapest postings first: rare terms find the best units early, which raises the
        // bar and lets the long postings of common terms be skipped. Any order is exact.
        local.sort_by_key(|&(t, _, _)| seg.postings.indptr().outer_inds_sz(t as usize).len());
        if scratch.dense.len() < seg.term_names.len() {
            scratch.dense.resize(seg.term_names.len(), 0.0);
        }
        let words = seg.unit_kinds.len().div_ceil(64);
        if scratch.seen.len() < words {
            scratch.seen.resize(words, 0);
        }
        for &(t, w, _) in &local {
            scratch.dense[t as usize] = w;
        }
        let mut bar = top.bar();
        for (i, &(t, w, _)) in local.iter().enumerate() {
            // No unit still unseen can score above `rest`; the slack absorbs rounding, so
            // a unit scoring exactly the bar is never skipped.
            let after: f32 = local[i + 1..].iter().map(|l| l.2).sum();
            if local[i].2 + after + PRUNING_SLACK < bar {
                break;
            }
            let Some(col) = seg.postings.outer_view(t as usize) else { continue };
            for (&u, &dw) in col.indices().iter().zip(col.data()) {
                let (word, bit) = ((u / 64) as usize, 1u64 << (u % 64));
                let seen = &mut scratch.seen[word];
                if *seen & bit != 0 {
                    continue;
                }
                if *seen == 0 {
                    scratch.dirty.push(word as u32);
                }
                *seen |= bit;
                // A unit first met here holds none of the terms before this one: its score
                // is at most this term's share plus the bounds of the terms after it. Most
                // units of a common term fail that test without their row being read.
                if w * dw + after + PRUNING_SLACK < bar {
                    continue;
                }
                let e = seg.unit_entry[u as usize];
                if self.is_deleted(s, e) {
                    continue;
                }
                let Some(row) = seg.rows.outer_view(u as usize) else { continue };
                let kind = seg.unit_kinds[u as usize];
                let score = simd::dot(row.indices(), row.data(), &scratch.dense) * self.unit_weight(kind);
                top.offer(score, seg.seqs[e as usize], s, e, kind);
                bar = top.bar();
            }
        }
        for &(t, _, _) in &local {
            scratch.dense[t as usize] = 0.0;
        }
        for &w in &scratch.dirty {
            scratch.seen[w as usize] = 0;
        }
        scratch.dirty.clear();
    }

    /// The terms `q` shares with `m`'s unit, and their weights.
    pub fn explain(&self, q: &QueryVector, m: &Match) -> Explanation {
        let mut terms = Vec::new();
        if let Some((s, e)) = self.locate(&m.matched.id) {
            let seg = &self.segments[s];
            let unit = seg.units_of(e).find(|&u| seg.unit_kinds[u as usize] == m.unit);
            if let Some(row) = unit.and_then(|u| seg.rows.outer_view(u as usize)) {
                let weights: HashMap<&str, f32> = q.terms.iter().map(|(t, w)| (t.as_str(), *w)).collect();
                for (t, &dw) in row.iter() {
                    let name = &*seg.term_names[t];
                    if let Some(&qw) = weights.get(name) {
                        let c = qw * dw * self.unit_weight(m.unit);
                        terms.push((self.analyzer.describe_term(name), qw, dw, c));
                    }
                }
            }
        }
        terms.sort_by(|a, b| b.3.total_cmp(&a.3));
        let unit_text = match m.unit {
            Unit::Question(i) => m.matched.questions.get(i).cloned().unwrap_or_default(),
            Unit::Answer => m.matched.answer.clone(),
        };
        Explanation { terms, unknown: q.unknown.clone(), corrected: q.corrected.clone(), unit_text }
    }

    /// This index with `entry` added, replacing the live entry with its id; returns the
    /// replaced entry. Only the new entry is analysed: nothing is refitted.
    pub(crate) fn upsert(&mut self, entry: FaqEntry) -> Option<Arc<FaqEntry>> {
        let replaced = self.remove(&entry.id);
        let analysis =
            self.analyzer.analyze_entry(&entry, self.params.answer_weight > 0.0, &mut StemCache::default());
        let seq = self.next_seq;
        self.next_seq += 1;
        let segment = Segment::build(vec![NewEntry { entry: Arc::new(entry), seq, analysis }]);
        self.segments.push(Arc::new(segment));
        self.deletes.push(Arc::new(Deletes::default()));
        self.live += 1;
        self.merge_small_segments();
        replaced
    }

    /// This index without the live entry `id`; returns it.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Arc<FaqEntry>> {
        let (s, e) = self.locate(id)?;
        let seg = &self.segments[s];
        let entry = seg.entries[e as usize].clone();
        let words = self
            .analyzer
            .analyze_entry(&entry, self.params.answer_weight > 0.0, &mut StemCache::default())
            .words;
        self.deletes[s] = Arc::new(self.deletes[s].with(seg, e, &words));
        self.live -= 1;
        Some(entry)
    }

    /// Keeps segment sizes decreasing geometrically, so there are O(log n) of them and an
    /// entry is copied O(log n) times over its life; also drops mostly-deleted segments.
    fn merge_small_segments(&mut self) {
        loop {
            let n = self.segments.len();
            let live = |i: usize| self.segments[i].len() - self.deletes[i].entries.len();
            if n >= 2 && live(n - 1) * MERGE_RATIO >= live(n - 2) {
                let merged = Segment::merge(&[
                    (&self.segments[n - 2], &self.deletes[n - 2]),
                    (&self.segments[n - 1], &self.deletes[n - 1]),
                ]);
                self.segments.truncate(n - 2);
                self.deletes.truncate(n - 2);
                self.segments.push(Arc::new(merged));
                self.deletes.push(Arc::new(Deletes::default()));
                continue;
            }
            // Rewrite a segment that is mostly deletions.
            if let Some(i) = (0..n).find(|&i| self.deletes[i].entries.len() * 2 > self.segments[i].len()) {
                let rewritten = Segment::merge(&[(&self.segments[i], &self.deletes[i])]);
                if rewritten.is_empty() {
                    self.segments.remove(i);
                    self.deletes.remove(i);
                } else {
                    self.segments[i] = Arc::new(rewritten);
                    self.deletes[i] = Arc::new(Deletes::default());
                }
                continue;
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, FaqEntry, Lang};

    fn entries() -> Vec<FaqEntry> {
        vec![
            FaqEntry::new("pw-en", Lang::En, &["How do I reset my password?"], "Go to it.example.com."),
            FaqEntry::new(
                "pw-fr",
                Lang::Fr,
                &["Comment réinitialiser mon mot de passe ?"],
                "Allez sur it.example.com.",
            ),
            FaqEntry::new("leave-fr", Lang::Fr, &["Comment poser des congés ?"], "Dans le portail RH."),
        ]
    }

    #[test]
    fn an_exact_question_scores_one() {
        let e = Engine::build(&entries(), &Lexicon::default());
        let m = e.best("How do I reset my password?").unwrap();
        assert_eq!(m.entry.id, "pw-en");
        assert!((m.score - 1.0).abs() < 1e-5, "{}", m.score);
    }

    #[test]
    fn accents_do_not_matter() {
        let e = Engine::build(&entries(), &Lexicon::default());
        assert_eq!(e.best("poser des conges").unwrap().entry.id, "leave-fr");
        assert_eq!(e.best("réinitialiser mot de passe").unwrap().entry.id, "pw-fr");
    }

    #[test]
    fn unknown_words_lower_the_score() {
        let e = Engine::build(&entries(), &Lexicon::default());
        let short = e.search("password", 1)[0].score;
        let noisy = e.search("password pasta recipe tomato oven", 1)[0].score;
        assert!(noisy < short / 2.0, "{noisy} vs {short}");
    }

    #[test]
    fn typos_are_corrected_and_reported() {
        let e = Engine::build(&entries(), &Lexicon::default());
        let m = e.best("how to reset my pasword").unwrap();
        assert_eq!(m.entry.id, "pw-en");
        let x = e.explain("how to reset my pasword", &m);
        assert_eq!(x.corrected, [("pasword".to_owned(), "password".to_owned())]);
        assert!(x.terms.iter().any(|t| t.0 == "password"));
    }

    #[test]
    fn nothing_in_common_gives_no_match() {
        let e = Engine::build(&entries(), &Lexicon::default());
        assert!(e.search("weather tomorrow", 3).is_empty());
        assert!(e.best("").is_none());
    }

    #[test]
    fn a_later_duplicate_id_replaces_the_earlier_entry() {
        let mut list = entries();
        list.push(FaqEntry::new("pw-en", Lang::En, &["Where is the canteen?"], "Ground floor."));
        let e = Engine::build(&list, &Lexicon::default());
        assert_eq!(e.len(), 3);
        assert_eq!(e.entry("pw-en").unwrap().answer, "Ground floor.");
    }
}
