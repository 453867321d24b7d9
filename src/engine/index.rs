//! The TF-IDF index and cosine scoring.
//!
//! The SMART `lnc.ltc` TF-IDF scheme: units weigh their terms by log term frequency, the
//! query by log term frequency times idf, both L2-normalised; the score is their cosine.
//! With `N` entries and `df(t)` the number of entries whose text holds term `t`:
//!
//! ```text
//! idf(t)      = ln((1 + N) / (1 + df(t))) + 1
//! unit(t)     = 1 + ln tf(t)                        then L2-normalised per unit
//! query(t)    = tf(t) · idf(t)                      normalised together with unknown words
//! score(e, q) = max over units u of e:  cos(q, u) · (answer_weight if u is the answer)
//! ```
//!
//! Idf enters once, on the query side: a unit's vector depends on its own text only, so
//! adding or removing entries changes no stored weight — only `N` and `df`, read at query
//! time. (Measured on the quality set, this scores as well as weighting both sides.)
//! Document frequency counts entries, not units, so an entry asked five ways does not make
//! its own words look common. A query word the index has never seen (and could not
//! correct) still counts in the query's norm with the highest idf: "how do I cook pasta on
//! my laptop" must not score like "laptop".

use sprs::{CsMat, TriMat};
use std::collections::HashMap;

use super::analyze::{Analyzer, Word};
use super::fuzzy::FuzzyIndex;
use super::{EngineParams, FaqEntry, Lang, Lexicon};

/// Which text of an entry a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// The entry's `n`-th question.
    Question(usize),
    /// The entry's answer.
    Answer,
}

/// A scored entry.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    /// The entry to answer with.
    pub entry: &'a FaqEntry,
    /// The entry whose text matched: `entry` itself, or its twin in another language.
    pub matched: &'a FaqEntry,
    /// Cosine similarity of its best unit, in `[0, 1]`.
    pub score: f32,
    /// The unit that scored best.
    pub unit: Unit,
}

/// A query as the index sees it.
#[derive(Debug, Clone, Default)]
pub struct QueryVector {
    /// `(term id, weight)`, sorted by term id, L2-normalised with the unknown words.
    pub terms: Vec<(u32, f32)>,
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

/// The built index.
#[derive(Debug)]
pub struct Index {
    analyzer: Analyzer,
    entries: Vec<FaqEntry>,
    by_id: HashMap<String, usize>,
    /// Entry index by topic and language.
    twins: HashMap<(String, Lang), usize>,
    vocab: HashMap<String, u32>,
    terms: Vec<String>,
    idf: Vec<f32>,
    max_idf: f32,
    /// `(entry, unit)` for each row of `matrix`.
    units: Vec<(u32, Unit)>,
    /// Units × terms, compressed by column: each column is a term's postings.
    matrix: CsMat<f32>,
    /// Content words seen in the entries and the lexicon, for typo correction.
    fuzzy: FuzzyIndex,
    answer_weight: f32,
}

/// A prefix shorter than this is too ambiguous to stand for a word.
const MIN_PREFIX_CHARS: usize = 5;

fn idf(n_entries: usize, df: usize) -> f32 {
    ((1.0 + n_entries as f32) / (1.0 + df as f32)).ln() + 1.0
}

impl Index {
    /// Indexes `entries`. Later entries with an id already seen are ignored; the corpus
    /// loader rejects duplicates before this point.
    pub fn build(entries: &[FaqEntry], lexicon: &Lexicon, params: &EngineParams) -> Index {
        let analyzer = Analyzer::new(if params.concepts { lexicon } else { &EMPTY_LEXICON });
        let mut by_id = HashMap::new();
        let mut kept = Vec::with_capacity(entries.len());
        for e in entries {
            if !by_id.contains_key(&e.id) {
                by_id.insert(e.id.clone(), kept.len());
                kept.push(e.clone());
            }
        }

        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut terms: Vec<String> = Vec::new();
        let mut df: Vec<u32> = Vec::new();
        let mut fuzzy = FuzzyIndex::new();
        let mut units = Vec::new();
        let mut rows: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut seen_in_entry: Vec<u32> = Vec::new();

        for (e_ix, e) in kept.iter().enumerate() {
            let mut texts: Vec<(Unit, &str)> =
                e.questions.iter().enumerate().map(|(i, q)| (Unit::Question(i), q.as_str())).collect();
            if params.answer_weight > 0.0 {
                texts.push((Unit::Answer, e.answer.as_str()));
            }
            for (unit, text) in texts {
                let mut counts: HashMap<u32, u32> = HashMap::new();
                for term in analyzer.document_terms(text, e.lang) {
                    let id = *vocab.entry(term).or_insert_with_key(|t| {
                        terms.push(t.clone());
                        df.push(0);
                        seen_in_entry.push(u32::MAX);
                        (terms.len() - 1) as u32
                    });
                    *counts.entry(id).or_default() += 1;
                    if seen_in_entry[id as usize] != e_ix as u32 {
                        seen_in_entry[id as usize] = e_ix as u32;
                        df[id as usize] += 1;
                    }
                }
                for w in analyzer.words(text).into_iter().filter(|w| w.content) {
                    fuzzy.insert(&w.surface);
                }
                let mut row: Vec<(u32, u32)> = counts.into_iter().collect();
                row.sort_unstable();
                rows.push(row);
                units.push((e_ix as u32, unit));
            }
        }
        for concept in &lexicon.concepts {
            for phrase in concept.en.iter().chain(&concept.fr) {
                for w in analyzer.words(phrase).into_iter().filter(|w| w.content) {
                    fuzzy.insert(&w.surface);
                }
            }
        }

        let mut twins = HashMap::new();
        for (i, e) in kept.iter().enumerate() {
            twins.entry((e.topic_key().to_owned(), e.lang)).or_insert(i);
        }
        let n = kept.len();
        let idf_v: Vec<f32> = df.iter().map(|&d| idf(n, d as usize)).collect();
        let mut tri = TriMat::new((rows.len(), terms.len()));
        for (r, row) in rows.iter().enumerate() {
            let weights: Vec<f32> = row.iter().map(|&(_, tf)| 1.0 + (tf as f32).ln()).collect();
            let norm = weights.iter().map(|w| w * w).sum::<f32>().sqrt();
            if norm == 0.0 {
                continue;
            }
            for (&(t, _), w) in row.iter().zip(weights) {
                tri.add_triplet(r, t as usize, w / norm);
            }
        }

        Index {
            analyzer,
            entries: kept,
            by_id,
            twins,
            vocab,
            terms,
            idf: idf_v,
            max_idf: idf(n, 0),
            units,
            matrix: tri.to_csc(),
            fuzzy,
            answer_weight: params.answer_weight,
        }
    }

    /// The analyzer in use.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The indexed entries, in order.
    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    /// The entry with this id.
    pub fn entry(&self, id: &str) -> Option<&FaqEntry> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    fn unit_weight(&self, unit: Unit) -> f32 {
        match unit {
            Unit::Question(_) => 1.0,
            Unit::Answer => self.answer_weight,
        }
    }

    /// The entry of `e`'s topic in `lang`, if there is one.
    pub fn twin(&self, e: &FaqEntry, lang: Lang) -> Option<&FaqEntry> {
        if e.lang == lang {
            return None;
        }
        self.twins.get(&(e.topic_key().to_owned(), lang)).map(|&i| &self.entries[i])
    }

    /// Number of distinct terms.
    pub fn vocabulary_len(&self) -> usize {
        self.terms.len()
    }

    fn known(&self, w: &Word) -> bool {
        w.stems.iter().any(|s| self.vocab.contains_key(s)) || self.fuzzy.contains(&w.surface)
    }

    /// The longest indexed term that is a prefix of `word` and keeps most of it.
    fn known_prefix(&self, word: &str) -> Option<&str> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        let min = MIN_PREFIX_CHARS.max((chars.len() * 2).div_ceil(3));
        (min..chars.len()).rev().find_map(|n| {
            let prefix = &word[..chars[n].0];
            self.vocab.get_key_value(prefix).map(|(k, _)| k.as_str())
        })
    }

    /// Analyses a query: stems both ways, typo correction, concepts, TF-IDF, norm.
    pub fn query_vector(&self, text: &str, params: &EngineParams) -> QueryVector {
        let mut words = self.analyzer.words(text);
        let lang = Analyzer::detect_language(&words, text);
        let mut factor = vec![1.0f32; words.len()];
        let mut corrected = Vec::new();
        if params.fuzzy {
            let names = super::text::proper_names(text);
            for (i, w) in words.iter_mut().enumerate() {
                if !w.content || self.known(w) || names.contains(&w.surface) {
                    continue;
                }
                if let Some((fixed, _)) = self.fuzzy.correct(&w.surface) {
                    corrected.push((w.surface.clone(), fixed.to_owned()));
                    *w = self.analyzer.word(fixed);
                    factor[i] = params.fuzzy_weight;
                } else if let Some(stem) = self.known_prefix(&w.surface) {
                    // A derived form the stemmer did not reduce: `teletravailler` → `teletravail`.
                    corrected.push((w.surface.clone(), stem.to_owned()));
                    w.stems = [stem.to_owned(), stem.to_owned()];
                    factor[i] = params.fuzzy_weight;
                }
            }
        }

        let mut tf: HashMap<u32, f32> = HashMap::new();
        let mut unknown = Vec::new();
        let mut unknown_sq = 0.0f32;
        for (w, f) in words.iter().zip(&factor).filter(|(w, _)| w.content) {
            let mut ids: Vec<u32> = w.stems.iter().filter_map(|s| self.vocab.get(s).copied()).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                unknown.push(w.surface.clone());
                unknown_sq += (self.max_idf * f * params.unknown_weight).powi(2);
                continue;
            }
            // A word whose two stems both exist counts once in all, not twice.
            let share = f / (ids.len() as f32).sqrt();
            for id in ids {
                *tf.entry(id).or_default() += share;
            }
        }
        if params.concepts {
            for c in self.analyzer.concepts(&words, &[0, 1]) {
                if let Some(&id) = self.vocab.get(&self.analyzer.concept_term(c)) {
                    *tf.entry(id).or_default() += params.concept_weight;
                }
            }
        }

        let mut terms: Vec<(u32, f32)> = tf.into_iter().map(|(t, f)| (t, f * self.idf[t as usize])).collect();
        terms.sort_unstable_by_key(|&(t, _)| t);
        let norm = (terms.iter().map(|(_, w)| w * w).sum::<f32>() + unknown_sq).sqrt();
        if norm > 0.0 {
            for (_, w) in &mut terms {
                *w /= norm;
            }
        }
        QueryVector { terms, unknown, corrected, lang }
    }

    /// Cosine score of every unit, answer units already weighted.
    fn unit_scores(&self, q: &QueryVector) -> Vec<f32> {
        let mut acc = vec![0.0f32; self.units.len()];
        for &(t, qw) in &q.terms {
            if let Some(col) = self.matrix.outer_view(t as usize) {
                for (u, &dw) in col.iter() {
                    acc[u] += qw * dw;
                }
            }
        }
        for (score, (_, unit)) in acc.iter_mut().zip(&self.units) {
            *score *= self.unit_weight(*unit);
        }
        acc
    }

    /// The `k` best entries, best first; ties by entry order.
    pub fn top_k(&self, q: &QueryVector, k: usize) -> Vec<Match<'_>> {
        if q.terms.is_empty() || k == 0 {
            return Vec::new();
        }
        let scores = self.unit_scores(q);
        let mut best: Vec<(f32, Unit)> = vec![(0.0, Unit::Answer); self.entries.len()];
        for (score, &(e, unit)) in scores.iter().zip(&self.units) {
            let slot = &mut best[e as usize];
            if *score > slot.0 {
                *slot = (*score, unit);
            }
        }
        let mut ranked: Vec<(usize, f32, Unit)> = best
            .into_iter()
            .enumerate()
            .filter(|(_, (s, _))| *s > 0.0)
            .map(|(e, (s, u))| (e, s, u))
            .collect();
        let by_score =
            |a: &(usize, f32, Unit), b: &(usize, f32, Unit)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if ranked.len() > k {
            ranked.select_nth_unstable_by(k - 1, by_score);
            ranked.truncate(k);
        }
        ranked.sort_unstable_by(by_score);
        ranked
            .into_iter()
            .map(|(e, score, unit)| {
                let entry = &self.entries[e];
                Match { entry, matched: entry, score: score.min(1.0), unit }
            })
            .collect()
    }

    /// The terms `q` shares with `m`'s unit, and their weights.
    pub fn explain(&self, q: &QueryVector, m: &Match<'_>) -> Explanation {
        let e = self.by_id.get(&m.matched.id).copied().unwrap_or(usize::MAX);
        let row = self.units.iter().position(|&(ue, u)| ue as usize == e && u == m.unit);
        let mut terms = Vec::new();
        if let Some(row) = row {
            for &(t, qw) in &q.terms {
                let Some(col) = self.matrix.outer_view(t as usize) else {
                    continue;
                };
                if let Some(&dw) = col.get(row) {
                    let c = qw * dw * self.unit_weight(m.unit);
                    terms.push((self.analyzer.describe_term(&self.terms[t as usize]), qw, dw, c));
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
}

static EMPTY_LEXICON: Lexicon = Lexicon { concepts: Vec::new() };

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
}
