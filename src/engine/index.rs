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
//! Scoring is exact top-k with pruning (MaxScore, document at a time). Each term's
//! postings are kept apart for questions and answers, which are weighted differently;
//! questions are walked first, and their best score usually rules the answers out whole.
//! A walk merges the postings of the *essential* terms — the rarest, as many as it takes
//! for a unit holding none of them to fall short of the bar (the k-th best score so far,
//! or the floor) — and drops terms as the bar rises, so the long postings of common terms
//! are only looked up, never read through. Bounds come from two facts: a term adds at
//! most its query weight times its largest unit weight, and a unit vector's weights on
//! any set of terms have a norm of at most 1, so by Cauchy–Schwarz those terms add at
//! most the norm of their query weights. Only a unit whose bound still reaches the bar
//! is scored in full, with the [`super::simd::dot`] kernel over its row, so the score is
//! the same whatever segment holds the unit. A first walk guesses a high bar; if it does
//! not fill the results above the guess, a second walk with the true bar completes them.
//! A test checks the results against scoring every unit.

use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::sync::Arc;

use super::analyze::{Analyzer, StemCache, Word};
use super::fuzzy::{FuzzyIndex, best_candidate};
use super::segment::{Deletes, NewEntry, Postings, Segment};
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
    /// Stems the writer has computed, shared by the snapshots it publishes: an edited
    /// entry mostly reuses words the index has seen.
    writer_stems: Arc<std::sync::Mutex<StemCache>>,
}

/// A prefix shorter than this is too ambiguous to stand for a word.
const MIN_PREFIX_CHARS: usize = 5;

/// Margin kept when pruning on score bounds, well above `f32` rounding of a dot product.
const PRUNING_SLACK: f32 = 1e-5;

/// The first walk over a segment guesses this fraction of the best score possible.
const GUESS_FRACTION: f32 = 0.8;

/// Allowance for a stored unit vector whose squared norm rounds a little above 1.
const NORM_SLACK: f32 = 1e-4;

/// A segment is merged into its predecessor once it holds at least this fraction of it.
const MERGE_RATIO: usize = 4;

/// The first position in `units[from..to]` (sorted) holding at least `u`, or `to`:
/// galloping, since the next unit looked up is usually near.
fn seek(units: &[u32], from: usize, to: usize, u: u32) -> usize {
    let mut lo = from;
    let mut step = 1;
    while lo + step < to && units[lo + step] < u {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step + 1).min(to);
    lo + units[lo..hi].partition_point(|&x| x < u)
}

fn idf(n_entries: usize, df: u32) -> f32 {
    ((1.0 + n_entries as f32) / (1.0 + df as f32)).ln() + 1.0
}

/// Reusable per-thread buffers: the query as a dense vector over a segment's terms, and
/// the units already scored.
#[derive(Default)]
struct Scratch {
    dense: Vec<f32>,
    /// For each query term `i` (and one past the last), over terms `i..`: the sum of
    /// their bounds, and the norm of their query weights.
    after: Vec<(f32, f32)>,
    /// Per query term, where the walk is in its postings.
    cursors: Vec<Cursor>,
    /// The query's terms in the segment: `(local term, query weight, upper bound)`.
    local: Vec<(u32, f32, f32)>,
}

/// Entries analysed together in a build before their analyses are added to the segment.
const BUILD_BATCH: usize = 4096;

thread_local! {
    /// Stems computed by this thread for builds: corpora share most of their words.
    static BUILD_STEMS: RefCell<StemCache> = RefCell::new(StemCache::default());
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A position in one term's postings.
struct Cursor {
    /// The next posting.
    pos: usize,
    /// The end of the term's postings.
    end: usize,
    /// The term's query weight.
    weight: f32,
    /// The unit at `pos`, or [`Cursor::DONE`] past the end: kept here so the walk finds
    /// the next unit without reading the postings again.
    unit: u32,
}

impl Cursor {
    const DONE: u32 = u32::MAX;

    fn new(units: &[u32], pos: usize, end: usize, weight: f32) -> Cursor {
        let mut c = Cursor { pos, end, weight, unit: Cursor::DONE };
        c.advance(units, pos);
        c
    }

    fn advance(&mut self, units: &[u32], pos: usize) {
        self.pos = pos;
        self.unit = if pos < self.end { units[pos] } else { Cursor::DONE };
    }
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
        // Analysed in parallel batches, each added to the segment while the next is analysed.
        let live = kept.len();
        let batches: Vec<&[(usize, &FaqEntry)]> = kept.chunks(BUILD_BATCH).collect();
        let segment = Segment::build_pipelined(&batches, |batch| {
            batch
                .par_iter()
                .map(|&(i, e)| {
                    let analysis = BUILD_STEMS
                        .with(|stems| analyzer.analyze_entry(e, index_answer, &mut stems.borrow_mut()));
                    NewEntry { entry: Arc::new(e.clone()), seq: i as u64, analysis }
                })
                .collect()
        });
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
            writer_stems: Arc::default(),
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
        let mut best: Option<(u64, &Arc<FaqEntry>)> = None;
        for (s, seg) in self.segments.iter().enumerate() {
            let Some(locals) = seg.topics.get(e.topic_key()).map(|by_lang| &by_lang[lang as usize]) else {
                continue;
            };
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
                if names.get_or_insert_with(|| text::proper_names(text)).iter().any(|n| *n == w.surface) {
                    continue;
                }
                if let Some(fixed) = self.correct(&w.surface) {
                    corrected.push((w.surface.to_string(), fixed.clone()));
                    *w = self.analyzer.word(&fixed);
                    factor[i] = params.fuzzy_weight;
                } else if let Some(stem) = self.known_prefix(&w.surface) {
                    // A derived form the stemmer did not reduce: `teletravailler` → `teletravail`.
                    corrected.push((w.surface.to_string(), stem.clone()));
                    w.stems = [stem.as_str().into(), stem.as_str().into()];
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
                unknown.push(w.surface.to_string());
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
        let local: Vec<(u32, f32)> =
            q.terms.iter().filter_map(|(t, w)| seg.terms.get(t.as_str()).map(|&id| (id, *w))).collect();
        if local.is_empty() {
            return;
        }
        if scratch.dense.len() < seg.term_names.len() {
            scratch.dense.resize(seg.term_names.len(), 0.0);
        }
        for &(t, w) in &local {
            scratch.dense[t as usize] = w;
        }
        // The heavier class first: its best score is the bar the other must beat.
        let mut classes = [(Unit::Question(0), 1.0), (Unit::Answer, self.params.answer_weight)];
        if classes[1].1 > classes[0].1 {
            classes.swap(0, 1);
        }
        for (kind, lift) in classes {
            if lift > 0.0 {
                self.score_class(s, &local, &seg.postings[kind.class()], lift, top, scratch);
            }
        }
        for &(t, _) in &local {
            scratch.dense[t as usize] = 0.0;
        }
    }

    /// Offers `top` the units of one class, whose cosines are multiplied by `lift`.
    fn score_class(
        &self,
        s: usize,
        terms: &[(u32, f32)],
        postings: &Postings,
        lift: f32,
        top: &mut TopK,
        scratch: &mut Scratch,
    ) {
        let len = |t: u32| postings.matrix.indptr().outer_inds_sz(t as usize).len();
        // (local term, query weight, upper bound), rarest first: the short postings of
        // rare terms lead, and the long ones of common terms drop out of the walk as soon
        // as the bar allows.
        scratch.local.clear();
        scratch.local.extend(
            terms
                .iter()
                .filter(|&&(t, _)| len(t) > 0)
                .map(|&(t, w)| (t, w, w * postings.max_weight[t as usize])),
        );
        scratch.local.sort_by_key(|&(t, _, _)| len(t));
        // after[i], over terms i..: the sum of their bounds, and the norm of their query
        // weights. The most a unit can take from them is the smaller of the two, since a
        // unit vector's weights on them have a norm of at most 1 (Cauchy–Schwarz).
        scratch.after.clear();
        let (mut bound_sum, mut sq_sum) = (0.0f32, 0.0f32);
        scratch.after.push((0.0, 0.0));
        for &(_, w, b) in scratch.local.iter().rev() {
            bound_sum += b;
            sq_sum += w * w;
            scratch.after.push((bound_sum, sq_sum.sqrt()));
        }
        scratch.after.reverse();
        // A first walk with a guessed bar finds the best units while pruning hard; when it
        // fills the results above the guess, no unit it skipped could have entered them.
        // Otherwise a second walk, with the true bar, finishes the job.
        let (reach_bound, reach_norm) = scratch.after[0];
        let guess = GUESS_FRACTION * lift * reach_bound.min(reach_norm);
        if guess > top.bar() {
            self.walk(s, postings, lift, top, scratch, guess);
            if top.bar() >= guess {
                return;
            }
        }
        self.walk(s, postings, lift, top, scratch, 0.0);
    }

    /// Document-at-a-time over the postings of the essential terms: the rarest ones, as
    /// many as it takes for a unit holding none of them to fall short of the bar (the
    /// k-th best score, the floor, or `min_bar` if higher). A unit met there has its
    /// weights on them summed from the postings; the other terms are then looked up one
    /// by one while the unit can still reach the bar, and only a unit that does has its
    /// row read and scored in full.
    fn walk(
        &self,
        s: usize,
        postings: &Postings,
        lift: f32,
        top: &mut TopK,
        scratch: &mut Scratch,
        min_bar: f32,
    ) {
        let seg = &self.segments[s];
        let Scratch { dense, after, cursors, local } = scratch;
        let reach = |i: usize| after[i].0.min(after[i].1);
        let units = postings.matrix.indices();
        let weights = postings.matrix.data();
        cursors.clear();
        cursors.extend(local.iter().map(|&(t, w, _)| {
            let range = postings.matrix.indptr().outer_inds_sz(t as usize);
            Cursor::new(units, range.start, range.end, w)
        }));
        let mut bar = top.bar().max(min_bar);
        let mut essential = local.len();
        loop {
            while essential > 0 && lift * reach(essential - 1) + PRUNING_SLACK < bar {
                essential -= 1;
            }
            let (lead, rest) = cursors.split_at_mut(essential);
            let u = lead.iter().map(|c| c.unit).min().unwrap_or(Cursor::DONE);
            if u == Cursor::DONE {
                break;
            }
            let (mut partial, mut sq) = (0.0f32, 0.0f32);
            for c in lead.iter_mut() {
                if c.unit == u {
                    let dw = weights[c.pos];
                    partial += c.weight * dw;
                    sq += dw * dw;
                    c.advance(units, c.pos + 1);
                }
            }
            // What the other terms could add: by their bounds, and by the norm the unit
            // vector has left (`NORM_SLACK` covers a stored norm a hair above 1).
            let mut reachable = true;
            for (j, c) in rest.iter_mut().enumerate() {
                let (rest_bound, rest_norm) = after[essential + j];
                let left = (1.0 + NORM_SLACK - sq).max(0.0).sqrt();
                if lift * (partial + rest_bound.min(left * rest_norm)) + PRUNING_SLACK < bar {
                    reachable = false;
                    break;
                }
                if c.unit < u {
                    c.advance(units, seek(units, c.pos, c.end, u));
                }
                if c.unit == u {
                    let dw = weights[c.pos];
                    partial += c.weight * dw;
                    sq += dw * dw;
                }
            }
            if !reachable || lift * partial + PRUNING_SLACK < bar {
                continue;
            }
            let e = seg.unit_entry[u as usize];
            if self.is_deleted(s, e) {
                continue;
            }
            let Some(row) = seg.rows.outer_view(u as usize) else { continue };
            let kind = seg.unit_kinds[u as usize];
            let score = simd::dot(row.indices(), row.data(), dense) * self.unit_weight(kind);
            top.offer(score, seg.seqs[e as usize], s, e, kind);
            bar = top.bar().max(min_bar);
        }
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
        let analysis = {
            let mut stems = self.writer_stems.lock().unwrap_or_else(|p| p.into_inner());
            self.analyzer.analyze_entry(&entry, self.params.answer_weight > 0.0, &mut stems)
        };
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
        let words = self.analyzer.entry_words(&entry, self.params.answer_weight > 0.0);
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

    /// Every live unit scored, nothing pruned: what [`Index::top_k`] must return.
    fn top_k_exhaustive(index: &Index, q: &QueryVector, k: usize, floor: f32) -> Vec<(String, f32, Unit)> {
        let mut best: Vec<(f32, u64, String, Unit)> = Vec::new();
        for (s, seg) in index.segments.iter().enumerate() {
            let mut dense = vec![0.0f32; seg.term_names.len()];
            for (t, w) in &q.terms {
                if let Some(&id) = seg.terms.get(t.as_str()) {
                    dense[id as usize] = *w;
                }
            }
            for e in 0..seg.len() as u32 {
                if index.is_deleted(s, e) {
                    continue;
                }
                let mut entry_best: Option<(f32, Unit)> = None;
                for u in seg.units_of(e) {
                    let row = seg.rows.outer_view(u as usize).unwrap();
                    let kind = seg.unit_kinds[u as usize];
                    let score = simd::dot(row.indices(), row.data(), &dense) * index.unit_weight(kind);
                    if entry_best.is_none_or(|(b, bu)| score > b || (score == b && kind < bu)) {
                        entry_best = Some((score, kind));
                    }
                }
                if let Some((score, unit)) = entry_best.filter(|&(sc, _)| sc >= floor && sc > 0.0) {
                    let entry = &seg.entries[e as usize];
                    best.push((score, seg.seqs[e as usize], entry.id.clone(), unit));
                }
            }
        }
        best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        best.into_iter().take(k).map(|(score, _, id, unit)| (id, score.min(1.0), unit)).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Pruning never changes the results: the walks return exactly what scoring every
        /// unit does, over several segments with deletions, for any k, floor and weights.
        #[test]
        fn pruned_top_k_equals_exhaustive_scoring(
            seed in 0u64..1_000,
            size in 20usize..300,
            changes in 0usize..15,
            k in 1usize..6,
            floor in proptest::sample::select(vec![0.0f32, 0.1, 0.25, 0.5]),
            answer_weight in proptest::sample::select(vec![0.0f32, 0.5, 0.75, 1.0, 1.5]),
        ) {
            use crate::synthetic;
            let corpus = synthetic::corpus(size, seed);
            let params = EngineParams { answer_weight, ..EngineParams::default() };
            let (initial, later) = corpus.split_at(size.saturating_sub(changes));
            let engine = Engine::with_params(initial, &Lexicon::default(), params);
            for (i, entry) in later.iter().enumerate() {
                engine.upsert(entry.clone()).unwrap();
                if i % 3 == 0 {
                    engine.remove(&initial[(i * 7) % initial.len()].id);
                }
            }
            let index = engine.snapshot();
            let mut queries: Vec<String> = synthetic::queries(&corpus, 12, seed).into_iter().map(|(q, _)| q).collect();
            queries.extend(corpus.iter().take(4).map(|e| e.answer.clone()));
            for query in &queries {
                let q = index.query_vector(query, &params);
                let got: Vec<(String, f32, Unit)> =
                    index.top_k(&q, k, floor).into_iter().map(|m| (m.entry.id.clone(), m.score, m.unit)).collect();
                let want = top_k_exhaustive(&index, &q, k, floor);
                proptest::prop_assert_eq!(got, want, "{}", query);
            }
        }
    }
}
