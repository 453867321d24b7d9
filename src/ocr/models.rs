//! Where the OCR models are and what they must be: both files are checked against their
//! SHA-256 before `rten` loads them, so a truncated download or another version is refused
//! with the command that fixes it rather than read as garbage.
//!
//! Directory: `WABOT_OCR_MODELS` or `models` in the configuration's `[badge]` table, else
//! `models/` of the source checkout wabot was built from (so `cargo run` works from anywhere),
//! else `models/` in the working directory (a binary copied to another machine).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::OcrError;

/// The detection model's file name.
pub const DET_FILE: &str = "PP-OCRv6_det_small.onnx";
/// The detection model's SHA-256 (also in `models/NOTICE`).
pub const DET_SHA256: &str = "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f";
/// The recognition model's file name.
pub const REC_FILE: &str = "PP-OCRv6_rec_small.onnx";
/// The recognition model's SHA-256 (also in `models/NOTICE`).
pub const REC_SHA256: &str = "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884";

/// The two model files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// Text detection.
    pub det: PathBuf,
    /// Text recognition.
    pub rec: PathBuf,
}

impl ModelPaths {
    /// The files in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        ModelPaths { det: dir.join(DET_FILE), rec: dir.join(REC_FILE) }
    }

    /// The default directory: the checkout's `models/` if it holds the files, else `./models`.
    pub fn default_dir() -> PathBuf {
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        if built_from.join(DET_FILE).is_file() { built_from } else { PathBuf::from("models") }
    }
}

/// Reads a model file and checks its SHA-256.
pub(crate) fn read_verified(path: &Path, expected: &'static str) -> Result<Vec<u8>, OcrError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            OcrError::ModelMissing { path: shown.clone() }
        } else {
            OcrError::ModelRead { path: shown.clone(), source }
        }
    })?;
    let actual = hex(&Sha256::digest(&bytes));
    if actual != expected {
        return Err(OcrError::ModelChecksum { path: shown, expected, actual });
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_verified(&dir.path().join(DET_FILE), DET_SHA256).unwrap_err().to_string();
        assert!(err.contains("is missing: run models/fetch.sh"), "{err}");
    }

    #[test]
    fn a_corrupt_model_is_refused_with_both_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REC_FILE);
        std::fs::write(&path, b"not a model").unwrap();
        let err = read_verified(&path, REC_SHA256).unwrap_err().to_string();
        assert!(err.contains(REC_SHA256) && err.contains("run models/fetch.sh"), "{err}");
    }
}
