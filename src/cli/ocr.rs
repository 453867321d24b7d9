//! `wabot ocr`: badge photos read with the configured models, each reading written as text
//! (the lines with their confidences, the employee ID, the time taken) or as JSON.

use std::io::Write;
use std::path::PathBuf;

use super::CliError;
use crate::config::Settings;
use crate::ocr::{BadgeReader, IdExtractor, ModelPaths, OcrBadgeReader, OcrEngine, OcrParams};

/// Reads each of `images`, with the detector's long side and the threads as given, else as
/// configured.
pub fn run(
    settings: &Settings,
    json: bool,
    max_side: Option<u32>,
    threads: Option<usize>,
    images: &[PathBuf],
    out: &mut impl Write,
) -> Result<(), CliError> {
    let badge = &settings.badge;
    let params = OcrParams {
        max_side: max_side.unwrap_or(badge.max_side),
        threads: threads.unwrap_or_else(|| badge.threads_per_worker()),
    };
    let engine = OcrEngine::load(&ModelPaths::in_dir(&badge.models), params)?;
    let reader = OcrBadgeReader::new(engine, IdExtractor::new(&badge.id_patterns)?);
    for path in images {
        let bytes = std::fs::read(path).map_err(|source| CliError::Read { path: path.clone(), source })?;
        let started = std::time::Instant::now();
        let image = crate::ocr::decode::decode_image(&bytes)
            .map_err(|source| CliError::Decode { path: path.clone(), source })?;
        let text = reader.read_badge(&image)?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if json {
            let obj = serde_json::json!({
                "image": path.display().to_string(),
                "employee_id": text.employee_id(),
                "lines": text.lines,
                "ms": (ms * 10.0).round() / 10.0,
            });
            writeln!(out, "{obj}")?;
        } else {
            writeln!(out, "{}  ({ms:.0} ms, turned {}°)", path.display(), text.rotation)?;
            for line in &text.lines {
                writeln!(out, "  {:.2}  {}", line.confidence, line.text)?;
            }
            writeln!(out, "  employee ID: {}\n", text.employee_id().unwrap_or("(none found)"))?;
        }
        out.flush()?;
    }
    Ok(())
}
