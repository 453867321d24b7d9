//! Semantic matching: sentence encoders that turn a text into an L2-normalised vector, and
//! the dense index that finds the entries closest to a query's vector.
//!
//! Owns: the [`SentenceEncoder`] trait every encoder implements, a SentencePiece unigram
//! tokenizer ([`unigram`]), multilingual-e5-small's forward pass ([`e5`]), Universal Sentence
//! Encoder multilingual v3 ([`use_m3`]) and the dense index ([`dense`]).
//! Must not: do I/O — a model arrives as bytes (`crate::knowledge::semantic_models` reads and checks the
//! files) — log, or depend on the web or async stack, like the rest of [`crate::engine`].

pub mod dense;
pub mod e5;
pub mod unigram;
pub mod use_m3;

use thiserror::Error;

pub use dense::{DenseIndex, Hit};
pub use e5::E5;
pub use unigram::Unigram;
pub use use_m3::UseM3;

/// What a text is, for encoders that embed queries and passages differently (e5's "query: "/"passage: ").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A user's message.
    Query,
    /// An entry's text: a question or an answer.
    Passage,
}

/// A sentence encoder: text in, an L2-normalised vector out. Pure and thread-safe.
pub trait SentenceEncoder: Send + Sync {
    /// The vectors' dimension.
    fn dim(&self) -> usize;
    /// The model's identity (name + a hash of its bytes), for caches keyed by model.
    fn model_id(&self) -> &str;
    /// Embeds one text.
    fn embed(&self, text: &str, role: Role) -> Vec<f32>;
}

/// What loading a sentence encoder, or changing the dense index, can fail with.
#[derive(Debug, Error)]
pub enum SemanticError {
    /// A model file is absent.
    #[error("semantic model {path} is missing: run {restore}")]
    ModelMissing {
        /// The file looked for.
        path: String,
        /// The command that restores it.
        restore: &'static str,
    },
    /// A model file could not be read.
    #[error("cannot read semantic model {path}: {source}")]
    ModelRead {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A model file is there but is not the expected one.
    #[error(
        "semantic model {path} has SHA-256 {actual}, expected {expected}: the file is corrupt or \
         another version; run {restore} to restore it"
    )]
    ModelChecksum {
        /// The file.
        path: String,
        /// The SHA-256 it should have.
        expected: &'static str,
        /// The SHA-256 it has.
        actual: String,
        /// The command that restores it.
        restore: &'static str,
    },
    /// The bytes do not start with the format's magic number.
    #[error("not a {format} model: bad magic number")]
    BadMagic {
        /// The format expected.
        format: &'static str,
    },
    /// The format's version is not one this build reads.
    #[error("{format} model version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The format.
        format: &'static str,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The bytes end before the model does.
    #[error("truncated model: the bytes end inside {what}")]
    Truncated {
        /// The part being read.
        what: &'static str,
    },
    /// The model is complete but bytes follow it.
    #[error("{0} unexpected bytes after the model")]
    TrailingBytes(usize),
    /// The model's header or vocabulary is inconsistent.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// A vector given to the dense index has the wrong length.
    #[error("a vector of dimension {found} given to a dense index of dimension {expected}")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The vector's.
        found: usize,
    },
}
