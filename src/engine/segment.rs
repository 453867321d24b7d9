//! An immutable slice of the index: some entries, their units' vectors and postings.
//!
//! The index is a list of segments (see [`super::index`]): a fresh build makes one, every
//! incremental change adds a small one, and small segments are merged into larger ones
//! as they accumulate, like a log-structured merge tree. A segment never changes once
//! built; deletions are recorded beside it in a [`Deletes`] overlay, applied at query
//! time and dropped when the segment is next merged.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use sprs::CsMatI;

use super::analyze::{EntryAnalysis, Term};
use super::fuzzy::FuzzyIndex;
use super::{FaqEntry, Unit};

/// Sparse matrix with 32-bit indices: half the memory of `usize` ones.
pub type Matrix = CsMatI<f32, u32>;

/// An entry to index, already analysed.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The entry.
    pub entry: Arc<FaqEntry>,
    /// Its insertion order: ties rank the earlier entry first.
    pub seq: u64,
    /// Its units and words.
    pub analysis: EntryAnalysis,
}

/// An immutable group of indexed entries.
#[derive(Debug)]
pub struct Segment {
    pub(crate) entries: Vec<Arc<FaqEntry>>,
    pub(crate) seqs: Vec<u64>,
    pub(crate) ids: HashMap<String, u32>,
    /// Entries by topic, then language (`Lang as usize`).
    pub(crate) topics: HashMap<Box<str>, [Vec<u32>; 2]>,
    pub(crate) terms: HashMap<Box<str>, u32>,
    pub(crate) term_names: Vec<Box<str>>,
    /// Entries of this segment (deleted ones included) holding each term.
    pub(crate) df: Vec<u32>,
    /// Entry `e`'s units are rows `entry_units[e]..entry_units[e + 1]`.
    pub(crate) entry_units: Vec<u32>,
    pub(crate) unit_kinds: Vec<Unit>,
    pub(crate) unit_entry: Vec<u32>,
    /// Units × terms, by row: each unit's L2-normalised log-tf vector.
    pub(crate) rows: Matrix,
    /// Each term's postings, the questions' apart from the answers' (indexed by
    /// [`Unit::class`]): the two are scored with different weights, so a walk over the
    /// questions can raise the bar high enough to skip the answers altogether.
    pub(crate) postings: [Postings; 2],
    /// Content words with the number of entries holding them.
    pub(crate) words: FuzzyIndex,
}

/// The postings of one class of units: the unit matrix's columns, restricted to them.
#[derive(Debug)]
pub struct Postings {
    /// Units × terms, by column: for each term, the units holding it and its weight there,
    /// in unit order.
    pub(crate) matrix: Matrix,
    /// The largest weight in each term's postings, for pruning.
    pub(crate) max_weight: Vec<f32>,
}

impl Postings {
    /// The columns of `rows` over the units of `class`, by counting sort: units stay in
    /// order within each term.
    fn of_class(rows: &Matrix, kinds: &[Unit], class: usize) -> Postings {
        let (n_units, n_terms) = rows.shape();
        let mut indptr = vec![0u32; n_terms + 1];
        for (u, row) in rows.outer_iterator().enumerate() {
            if kinds[u].class() == class {
                for &t in row.indices() {
                    indptr[t as usize + 1] += 1;
                }
            }
        }
        for t in 0..n_terms {
            indptr[t + 1] += indptr[t];
        }
        let nnz = indptr[n_terms] as usize;
        let mut next: Vec<u32> = indptr[..n_terms].to_vec();
        let (mut indices, mut data) = (vec![0u32; nnz], vec![0f32; nnz]);
        let mut max_weight = vec![0f32; n_terms];
        for (u, row) in rows.outer_iterator().enumerate() {
            if kinds[u].class() != class {
                continue;
            }
            for (&t, &w) in row.indices().iter().zip(row.data()) {
                let at = next[t as usize] as usize;
                indices[at] = u as u32;
                data[at] = w;
                next[t as usize] += 1;
                max_weight[t as usize] = max_weight[t as usize].max(w);
            }
        }
        Postings { matrix: Matrix::new_csc((n_units, n_terms), indptr, indices, data), max_weight }
    }
}

/// Entries deleted from a segment since it was built, and what they took with them.
#[derive(Debug, Clone, Default)]
pub struct Deletes {
    pub(crate) entries: HashSet<u32>,
    /// Per local term: deleted entries holding it.
    pub(crate) df: HashMap<u32, u32>,
    /// Per word: deleted entries holding it.
    pub(crate) words: HashMap<Box<str>, u32>,
}

/// Rows being assembled into a segment.
#[derive(Default)]
struct Builder {
    entries: Vec<Arc<FaqEntry>>,
    seqs: Vec<u64>,
    terms: HashMap<Box<str>, u32>,
    term_names: Vec<Box<str>>,
    df: Vec<u32>,
    entry_units: Vec<u32>,
    unit_kinds: Vec<Unit>,
    unit_entry: Vec<u32>,
    indptr: Vec<u32>,
    indices: Vec<u32>,
    data: Vec<f32>,
    words: HashMap<Box<str>, u32>,
}

impl Builder {
    fn new() -> Self {
        Builder { entry_units: vec![0], indptr: vec![0], ..Builder::default() }
    }

    fn term_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.terms.get(name) {
            return id;
        }
        let id = self.term_names.len() as u32;
        self.terms.insert(name.into(), id);
        self.term_names.push(name.into());
        self.df.push(0);
        id
    }

    fn push_new(&mut self, n: NewEntry) {
        for w in &n.analysis.words {
            if let Some(count) = self.words.get_mut(w.as_str()) {
                *count += 1;
            } else {
                self.words.insert(w.as_str().into(), 1);
            }
        }
        let units = n.analysis.units.iter().map(|(kind, terms)| (*kind, lnc(terms)));
        self.push_entry(n.entry, n.seq, units);
    }

    /// Adds one entry whose units are given as `(kind, [(term, weight)])`, weights final.
    fn push_entry<'a>(
        &mut self,
        entry: Arc<FaqEntry>,
        seq: u64,
        units: impl IntoIterator<Item = (Unit, Vec<(&'a str, f32)>)>,
    ) {
        let e = self.entries.len() as u32;
        let mut seen: Vec<u32> = Vec::new();
        for (kind, terms) in units {
            let mut row: Vec<(u32, f32)> = terms.into_iter().map(|(t, w)| (self.term_id(t), w)).collect();
            row.sort_unstable_by_key(|&(t, _)| t);
            for &(t, w) in &row {
                self.indices.push(t);
                self.data.push(w);
                seen.push(t);
            }
            self.indptr.push(self.indices.len() as u32);
            self.unit_kinds.push(kind);
            self.unit_entry.push(e);
        }
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            self.df[t as usize] += 1;
        }
        self.entry_units.push(self.unit_kinds.len() as u32);
        self.entries.push(entry);
        self.seqs.push(seq);
    }

    /// Renumbers terms in name order, so that a unit's terms are summed in the same order
    /// whatever segment holds it: scores are then bit-identical to a fresh build's.
    fn canonical_term_order(&mut self) {
        let n = self.term_names.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by(|&a, &b| self.term_names[a as usize].cmp(&self.term_names[b as usize]));
        let mut new_id = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        self.term_names = order.iter().map(|&old| self.term_names[old as usize].clone()).collect();
        self.df = order.iter().map(|&old| self.df[old as usize]).collect();
        for id in self.terms.values_mut() {
            *id = new_id[*id as usize];
        }
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        for r in 0..self.indptr.len() - 1 {
            let (a, b) = (self.indptr[r] as usize, self.indptr[r + 1] as usize);
            pairs.clear();
            pairs.extend(
                self.indices[a..b].iter().zip(&self.data[a..b]).map(|(&t, &w)| (new_id[t as usize], w)),
            );
            pairs.sort_unstable_by_key(|&(t, _)| t);
            for (i, (t, w)) in pairs.iter().enumerate() {
                self.indices[a + i] = *t;
                self.data[a + i] = *w;
            }
        }
    }

    fn finish(mut self) -> Segment {
        self.canonical_term_order();
        let shape = (self.unit_kinds.len(), self.term_names.len());
        let rows = Matrix::new(shape, self.indptr, self.indices, self.data);
        let postings = [0, 1].map(|class| Postings::of_class(&rows, &self.unit_kinds, class));
        let mut ids = HashMap::with_capacity_and_hasher(self.entries.len(), Default::default());
        let mut topics: HashMap<Box<str>, [Vec<u32>; 2]> = HashMap::default();
        for (i, e) in self.entries.iter().enumerate() {
            ids.insert(e.id.clone(), i as u32);
            topics.entry(e.topic_key().into()).or_default()[e.lang as usize].push(i as u32);
        }
        let mut words: Vec<(&str, u32)> = self.words.iter().map(|(w, &c)| (&**w, c)).collect();
        words.sort_unstable();
        Segment {
            words: FuzzyIndex::from_counts(words),
            entries: self.entries,
            seqs: self.seqs,
            ids,
            topics,
            terms: self.terms,
            term_names: self.term_names,
            df: self.df,
            entry_units: self.entry_units,
            unit_kinds: self.unit_kinds,
            unit_entry: self.unit_entry,
            rows,
            postings,
        }
    }
}

/// `1 + ln tf` per term, L2-normalised: the `lnc` unit vector.
fn lnc(terms: &[(Term, u32)]) -> Vec<(&str, f32)> {
    let weights: Vec<f32> = terms.iter().map(|&(_, tf)| 1.0 + (tf as f32).ln()).collect();
    let norm = weights.iter().map(|w| w * w).sum::<f32>().sqrt();
    terms.iter().zip(weights).filter(|_| norm > 0.0).map(|((t, _), w)| (t.as_str(), w / norm)).collect()
}

impl Segment {
    /// A segment holding `entries`, in the order given.
    pub fn build(entries: impl IntoIterator<Item = NewEntry>) -> Segment {
        let mut b = Builder::new();
        for n in entries {
            b.push_new(n);
        }
        b.finish()
    }

    /// A segment built from batches of entries, in order, each made by `make` while the
    /// previous one is added: analysis on the other cores overlaps the single-threaded
    /// assembly, and a large build never holds every entry's analysis at once.
    pub fn build_pipelined<B: Sync>(batches: &[B], make: impl Fn(&B) -> Vec<NewEntry> + Sync) -> Segment {
        let mut b = Builder::new();
        let mut ready: Vec<NewEntry> = Vec::new();
        for batch in batches {
            let (_, next) = rayon::join(|| ready.drain(..).for_each(|n| b.push_new(n)), || make(batch));
            ready = next;
        }
        ready.into_iter().for_each(|n| b.push_new(n));
        b.finish()
    }

    /// One segment with the live entries of `parts`, in order: deletions are purged.
    pub fn merge(parts: &[(&Segment, &Deletes)]) -> Segment {
        let mut b = Builder::new();
        for (seg, del) in parts {
            for (e, entry) in seg.entries.iter().enumerate() {
                if del.entries.contains(&(e as u32)) {
                    continue;
                }
                let units = seg.units_of(e as u32).map(|u| {
                    let row = seg.rows.outer_view(u as usize);
                    let terms: Vec<(&str, f32)> = row
                        .map(|r| r.iter().map(|(t, &w)| (&*seg.term_names[t], w)).collect())
                        .unwrap_or_default();
                    (seg.unit_kinds[u as usize], terms)
                });
                b.push_entry(entry.clone(), seg.seqs[e], units);
            }
            for (word, count) in seg.words.iter() {
                let live = count.saturating_sub(del.words.get(word).copied().unwrap_or(0));
                if live > 0 {
                    *b.words.entry(word.into()).or_default() += live;
                }
            }
        }
        b.finish()
    }

    /// Number of entries, deleted ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the segment holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The rows of entry `e`'s units.
    pub(crate) fn units_of(&self, e: u32) -> std::ops::Range<u32> {
        self.entry_units[e as usize]..self.entry_units[e as usize + 1]
    }

    /// The distinct local terms of entry `e`.
    pub(crate) fn entry_terms(&self, e: u32) -> Vec<u32> {
        let mut terms: Vec<u32> = self
            .units_of(e)
            .filter_map(|u| self.rows.outer_view(u as usize))
            .flat_map(|row| row.indices().to_vec())
            .collect();
        terms.sort_unstable();
        terms.dedup();
        terms
    }
}

impl Deletes {
    /// These deletions plus entry `e` of `seg`, whose content words are `words`.
    pub(crate) fn with(&self, seg: &Segment, e: u32, words: &[Term]) -> Deletes {
        let mut next = self.clone();
        if next.entries.insert(e) {
            for t in seg.entry_terms(e) {
                *next.df.entry(t).or_default() += 1;
            }
            for w in words {
                *next.words.entry(w.as_str().into()).or_default() += 1;
            }
        }
        next
    }
}
