//! USE-m3's SentencePiece tokenizer: text → piece ids, as the `sentencepiece` library cuts them.
//!
//! 1. Normalisation (`nmt_nfkc`), here: at each byte, the longest key of the model's compiled
//!    character map (a darts-clone double-array trie) that starts there is replaced by its
//!    value — keys are byte sequences, not single code points, which is why this model does
//!    not use [`Unigram::normalize`]; leading, trailing and repeated spaces are removed; a space
//!    is prepended and every space becomes `▁` (U+2581).
//! 2. Viterbi over the characters: [`Unigram::encode_normalized`], shared with e5.
//!
//! Control pieces (`<s>`, `</s>`) and `<unk>` are never matched in text; user-defined pieces
//! are, like any other.

use super::SemanticError;
use crate::engine::semantic::Unigram;

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
    fn new(charsmap: &[u8]) -> Result<Self, SemanticError> {
        let invalid = || SemanticError::Invalid("the normaliser's character map is malformed".into());
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

/// The unigram model behind the normaliser.
#[derive(Debug)]
pub(super) struct Tokenizer {
    normalizer: Normalizer,
    unigram: Unigram,
}

impl Tokenizer {
    /// `pieces` is the section of length-prefixed UTF-8 pieces; `types` their SentencePiece types.
    pub(super) fn new(
        pieces: &[u8],
        scores: Vec<f32>,
        types: &[u8],
        unk_score: f32,
        charsmap: &[u8],
    ) -> Result<Self, SemanticError> {
        let mut matched = Vec::with_capacity(types.len());
        let mut rest = pieces;
        for (id, &kind) in types.iter().enumerate() {
            let cut = || SemanticError::Truncated { what: "the vocabulary" };
            let (&len, tail) = rest.split_first().ok_or_else(cut)?;
            let bytes = tail.get(..usize::from(len)).ok_or_else(cut)?;
            rest = &tail[usize::from(len)..];
            let piece = std::str::from_utf8(bytes)
                .map_err(|_| SemanticError::Invalid(format!("piece {id} is not UTF-8")))?;
            // An empty piece is never matched: how control pieces stay out of the text.
            matched.push(if kind == NORMAL || kind == USER_DEFINED {
                piece.to_owned()
            } else {
                String::new()
            });
        }
        if !rest.is_empty() || types.len() <= EOS as usize {
            return Err(SemanticError::Invalid("the vocabulary's pieces and types disagree".into()));
        }
        Ok(Tokenizer {
            normalizer: Normalizer::new(charsmap)?,
            unigram: Unigram::new(matched, scores, UNK, unk_score, Vec::new())?,
        })
    }

    /// How many pieces.
    pub(super) fn vocab_len(&self) -> usize {
        self.unigram.len()
    }

    /// The ids of `text`'s pieces between `<s>` and `</s>`; `<unk>` alone for an empty text.
    pub(super) fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalizer.normalize(text);
        let mut ids = vec![BOS];
        if normalized.is_empty() {
            ids.push(UNK);
        } else {
            ids.extend(self.unigram.encode_normalized(&normalized));
        }
        ids.push(EOS);
        ids
    }
}
