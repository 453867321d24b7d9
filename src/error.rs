//! The crate's error type: one enum, each variant a concern's own error.

use thiserror::Error;

/// Any error the library reports.
#[derive(Debug, Error)]
pub enum Error {
    /// The knowledge base could not be loaded.
    #[error(transparent)]
    Corpus(#[from] crate::corpus::CorpusError),
    /// A webhook request was malformed.
    #[error(transparent)]
    Channel(#[from] crate::channel::ChannelError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
