//! Typo tolerance: maps a word the index has never seen to the closest word it has.
//!
//! A symmetric-delete index (the SymSpell idea): every vocabulary word is stored under each
//! of its variants with up to [`MAX_EDITS`] letters deleted; a query word's own deletions
//! then find every candidate within that many edits without scanning the vocabulary.
//! Candidates are confirmed with the optimal-string-alignment distance (insertions,
//! deletions, substitutions and adjacent transpositions — the typos thumbs make).

use std::collections::HashMap;

/// The most edits a correction may need.
pub const MAX_EDITS: usize = 2;

/// Only this many leading characters are indexed: it bounds the index's size, and typos
/// further in are still confirmed by the full distance.
const PREFIX_CHARS: usize = 7;

/// Words shorter than this are never corrected: too many short words are one edit apart
/// (`mars` is not a typo of `mais`).
const MIN_WORD_CHARS: usize = 5;

/// How many edits a word of `chars` characters may be away from its correction.
pub fn allowed_edits(chars: usize) -> usize {
    match chars {
        0..MIN_WORD_CHARS => 0,
        5..=7 => 1,
        _ => MAX_EDITS,
    }
}

/// The vocabulary of known words, indexed by their deletions.
#[derive(Debug, Default, Clone)]
pub struct FuzzyIndex {
    words: Vec<(String, u32)>,
    ids: HashMap<String, u32>,
    deletes: HashMap<String, Vec<u32>>,
}

impl FuzzyIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one more occurrence of `word`; frequent words win ties.
    pub fn insert(&mut self, word: &str) {
        if let Some(&id) = self.ids.get(word) {
            self.words[id as usize].1 += 1;
            return;
        }
        let id = self.words.len() as u32;
        self.words.push((word.to_owned(), 1));
        self.ids.insert(word.to_owned(), id);
        let prefix: String = word.chars().take(PREFIX_CHARS).collect();
        for variant in deletions(&prefix, MAX_EDITS) {
            let ids = self.deletes.entry(variant).or_default();
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
    }

    /// True when `word` itself is in the vocabulary.
    pub fn contains(&self, word: &str) -> bool {
        self.ids.contains_key(word)
    }

    /// Number of distinct words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// True when no word was inserted.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The closest known word to `word` within its allowed edits, with the edit count.
    /// Ties go to the more frequent word, then the alphabetically first, so the answer
    /// never depends on insertion order.
    pub fn correct(&self, word: &str) -> Option<(&str, usize)> {
        let chars = word.chars().count();
        let max = allowed_edits(chars);
        if max == 0 || self.contains(word) {
            return None;
        }
        let prefix: String = word.chars().take(PREFIX_CHARS).collect();
        let mut best: Option<(usize, u32, &str)> = None;
        for variant in deletions(&prefix, max) {
            let Some(ids) = self.deletes.get(&variant) else {
                continue;
            };
            for &id in ids {
                let (candidate, freq) = &self.words[id as usize];
                if candidate.chars().count().abs_diff(chars) > max {
                    continue;
                }
                // Thumbs rarely miss a word's first letter; a correction that changes it
                // (`tatin` → `matin`) is more often a different word.
                if candidate.chars().next() != word.chars().next() {
                    continue;
                }
                let Some(d) = osa_distance(word, candidate, max) else {
                    continue;
                };
                let better = match best {
                    None => true,
                    Some((bd, bf, bw)) => {
                        (d, std::cmp::Reverse(*freq), candidate.as_str()) < (bd, std::cmp::Reverse(bf), bw)
                    }
                };
                if better {
                    best = Some((d, *freq, candidate));
                }
            }
        }
        best.map(|(d, _, w)| (w, d))
    }
}

/// `word` and every string obtained by deleting up to `max` of its characters.
fn deletions(word: &str, max: usize) -> Vec<String> {
    let mut out = vec![word.to_owned()];
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
    out
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
        let mut ix = FuzzyIndex::new();
        for w in words {
            ix.insert(w);
        }
        ix
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
        assert_eq!(ix.correct("atestaton"), Some(("attestation", 2)));
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
        assert_eq!(ix.correct("leavez"), Some(("leaves", 1)));
    }

    #[test]
    fn corrections_agree_with_a_brute_force_scan() {
        let vocab = ["formation", "information", "salaire", "salary", "badge", "bagde", "remote"];
        let ix = index(&vocab);
        for q in ["formaton", "infromation", "salair", "slary", "badeg", "remoet", "xyzzyx"] {
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
