//! Golden tests: the real models read the badge photos of `tests/data/badges/` (made by
//! `scripts/make_badges.py`), and each must give the ID and the name of its
//! `*.expected.txt`, found in the example directory, with the first name read as written
//! (accents included).
//!
//! The photos are shared between two plain threads, as two OCR workers would read them (a
//! rayon pool here would let a waiting worker steal the next photo while `rten` runs, and
//! skew the times printed).

use std::path::{Path, PathBuf};
use std::time::Instant;

use wabot::knowledge::directory::{Directory, normalize_id};
use wabot::ocr::{BadgeReader, IdExtractor, ModelPaths, OcrBadgeReader, OcrEngine, OcrParams};

struct Golden {
    image: PathBuf,
    id: String,
    name: String,
    /// The first name as the model reads it on this photo, when it differs (see
    /// `READ_AS` in `scripts/make_badges.py`).
    read_as: Option<String>,
}

fn goldens() -> Vec<Golden> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/badges");
    let mut out: Vec<Golden> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .map(|image| {
            let expected = std::fs::read_to_string(image.with_extension("expected.txt")).unwrap();
            let field = |k: &str| {
                expected
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap_or_else(|| panic!("{k} in {image:?}"))
                    .to_owned()
            };
            let read_as = expected.lines().find_map(|l| l.strip_prefix("read_as=")).map(str::to_owned);
            Golden { id: field("id="), name: field("name="), read_as, image }
        })
        .collect();
    out.sort_by(|a, b| a.image.cmp(&b.image));
    out
}

#[test]
fn every_golden_badge_gives_its_id_and_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = OcrEngine::load(&ModelPaths::in_dir(&root.join("models")), OcrParams::default()).unwrap();
    let reader = OcrBadgeReader::new(engine, IdExtractor::default());
    let directory = Directory::load(&root.join("corpus/employees.example.csv")).unwrap();
    let goldens = goldens();
    assert!(goldens.len() >= 12, "{} golden badges", goldens.len());
    let check_one = |g: &Golden| {
        let image = image::open(&g.image).unwrap().to_rgb8();
        let started = Instant::now();
        let text = reader.read_badge(&image).unwrap();
        let ms = started.elapsed().as_millis();
        let lines: Vec<&str> = text.lines.iter().map(|l| l.text.as_str()).collect();
        let check = (|| {
            let id = text.employee_id().ok_or("no ID found")?;
            if normalize_id(id) != normalize_id(&g.id) {
                return Err(format!("read ID {id}, expected {}", g.id));
            }
            let employee = directory.get(id).ok_or("ID not in the directory")?;
            if employee.full_name() != g.name {
                return Err(format!("directory gives {}", employee.full_name()));
            }
            let first = g.read_as.as_deref().unwrap_or_else(|| g.name.split(' ').next().unwrap_or_default());
            if !lines.iter().any(|l| l.contains(first)) {
                return Err(format!("first name {first} not read"));
            }
            Ok(())
        })()
        .map_err(|e| format!("{e}; rotation {}, lines {lines:?}", text.rotation));
        let name = g.image.file_name().unwrap().to_string_lossy().into_owned();
        (name, ms, check)
    };
    // Two plain threads (each with its own one-thread rten pool, as two OCR workers would
    // have) take every other photo.
    let mut results: Vec<(String, u128, Result<(), String>)> = std::thread::scope(|scope| {
        let halves: Vec<_> = (0..2)
            .map(|k| {
                let check_one = &check_one;
                let goldens = &goldens;
                scope.spawn(move || goldens.iter().skip(k).step_by(2).map(check_one).collect::<Vec<_>>())
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut failures = Vec::new();
    for (name, ms, check) in &results {
        eprintln!("{name}: {ms} ms {}", if check.is_ok() { "ok" } else { "FAILED" });
        if let Err(e) = check {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} badges misread:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}
