//! Where USE-m3's model file is and what it must be: it is checked against its SHA-256 before
//! [`UseM3::from_bytes`] parses it, so a truncated download or another version is refused with
//! the command that restores it rather than read as garbage. The engine itself never touches
//! the disk; this module is its I/O edge, as `ocr::models` is OCR's.
//!
//! Directory: `models/` of the source checkout wabot was built from (so `cargo run` works from
//! anywhere), else `models/` in the working directory (a binary copied elsewhere).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::engine::use_m3::{UseM3, UseM3Error};

/// USE-m3's file name.
pub const USE_M3_FILE: &str = "use-m3-enfr.bin";
/// Its SHA-256 (also in `models/NOTICE` and `models/fetch_use.py`).
pub const USE_M3_SHA256: &str = "cacdb42996415e705ea356b27f30d301601c127e29986ab2c89727923f577156";
/// The command that restores it.
pub const USE_M3_RESTORE: &str = "python3 models/fetch_use.py";

/// The default directory: the checkout's `models/` if it holds the file, else `./models`.
pub fn default_dir() -> PathBuf {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if built_from.join(USE_M3_FILE).is_file() { built_from } else { PathBuf::from("models") }
}

/// Reads, checks and loads USE-m3 from `dir`.
pub fn load_use_m3(dir: &Path) -> Result<UseM3, UseM3Error> {
    let path = dir.join(USE_M3_FILE);
    let shown = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            UseM3Error::ModelMissing { path: shown.clone(), restore: USE_M3_RESTORE }
        } else {
            UseM3Error::ModelRead { path: shown.clone(), source }
        }
    })?;
    let actual: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if actual != USE_M3_SHA256 {
        return Err(UseM3Error::ModelChecksum {
            path: shown,
            expected: USE_M3_SHA256,
            actual,
            restore: USE_M3_RESTORE,
        });
    }
    UseM3::from_bytes(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_use_m3_model_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_use_m3(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(USE_M3_FILE) && err.contains("is missing: run python3 models/fetch_use.py"),
            "{err}"
        );
    }
}
