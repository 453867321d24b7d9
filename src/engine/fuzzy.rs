//! Typo tolerance: maps a word the index has never seen to the closest word it has.
//!
//! A symmetric-delete index (the SymSpell idea): every vocabulary word is stored under each
//! of its variants with up to [`MAX_EDITS`] letters deleted; a query word's own deletions
//! then find every candidate within that many edits without scanning the vocabulary.
//! Candidates are confirmed with the optimal-string-alignment distance (insertions,
//! deletions, substitutions and adjacent transpositions — the typos thumbs make).
//! The index is immutable once built: a flat sorted array of `(variant hash, word)`, so
//! it costs 16 bytes a variant and no allocation per key.

use rustc_hash::FxHashMap as HashMap;

/// The most edits a correction may need. Two edits were measured to fix no more of the
/// quality set's typos than one, at 3.6× the index size.
pub const MAX_EDITS: usize = 1;

/// Only this many leading characters are indexed: it bounds the index's size, and typos
/// further in are still confirmed by the full distance.
const PREFIX_CHARS: usize = 7;

/// Words shorter than this are never corrected: too many short words are one edit apart
/// (`mars` is not a typo of `mais`).
const MIN_WORD_CHARS: usize = 5;

/// How many edits a word of `chars` characters may be away from its correction.
pub fn allowed_edits(chars: usize) -> usize {
    if chars < MIN_WORD_CHARS { 0 } else { MAX_EDITS }
}

/// A vocabulary of words with their counts, indexed by their deletions.
#[derive(Debug, Default, Clone)]
pub struct FuzzyIndex {
    words: Vec<(Box<str>, u32)>,
    ids: HashMap<Box<str>, u32>,
    /// `(hash of a deletion variant, word id)`, sorted.
    deletes: Vec<(u64, u32)>,
}

impl FuzzyIndex {
    /// Indexes `words` with their counts; a word given twice has its counts added.
    pub fn from_counts<'a>(words: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut ix = FuzzyIndex::default();
        for (word, count) in words {
            match ix.ids.get(word) {
                Some(&id) => ix.words[id as usize].1 += count,
                None => {
                    ix.ids.insert(word.into(), ix.words.len() as u32);
                    ix.words.push((word.into(), count));
                }
            }
        }
        let mut variants = Vec::new();
        for (id, (word, _)) in ix.words.iter().enumerate() {
            let prefix: String = word.chars().take(PREFIX_CHARS).collect();
            deletions(&prefix, MAX_EDITS, &mut variants);
            ix.deletes.extend(variants.iter().map(|v| (hash(v), id as u32)));
        }
        ix.deletes.sort_unstable();
        ix.deletes.dedup();
        ix
    }

    /// How many times `word` was counted (0 when unknown).
    pub fn count(&self, word: &str) -> u32 {
        self.ids.get(word).map_or(0, |&id| self.words[id as usize].1)
    }

    /// Every word with its count.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.words.iter().map(|(w, c)| (&**w, *c))
    }

    /// Number of distinct words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Number of indexed deletion variants.
    pub fn variants(&self) -> usize {
        self.deletes.len()
    }

    /// True when there is no word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Every known word within `word`'s allowed edits that starts with the same letter
    /// (thumbs rarely miss a word's first letter: `tatin` is not a typo of `matin`),
    /// with its distance. `word` itself is not a candidate.
    pub fn candidates(&self, word: &str) -> Vec<(&str, usize)> {
        let chars = word.chars().count();
        let max = allowed_edits(chars);
        let mut out: Vec<(&str, usize)> = Vec::new();
        if max == 0 || self.deletes.is_empty() {
            return out;
        }
        let first = word.chars().next();
        let prefix: String = word.chars().take(PREFIX_CHARS).collect();
        let mut variants = Vec::new();
        deletions(&prefix, max, &mut variants);
        for v in &variants {
            let h = hash(v);
            let start = self.deletes.partition_point(|&(k, _)| k < h);
            for &(_, id) in self.deletes[start..].iter().take_while(|&&(k, _)| k == h) {
                let candidate = &*self.words[id as usize].0;
                if candidate == word
                    || candidate.chars().next() != first
                    || candidate.chars().count().abs_diff(chars) > max
                    || out.iter().any(|(w, _)| *w == candidate)
                {
                    continue;
                }
                if let Some(d) = osa_distance(word, candidate, max) {
                    out.push((candidate, d));
                }
            }
        }
        out
    }

    /// The closest word to `word` within its allowed edits, with the edit count. Ties go
    /// to the more frequent word, then the alphabetically first, so the answer never
    /// depends on insertion order. `None` for a known word.
    pub fn correct(&self, word: &str) -> Option<(&str, usize)> {
        if self.count(word) > 0 {
            return None;
        }
        best_candidate(self.candidates(word).into_iter().map(|(w, d)| (w, d, self.count(w))))
    }
}

/// The best of `(word, distance, count)` candidates: fewest edits, then most frequent,
/// then alphabetical. Candidates with a zero count are skipped.
pub fn best_candidate<'a>(
    candidates: impl IntoIterator<Item = (&'a str, usize, u32)>,
) -> Option<(&'a str, usize)> {
    candidates
        .into_iter()
        .filter(|&(_, _, count)| count > 0)
        .min_by(|a, b| (a.1, std::cmp::Reverse(a.2), a.0).cmp(&(b.1, std::cmp::Reverse(b.2), b.0)))
        .map(|(w, d, _)| (w, d))
}

/// FNV-1a: a fast, stable hash for deletion variants; collisions only cost a
/// distance check.
fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// `word` and every string obtained by deleting up to `max` of its characters, into `out`.
fn deletions(word: &str, max: usize, out: &mut Vec<String>) {
    out.clear();
    out.push(word.to_owned());
    let mut frontier = vec![word.chars().collect::<Vec<char>>()];
    for _ in 0..max {
        let mut next = Vec::new();
        for chars in &frontier {
            if chars.len() <= 1 {
                continue;
            }
            for i in 0..chars.len() {
                let mut v = chars.clone();
                v.remove(i);
                next.push(v);
            }
        }
        next.sort_unstable();
        next.dedup();
        out.extend(next.iter().map(|v| v.iter().collect::<String>()));
        frontier = next;
    }
    out.sort_unstable();
    out.dedup();
}

/// Optimal-string-alignment distance between `a` and `b`, or `None` when above `max`.
pub fn osa_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * w] = i;
        let mut row_min = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
    }
    let dist = d[a.len() * w + b.len()];
    (dist <= max).then_some(dist)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(words: &[&str]) -> FuzzyIndex {
        FuzzyIndex::from_counts(words.iter().map(|w| (*w, 1)))
    }

    #[test]
    fn distance_counts_transpositions_as_one_edit() {
        assert_eq!(osa_distance("travial", "travail", 2), Some(1));
        assert_eq!(osa_distance("pasword", "password", 2), Some(1));
        assert_eq!(osa_distance("kitten", "sitting", 2), None);
        assert_eq!(osa_distance("kitten", "sitting", 3), Some(3));
        assert_eq!(osa_distance("", "ab", 2), Some(2));
    }

    #[test]
    fn typos_are_corrected_to_the_closest_word() {
        let ix = index(&["password", "payslip", "attestation", "travail", "conge"]);
        assert_eq!(ix.correct("pasword"), Some(("password", 1)));
        assert_eq!(ix.correct("paysilp"), Some(("payslip", 1)));
        assert_eq!(ix.correct("attestaion"), Some(("attestation", 1)));
        assert_eq!(ix.correct("atestaton"), None, "two edits away");
        assert_eq!(ix.correct("travial"), Some(("travail", 1)));
    }

    #[test]
    fn short_and_far_words_are_left_alone() {
        let ix = index(&["password", "leave", "pay"]);
        assert_eq!(ix.correct("pat"), None);
        assert_eq!(ix.correct("weather"), None);
        assert_eq!(ix.correct("bassword"), None, "the first letter is kept");
        assert_eq!(ix.correct("password"), None);
    }

    #[test]
    fn ties_go_to_the_more_frequent_word() {
        let ix = index(&["leave", "leaves", "leaves", "leaver"]);
        assert_eq!(ix.count("leaves"), 2);
        assert_eq!(ix.correct("leavez"), Some(("leaves", 1)));
    }

    #[test]
    fn corrections_agree_with_a_brute_force_scan() {
        let vocab = ["formation", "information", "salaire", "salary", "badge", "bagde", "remote", "remotely"];
        let ix = index(&vocab);
        for q in ["formaton", "infromation", "salair", "slary", "badeg", "remoet", "remotley", "xyzzyx"] {
            let max = allowed_edits(q.chars().count());
            let brute = vocab
                .iter()
                .filter(|w| w.chars().next() == q.chars().next())
                .filter_map(|w| osa_distance(q, w, max).map(|d| (d, *w)))
                .min();
            assert_eq!(ix.correct(q).map(|(w, d)| (d, w)), brute, "{q}");
        }
    }
}
