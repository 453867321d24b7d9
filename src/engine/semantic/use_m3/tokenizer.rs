//! USE-m3's SentencePiece tokenizer: text → piece ids, as the `sentencepiece` library cuts them.
//!
//! 1. Normalisation (`nmt_nfkc`): at each byte, the longest key of the model's compiled
//!    character map (a darts-clone double-array trie) that starts there is replaced by its
//!    value; leading, trailing and repeated spaces are removed; a space is prepended and every
//!    space becomes `▁` (U+2581).
//! 2. Viterbi over the characters: the segmentation into pieces with the highest sum of scores
//!    (sums in `f64`, ties to the earliest), a character no piece starts with being `<unk>` at
//!    the model's unknown score.
//!
//! Control pieces (`<s>`, `</s>`) and `<unk>` are never matched in text; user-defined pieces
//! are, like any other.

use compact_str::CompactString;
use rustc_hash::FxHashMap;

use super::UseM3Error;

/// The id of `<unk>`.
pub(super) const UNK: u32 = 0;
/// The id of `<s>`, put before a text's pieces.
pub(super) const BOS: u32 = 1;
/// The id of `</s>`, put after them.
pub(super) const EOS: u32 = 2;

const NORMAL: u8 = 1;
const USER_DEFINED: u8 = 4;
const META: &str = "\u{2581}";

/// Sentencepiece's `nmt_nfkc` normaliser over a precompiled character map.
#[derive(Debug)]
struct Normalizer {
    /// The double-array trie's units.
    units: Vec<u32>,
    /// Replacement strings, each ended by a NUL; a trie value is an offset into it.
    replacements: Vec<u8>,
}

impl Normalizer {
    fn new(charsmap: &[u8]) -> Result<Self, UseM3Error> {
        let invalid = || UseM3Error::Invalid("the normaliser's character map is malformed".into());
        let size = charsmap.get(..4).ok_or_else(invalid)?;
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let trie =
            charsmap.get(4..4 + size).filter(|t| t.len() % 4 == 0 && !t.is_empty()).ok_or_else(invalid)?;
        let units = trie.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(Normalizer { units, replacements: charsmap[4 + size..].to_vec() })
    }

    fn offset(unit: u32) -> usize {
        ((unit >> 10) << ((unit & 0x200) >> 6)) as usize
    }

    /// What the text at `pos` becomes, and how many of its bytes that consumes.
    fn prefix<'t>(&'t self, text: &'t [u8], pos: usize) -> (&'t [u8], usize) {
        let (mut best_len, mut best_value) = (0, 0);
        let mut node = Self::offset(self.units[0]);
        for (i, &c) in text[pos..].iter().enumerate() {
            node ^= usize::from(c);
            let Some(&unit) = self.units.get(node) else { break };
            if unit & 0x8000_00ff != u32::from(c) {
                break;
            }
            node ^= Self::offset(unit);
            if unit & 0x100 != 0 {
                let Some(&value) = self.units.get(node) else { break };
                best_len = i + 1;
                best_value = (value & 0x7fff_ffff) as usize;
            }
        }
        if best_len > 0 && best_value < self.replacements.len() {
            let rest = &self.replacements[best_value..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            return (&rest[..end], best_len);
        }
        // Not in the map: the character itself (the text is UTF-8, so its first byte says how long).
        let len = match text[pos] {
            b if b < 0x80 => 1,
            b if b >> 5 == 0x6 => 2,
            b if b >> 4 == 0xe => 3,
            _ => 4,
        };
        let len = len.min(text.len() - pos);
        (&text[pos..pos + len], len)
    }

    /// The normalised text, spaces as `▁`; empty if the text is only spaces.
    fn normalize(&self, text: &str) -> String {
        let raw = text.as_bytes();
        let mut pos = 0;
        while pos < raw.len() {
            let (piece, consumed) = self.prefix(raw, pos);
            if piece != b" " {
                break;
            }
            pos += consumed;
        }
        if pos >= raw.len() {
            return String::new();
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 16);
        out.extend_from_slice(META.as_bytes());
        let mut prev_space = true;
        while pos < raw.len() {
            let (mut piece, consumed) = self.prefix(raw, pos);
            pos += consumed;
            if prev_space {
                while let [b' ', rest @ ..] = piece {
                    piece = rest;
                }
            }
            if let Some(&last) = piece.last() {
                for &b in piece {
                    if b == b' ' {
                        out.extend_from_slice(META.as_bytes());
                    } else {
                        out.push(b);
                    }
                }
                prev_space = last == b' ';
            }
        }
        while out.ends_with(META.as_bytes()) {
            out.truncate(out.len() - META.len());
        }
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// The unigram model: pieces, scores and the normaliser.
#[derive(Debug)]
pub(super) struct Tokenizer {
    normalizer: Normalizer,
    /// Every piece and every prefix of one: `id + 1` for a piece that can be matched, 0 for a
    /// prefix only (so the walk along a position stops as soon as nothing can follow).
    prefixes: FxHashMap<CompactString, u32>,
    scores: Vec<f32>,
    unk_score: f64,
    /// The longest piece, in characters.
    max_chars: usize,
}

impl Tokenizer {
    /// `pieces` is the section of length-prefixed UTF-8 pieces; `types` their SentencePiece types.
    pub(super) fn new(
        pieces: &[u8],
        scores: Vec<f32>,
        types: &[u8],
        unk_score: f32,
        charsmap: &[u8],
    ) -> Result<Self, UseM3Error> {
        let mut prefixes: FxHashMap<CompactString, u32> = FxHashMap::default();
        let mut rest = pieces;
        let mut max_chars = 1;
        for (id, &kind) in types.iter().enumerate() {
            let cut = || UseM3Error::Truncated { what: "the vocabulary" };
            let (&len, tail) = rest.split_first().ok_or_else(cut)?;
            let bytes = tail.get(..usize::from(len)).ok_or_else(cut)?;
            rest = &tail[usize::from(len)..];
            let piece = std::str::from_utf8(bytes)
                .map_err(|_| UseM3Error::Invalid(format!("piece {id} is not UTF-8")))?;
            if !(kind == NORMAL || kind == USER_DEFINED) || piece.is_empty() {
                continue;
            }
            let mut chars = 0;
            for (end, _) in piece.char_indices() {
                chars += 1;
                if end > 0 {
                    prefixes.entry(CompactString::from(&piece[..end])).or_insert(0);
                }
            }
            max_chars = max_chars.max(chars);
            prefixes.insert(CompactString::from(piece), id as u32 + 1);
        }
        if !rest.is_empty() || scores.len() != types.len() || types.len() <= EOS as usize {
            return Err(UseM3Error::Invalid("the vocabulary's pieces, scores and types disagree".into()));
        }
        Ok(Tokenizer {
            normalizer: Normalizer::new(charsmap)?,
            prefixes,
            scores,
            unk_score: f64::from(unk_score),
            max_chars,
        })
    }

    /// How many pieces.
    pub(super) fn vocab_len(&self) -> usize {
        self.scores.len()
    }

    /// The ids of `text`'s pieces between `<s>` and `</s>`; `<unk>` alone for an empty text.
    pub(super) fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalizer.normalize(text);
        let mut ids = vec![BOS];
        if normalized.is_empty() {
            ids.push(UNK);
        } else {
            ids.extend(self.viterbi(&normalized));
        }
        ids.push(EOS);
        ids
    }

    fn viterbi(&self, s: &str) -> Vec<u32> {
        let mut starts: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        let n = starts.len();
        starts.push(s.len());
        let mut best = vec![-1e38_f64; n + 1];
        best[0] = 0.0;
        // For each end position: where its best last piece starts, and which piece it is.
        let mut back = vec![(0_usize, UNK); n + 1];
        for i in 0..n {
            let base = best[i];
            let mut has_single = false;
            for j in i + 1..=(i + self.max_chars).min(n) {
                match self.prefixes.get(&s[starts[i]..starts[j]]) {
                    None => break,
                    Some(0) => {}
                    Some(&v) => {
                        let score = base + f64::from(self.scores[v as usize - 1]);
                        if score > best[j] {
                            best[j] = score;
                            back[j] = (i, v - 1);
                        }
                        has_single |= j == i + 1;
                    }
                }
            }
            if !has_single {
                let score = base + self.unk_score;
                if score > best[i + 1] {
                    best[i + 1] = score;
                    back[i + 1] = (i, UNK);
                }
            }
        }
        let mut ids = Vec::new();
        let mut end = n;
        while end > 0 {
            let (start, id) = back[end];
            ids.push(id);
            end = start;
        }
        ids.reverse();
        ids
    }
}
