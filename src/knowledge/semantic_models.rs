//! Where the sentence encoder's model file is and what it must be: it is checked against its
//! SHA-256 before [`E5::from_bytes`] parses it, so a truncated download or another version is
//! refused with the command that restores it rather than read as garbage. The engine itself
//! never touches the disk; this module is its I/O edge, as `ocr::models` is OCR's.
//!
//! Directory: `models/` of the source checkout wabot was built from (so `cargo run` works
//! from anywhere), else `models/` in the working directory (a binary copied elsewhere).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use std::sync::Arc;

use thiserror::Error;

use crate::engine::hybrid::{Encoder, Semantic};
use crate::engine::semantic::{E5, SemanticError, UseM3};

/// How much e5's whole-entry passage counts against its best question.
const E5_PASSAGE_WEIGHT: f32 = 0.7;
/// The same for USE-m3.
const USE_PASSAGE_WEIGHT: f32 = 0.5;

/// What loading the semantic scorer's encoders can fail with.
#[derive(Debug, Error)]
pub enum EncodersError {
    /// A model file.
    #[error(transparent)]
    Model(#[from] SemanticError),
    /// The cache of entry vectors.
    #[error(transparent)]
    Cache(#[from] crate::knowledge::vector_cache::CacheError),
}

/// The semantic scorer as `serve`, `ask`, `eval` and `chat` run it: both encoders from the
/// models directory, entry vectors cached in `data_dir`; `None` when `on` is false.
pub fn setup(
    on: bool,
    data_dir: &Path,
) -> Result<Option<crate::engine::hybrid::SemanticSetup>, EncodersError> {
    if !on {
        return Ok(None);
    }
    let models = load_encoders(&default_dir())?
        .with_progress(crate::telemetry::progress::reporter("embedding the FAQ"));
    let cache = crate::knowledge::vector_cache::DiskCache::open(data_dir)?;
    if cache.is_read_only() {
        tracing::info!(
            file = %cache.path().display(),
            "another wabot process holds the embedding cache: reading it, adding nothing to it"
        );
    }
    Ok(Some(crate::engine::hybrid::SemanticSetup { models, cache: Arc::new(cache) }))
}

/// Loads both encoders of the semantic scorer from `dir` (e5, then USE-m3), each checked
/// against its SHA-256.
pub fn load_encoders(dir: &Path) -> Result<Semantic, EncodersError> {
    let e5 = load_e5(dir)?;
    let use_m3 = load_use_m3(dir)?;
    Ok(Semantic::new(vec![
        Encoder { model: Arc::new(e5), passage_weight: E5_PASSAGE_WEIGHT },
        Encoder { model: Arc::new(use_m3), passage_weight: USE_PASSAGE_WEIGHT },
    ]))
}

/// multilingual-e5-small's file name.
pub const E5_FILE: &str = "multilingual-e5-small-enfr-q4.bin";
/// Its SHA-256 (also in `models/NOTICE` and `models/fetch.sh`).
pub const E5_SHA256: &str = "42eb68f564591d52a35009489265c9f616f636d7935aedc30f52a7ecfa328dba";
/// The command that restores it.
pub const E5_RESTORE: &str = "python3 models/fetch_e5.py";

/// USE-m3's file name.
pub const USE_M3_FILE: &str = "use-m3-enfr.bin";
/// Its SHA-256 (also in `models/NOTICE` and `models/fetch_use.py`).
pub const USE_M3_SHA256: &str = "cacdb42996415e705ea356b27f30d301601c127e29986ab2c89727923f577156";
/// The command that restores it.
pub const USE_M3_RESTORE: &str = "python3 models/fetch_use.py";

/// The default directory: the checkout's `models/` if it holds the file, else `./models`.
pub fn default_dir() -> PathBuf {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if built_from.join(E5_FILE).is_file() { built_from } else { PathBuf::from("models") }
}

/// Reads, checks and loads multilingual-e5-small from `dir`.
pub fn load_e5(dir: &Path) -> Result<E5, SemanticError> {
    let bytes = read_verified(&dir.join(E5_FILE), E5_SHA256, E5_RESTORE)?;
    E5::from_bytes(&bytes)
}

/// Reads, checks and loads USE-m3 from `dir`.
pub fn load_use_m3(dir: &Path) -> Result<UseM3, SemanticError> {
    let bytes = read_verified(&dir.join(USE_M3_FILE), USE_M3_SHA256, USE_M3_RESTORE)?;
    UseM3::from_bytes(&bytes)
}

/// Reads a model file and checks its SHA-256.
pub fn read_verified(
    path: &Path,
    expected: &'static str,
    restore: &'static str,
) -> Result<Vec<u8>, SemanticError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SemanticError::ModelMissing { path: shown.clone(), restore }
        } else {
            SemanticError::ModelRead { path: shown.clone(), source }
        }
    })?;
    let actual: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if actual != expected {
        return Err(SemanticError::ModelChecksum { path: shown, expected, actual, restore });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_e5(dir.path()).unwrap_err().to_string();
        assert!(err.contains(E5_FILE) && err.contains("is missing: run python3 models/fetch_e5.py"), "{err}");
    }

    #[test]
    fn a_missing_use_m3_model_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_use_m3(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(USE_M3_FILE) && err.contains("is missing: run python3 models/fetch_use.py"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_model_is_refused_with_both_checksums_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(E5_FILE);
        let real = std::fs::read(default_dir().join(E5_FILE)).unwrap();
        std::fs::write(&path, &real[..real.len() / 2]).unwrap();
        let err = load_e5(dir.path()).unwrap_err().to_string();
        assert!(err.contains(E5_SHA256) && err.contains(E5_FILE) && err.contains(E5_RESTORE), "{err}");
    }
}
