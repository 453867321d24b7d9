//! Reading employee badges: text detection and recognition with PaddleOCR's PP-OCRv6 small
//! models run by `rten`, and the employee ID found in the text.
//!
//! - [`models`]: where the ONNX files are, their SHA-256 checked at load.
//! - [`pipeline`]: the detection + recognition pipeline ([`OcrEngine`]), following RapidOCR's
//!   defaults; pure computation on an image, no I/O once the models are loaded.
//! - [`id`]: the employee ID among the lines read ([`IdExtractor`]): after labels such as
//!   `Employee ID`, `Matricule`, `N° employé`, or an organisation's own patterns.
//! - [`pool`]: a bounded set of worker threads ([`OcrPool`]) so OCR never runs on the async
//!   runtime and never piles up: when the queue is full, callers are told at once.
//!
//! The rest of wabot sees only the [`BadgeReader`] trait, so the dialog and the server can be
//! tested with a fake reader, while `tests/engine/ocr_golden.rs` runs the real models on real photos.

pub mod id;
pub mod models;
pub mod pipeline;
pub mod pool;

use image::RgbImage;
use serde::Serialize;
use thiserror::Error;

pub mod decode;

pub use id::IdExtractor;
pub use models::ModelPaths;
pub use pipeline::{OcrEngine, OcrParams};
pub use pool::{OcrPool, PoolError};

/// What reading text can fail with.
#[derive(Debug, Error)]
pub enum OcrError {
    /// A model file is absent.
    #[error(
        "OCR model {path} is missing: run models/fetch.sh (or set WABOT_OCR_MODELS to the directory holding it)"
    )]
    ModelMissing {
        /// The file looked for.
        path: String,
    },
    /// A model file is there but is not the expected one.
    #[error(
        "OCR model {path} has SHA-256 {actual}, expected {expected}: the file is corrupt or another \
         version; run models/fetch.sh to fetch the right one"
    )]
    ModelChecksum {
        /// The file.
        path: String,
        /// The SHA-256 it should have.
        expected: &'static str,
        /// The SHA-256 it has.
        actual: String,
    },
    /// A model file could not be read.
    #[error("cannot read OCR model {path}: {source}")]
    ModelRead {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rten refused a model.
    #[error("cannot load OCR model {path}: {message}")]
    ModelLoad {
        /// The file.
        path: String,
        /// rten's reason.
        message: String,
    },
    /// The recognition model carries no usable dictionary.
    #[error("OCR model {0} has no `character` dictionary in its metadata")]
    MissingDictionary(String),
    /// Inference failed.
    #[error("OCR inference failed: {0}")]
    Inference(String),
}

/// One line of text read, with the recogniser's confidence (0–1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextLine {
    /// The text, Latin script only.
    pub text: String,
    /// Mean probability of the line's characters.
    pub confidence: f32,
}

/// What was read on a badge photo.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BadgeText {
    /// The lines of text, top to bottom, in the orientation that gave an ID.
    pub lines: Vec<TextLine>,
    /// Employee ID candidates, most likely first (see [`IdExtractor::candidates`]).
    pub candidates: Vec<String>,
    /// Clockwise rotation, in degrees, applied to the photo to read it (0, 90, 180, 270).
    pub rotation: u16,
}

impl BadgeText {
    /// The most likely employee ID, if any.
    pub fn employee_id(&self) -> Option<&str> {
        self.candidates.first().map(String::as_str)
    }
}

/// Reads a badge photo. Implemented by [`OcrBadgeReader`]; tests use fakes.
pub trait BadgeReader: Send + Sync {
    /// Reads the text and the employee ID candidates of a decoded photo. Blocking and
    /// CPU-heavy for real readers: call it from a worker thread ([`OcrPool`]).
    fn read_badge(&self, image: &RgbImage) -> Result<BadgeText, OcrError>;
}

/// The real reader: OCR, then ID extraction; when no ID is found, the photo is tried turned
/// upside down, then sideways (photos are often taken that way).
#[derive(Debug)]
pub struct OcrBadgeReader {
    engine: OcrEngine,
    ids: IdExtractor,
}

impl OcrBadgeReader {
    /// A reader using `engine` and finding IDs with `ids`.
    pub fn new(engine: OcrEngine, ids: IdExtractor) -> Self {
        OcrBadgeReader { engine, ids }
    }

    /// The OCR engine.
    pub fn engine(&self) -> &OcrEngine {
        &self.engine
    }
}

impl BadgeReader for OcrBadgeReader {
    fn read_badge(&self, image: &RgbImage) -> Result<BadgeText, OcrError> {
        let mut first: Option<BadgeText> = None;
        for rotation in [0u16, 180, 90, 270] {
            // `DynamicImage`'s rotations are compiled optimised inside `image`.
            let turned = match rotation {
                0 => None,
                90 => Some(image::DynamicImage::ImageRgb8(image.clone()).rotate90().into_rgb8()),
                180 => Some(image::DynamicImage::ImageRgb8(image.clone()).rotate180().into_rgb8()),
                _ => Some(image::DynamicImage::ImageRgb8(image.clone()).rotate270().into_rgb8()),
            };
            let view = turned.as_ref().unwrap_or(image);
            let lines = self.engine.read(view)?;
            let candidates = self.ids.candidates(&lines);
            let text = BadgeText { lines, candidates, rotation };
            if !text.candidates.is_empty() {
                return Ok(text);
            }
            first.get_or_insert(text);
        }
        Ok(first.unwrap_or_default())
    }
}
