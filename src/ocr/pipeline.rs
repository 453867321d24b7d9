//! Text detection and recognition, following RapidOCR's defaults for PP-OCR models.
//!
//! 1. **Detect**: the photo is scaled so its long side is at most
//!    [`OcrParams::max_side`], each side rounded to a multiple of 32, turned to BGR and
//!    normalised to [-1, 1]; the detector (DBNet) gives a text probability per pixel.
//! 2. **Boxes**: pixels above [`DET_THRESHOLD`] (dilated by 2 × 2) form regions; each region's minimum-area
//!    rotated rectangle is kept when the mean probability inside exceeds [`BOX_THRESHOLD`],
//!    then grown by `area × UNCLIP_RATIO / perimeter` on every side (DBNet shrinks its
//!    regions in training; this undoes it).
//! 3. **Recognise**: each box is cut out of the full-resolution photo along its own axes
//!    (tall boxes turned a quarter), scaled to height 48, normalised like the detector's
//!    input and recognised in batches; greedy CTC decoding keeps the best class per step,
//!    merges repeats and drops blanks. Characters outside the Latin script are dropped (the
//!    dictionary is mostly CJK, and icons read as CJK), and lines below [`TEXT_THRESHOLD`].

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use rten::{Model, RunOptions, ThreadPool};
use rten_imageproc::{PointF, RetrievalMode, RotatedRect, find_contours, min_area_rect};
use rten_tensor::NdTensor;
use rten_tensor::prelude::*;

use super::models::{self, ModelPaths};
use super::{OcrError, TextLine};

/// A pixel is text when the detector's probability exceeds this.
pub const DET_THRESHOLD: f32 = 0.3;
/// A box is kept when the mean probability inside it exceeds this.
pub const BOX_THRESHOLD: f32 = 0.5;
/// How much a detected box is grown (DBNet's unclip ratio).
pub const UNCLIP_RATIO: f32 = 1.6;
/// Boxes whose short side is below this many pixels (detector scale) are noise.
pub const MIN_BOX_SIDE: f32 = 3.0;
/// At most this many regions are considered.
pub const MAX_CANDIDATES: usize = 1000;
/// The recogniser's input height.
pub const REC_HEIGHT: usize = 48;
/// The narrowest recogniser input (RapidOCR's 320 × 48).
pub const REC_MIN_WIDTH: usize = 320;
/// Crops wider than this (at height 48) are squeezed: no badge line is that long.
pub const REC_MAX_WIDTH: usize = 2048;
/// Crops recognised per model run.
pub const REC_BATCH: usize = 6;
/// Lines read with a lower mean confidence are dropped.
pub const TEXT_THRESHOLD: f32 = 0.5;

/// Tunable parameters; [`Default`] gives wabot's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcrParams {
    /// The detector input's long side is scaled down to at most this (pixels).
    pub max_side: u32,
    /// Threads each OCR call uses inside `rten`.
    pub threads: usize,
}

/// The default cap on the detector input's long side (see the README's measurements).
pub const DEFAULT_MAX_SIDE: u32 = 640;

impl Default for OcrParams {
    fn default() -> Self {
        OcrParams { max_side: DEFAULT_MAX_SIDE, threads: 1 }
    }
}

/// The loaded models and the recogniser's alphabet.
pub struct OcrEngine {
    det: Model,
    rec: Model,
    /// Class `i` is `classes[i]`; class 0 (the CTC blank) is `None`.
    classes: Vec<Option<char>>,
    params: OcrParams,
}

impl std::fmt::Debug for OcrEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrEngine")
            .field("classes", &self.classes.len())
            .field("params", &self.params)
            .finish()
    }
}

thread_local! {
    /// Each calling thread (an OCR worker, the CLI) has its own `rten` pool, so N workers of
    /// T threads each use N × T cores and no more.
    static RTEN_POOL: RefCell<Option<(usize, Arc<ThreadPool>)>> = const { RefCell::new(None) };
}

fn rten_pool(threads: usize) -> Arc<ThreadPool> {
    RTEN_POOL.with(|cell| {
        let mut cell = cell.borrow_mut();
        match &*cell {
            Some((n, pool)) if *n == threads => Arc::clone(pool),
            _ => {
                let pool = Arc::new(ThreadPool::with_num_threads(threads.max(1)));
                *cell = Some((threads, Arc::clone(&pool)));
                pool
            }
        }
    })
}

impl OcrEngine {
    /// Loads and verifies both models.
    pub fn load(paths: &ModelPaths, params: OcrParams) -> Result<OcrEngine, OcrError> {
        let det = load_model(&paths.det, models::DET_SHA256)?;
        let rec = load_model(&paths.rec, models::REC_SHA256)?;
        let shown = paths.rec.display().to_string();
        let dict =
            rec.metadata().get("character").ok_or_else(|| OcrError::MissingDictionary(shown.clone()))?;
        let mut classes = vec![None];
        classes.extend(dict.lines().map(|l| l.chars().next()));
        classes.push(Some(' '));
        if classes.len() < 3 {
            return Err(OcrError::MissingDictionary(shown));
        }
        Ok(OcrEngine { det, rec, classes, params })
    }

    /// Loads the models from `dir` with default parameters.
    pub fn load_dir(dir: &Path) -> Result<OcrEngine, OcrError> {
        OcrEngine::load(&ModelPaths::in_dir(dir), OcrParams::default())
    }

    /// The parameters in use.
    pub fn params(&self) -> OcrParams {
        self.params
    }

    /// Changes the parameters (the models stay loaded).
    pub fn set_params(&mut self, params: OcrParams) {
        self.params = params;
    }

    /// Reads the lines of text in `image`, top to bottom, then left to right.
    pub fn read(&self, image: &RgbImage) -> Result<Vec<TextLine>, OcrError> {
        if image.width() < 4 || image.height() < 4 {
            return Ok(Vec::new());
        }
        let mut opts = RunOptions::default();
        opts.thread_pool = Some(rten_pool(self.params.threads));
        let boxes = self.detect(image, &opts)?;
        self.recognize(image, &boxes, &opts)
    }

    /// Text boxes as corner quadruples (top-left, top-right, bottom-right, bottom-left) in
    /// the image's coordinates, sorted in reading order.
    fn detect(&self, image: &RgbImage, opts: &RunOptions) -> Result<Vec<[PointF; 4]>, OcrError> {
        let (w, h) = image.dimensions();
        let scale = (self.params.max_side as f32 / w.max(h) as f32).min(1.0);
        let round32 = |v: u32| (((v as f32 * scale) / 32.0).round() as u32).max(1) * 32;
        let (dw, dh) = (round32(w), round32(h));
        // `DynamicImage`'s methods are compiled (optimised) inside `image`; the generic
        // `imageops::resize` would be compiled here, unoptimised in debug builds.
        let resized = image::DynamicImage::ImageRgb8(image.clone())
            .resize_exact(dw, dh, image::imageops::FilterType::Triangle)
            .into_rgb8();
        let input = normalized_bgr(&resized);
        let out = run_one(&self.det, input, opts)?;
        let probs: NdTensor<f32, 4> =
            out.try_into().map_err(|e| inference(format!("detector output: {e:?}")))?;
        let (ph, pw) = (probs.size(2), probs.size(3));
        let probs = probs.view();
        let probs = probs.data().ok_or_else(|| inference("detector output is not contiguous".into()))?;
        let probs = Map { data: &probs[..ph * pw], width: pw, height: ph };
        // Thresholded, then dilated by a 2 × 2 square as RapidOCR does (`use_dilation`): thin
        // strokes stay connected.
        let text: Vec<bool> = probs.data.iter().map(|&p| p > DET_THRESHOLD).collect();
        let mut dilated = text.clone();
        for y in 0..ph {
            for x in 0..pw {
                let i = y * pw + x;
                dilated[i] = text[i]
                    || (y > 0 && text[i - pw])
                    || (x > 0 && text[i - 1])
                    || (y > 0 && x > 0 && text[i - pw - 1]);
            }
        }
        let mask = NdTensor::from_data([ph, pw], dilated);
        let contours = find_contours(mask.view(), RetrievalMode::External);
        let (sx, sy) = (w as f32 / pw as f32, h as f32 / ph as f32);
        let mut boxes = Vec::new();
        for contour in contours.iter().take(MAX_CANDIDATES) {
            let points: Vec<PointF> = contour.iter().map(|p| p.to_f32()).collect();
            let Some(rect) = min_area_rect(&points) else { continue };
            if rect.width().min(rect.height()) < MIN_BOX_SIDE {
                continue;
            }
            if box_score(&probs, &rect) <= BOX_THRESHOLD {
                continue;
            }
            let perimeter = 2.0 * (rect.width() + rect.height());
            let distance = rect.area() * UNCLIP_RATIO / perimeter;
            let grown = rect.expanded(2.0 * distance, 2.0 * distance);
            if grown.width().min(grown.height()) < MIN_BOX_SIDE + 2.0 {
                continue;
            }
            let corners = grown.corners().map(|p| {
                PointF::from_yx((p.y * sy).clamp(0.0, h as f32 - 1.0), (p.x * sx).clamp(0.0, w as f32 - 1.0))
            });
            boxes.push(order_corners(corners));
        }
        sort_reading_order(&mut boxes);
        Ok(boxes)
    }

    fn recognize(
        &self,
        image: &RgbImage,
        boxes: &[[PointF; 4]],
        opts: &RunOptions,
    ) -> Result<Vec<TextLine>, OcrError> {
        let crops: Vec<Crop> = boxes.iter().map(Crop::new).collect();
        // Similar widths batch together with little padding.
        let mut order: Vec<usize> = (0..crops.len()).collect();
        order.sort_by(|&a, &b| crops[a].ratio().total_cmp(&crops[b].ratio()));
        let mut lines: Vec<Option<TextLine>> = vec![None; crops.len()];
        for batch in order.chunks(REC_BATCH) {
            let max_ratio = batch
                .iter()
                .map(|&i| crops[i].ratio())
                .fold(REC_MIN_WIDTH as f32 / REC_HEIGHT as f32, f32::max);
            let width = ((REC_HEIGHT as f32 * max_ratio).ceil() as usize).min(REC_MAX_WIDTH);
            let plane = REC_HEIGHT * width;
            let mut input = vec![0.0f32; batch.len() * 3 * plane];
            for (n, &i) in batch.iter().enumerate() {
                crops[i].sample_into(image, &mut input[n * 3 * plane..(n + 1) * 3 * plane], width);
            }
            let input = NdTensor::from_data([batch.len(), 3, REC_HEIGHT, width], input);
            let out = run_one(&self.rec, input, opts)?;
            let probs: NdTensor<f32, 3> =
                out.try_into().map_err(|e| inference(format!("recogniser output: {e:?}")))?;
            let (steps, classes) = (probs.size(1), probs.size(2));
            if classes != self.classes.len() {
                return Err(inference(format!(
                    "recogniser gives {classes} classes, its dictionary {}",
                    self.classes.len()
                )));
            }
            let probs = probs.view();
            let flat = probs.data().ok_or_else(|| inference("recogniser output is not contiguous".into()))?;
            for (n, &i) in batch.iter().enumerate() {
                let per_line = steps * classes;
                lines[i] = self.decode(&flat[n * per_line..(n + 1) * per_line], classes);
            }
        }
        Ok(lines
            .into_iter()
            .flatten()
            .filter(|l| l.confidence >= TEXT_THRESHOLD && !l.text.trim().is_empty())
            .collect())
    }

    /// Greedy CTC over `probs` (time steps × `classes`): the best class per step, repeats
    /// merged, blanks dropped.
    fn decode(&self, probs: &[f32], classes: usize) -> Option<TextLine> {
        let mut text = String::new();
        let mut sum = 0.0;
        let mut count = 0usize;
        let mut previous = 0usize;
        for step in probs.chunks_exact(classes) {
            let (mut best, mut p) = (0usize, f32::MIN);
            for (i, &v) in step.iter().enumerate() {
                if v > p {
                    best = i;
                    p = v;
                }
            }
            if best != 0
                && best != previous
                && let Some(Some(c)) = self.classes.get(best)
                && is_latin(*c)
            {
                text.push(*c);
                sum += p;
                count += 1;
            }
            previous = best;
        }
        (count > 0).then(|| TextLine { text: text.trim().to_owned(), confidence: sum / count as f32 })
    }
}

fn load_model(path: &Path, sha256: &'static str) -> Result<Model, OcrError> {
    let bytes = models::read_verified(path, sha256)?;
    Model::load(bytes)
        .map_err(|e| OcrError::ModelLoad { path: path.display().to_string(), message: e.to_string() })
}

fn inference(message: String) -> OcrError {
    OcrError::Inference(message)
}

fn run_one(model: &Model, input: NdTensor<f32, 4>, opts: &RunOptions) -> Result<rten::Value, OcrError> {
    model.run_one(input.into(), Some(opts.clone())).map_err(|e| inference(e.to_string()))
}

/// The image as a `[1, 3, H, W]` tensor, channels B, G, R, each `v / 127.5 - 1`.
fn normalized_bgr(image: &RgbImage) -> NdTensor<f32, 4> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let plane = w * h;
    let mut data = vec![0.0f32; 3 * plane];
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        data[i] = px[2] as f32 / 127.5 - 1.0;
        data[plane + i] = px[1] as f32 / 127.5 - 1.0;
        data[2 * plane + i] = px[0] as f32 / 127.5 - 1.0;
    }
    NdTensor::from_data([1, 3, h, w], data)
}

/// The detector's probability map, row-major.
struct Map<'a> {
    data: &'a [f32],
    width: usize,
    height: usize,
}

/// Mean probability inside `rect` (RapidOCR's "fast" score).
fn box_score(probs: &Map, rect: &RotatedRect) -> f32 {
    let (w, h) = (probs.width as i64, probs.height as i64);
    let corners = rect.corners();
    let min_x = corners.iter().map(|p| p.x).fold(f32::MAX, f32::min).floor().max(0.0) as i64;
    let max_x = (corners.iter().map(|p| p.x).fold(f32::MIN, f32::max).ceil() as i64).min(w - 1);
    let min_y = corners.iter().map(|p| p.y).fold(f32::MAX, f32::min).floor().max(0.0) as i64;
    let max_y = (corners.iter().map(|p| p.y).fold(f32::MIN, f32::max).ceil() as i64).min(h - 1);
    // Inside when the projections on both axes are within half the sides.
    let center = rect.center();
    let up = rect.up_axis();
    let (half_h, half_w) = (rect.height().max(1e-6) / 2.0, rect.width().max(1e-6) / 2.0);
    let (mut sum, mut n) = (0.0, 0u32);
    for y in min_y..=max_y {
        for x in min_x..=max_x {
            let (dx, dy) = (x as f32 - center.x, y as f32 - center.y);
            let along_up = dx * up.x + dy * up.y;
            let across = dx * -up.y + dy * up.x;
            if along_up.abs() <= half_h && across.abs() <= half_w {
                sum += probs.data[(y * w + x) as usize];
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f32 }
}

/// Top-left, top-right, bottom-right, bottom-left, as RapidOCR orders a box: the two
/// leftmost corners are the left side, the higher of each pair is on top.
fn order_corners(mut c: [PointF; 4]) -> [PointF; 4] {
    c.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (tl, bl) = if c[0].y <= c[1].y { (c[0], c[1]) } else { (c[1], c[0]) };
    let (tr, br) = if c[2].y <= c[3].y { (c[2], c[3]) } else { (c[3], c[2]) };
    [tl, tr, br, bl]
}

/// Top to bottom; boxes within 10 pixels vertically are one row, read left to right.
fn sort_reading_order(boxes: &mut [[PointF; 4]]) {
    boxes.sort_by(|a, b| a[0].y.total_cmp(&b[0].y).then(a[0].x.total_cmp(&b[0].x)));
    for i in 0..boxes.len() {
        let mut j = i;
        while j > 0 && (boxes[j][0].y - boxes[j - 1][0].y).abs() < 10.0 && boxes[j][0].x < boxes[j - 1][0].x {
            boxes.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// A box to cut out: an origin and the two axes spanning it, in image coordinates.
struct Crop {
    origin: PointF,
    /// Along the text (the crop's x axis).
    along: (f32, f32),
    /// Across the text (the crop's y axis).
    across: (f32, f32),
}

impl Crop {
    fn new(&[tl, tr, br, bl]: &[PointF; 4]) -> Crop {
        let v = |a: PointF, b: PointF| (b.x - a.x, b.y - a.y);
        let len = |(x, y): (f32, f32)| (x * x + y * y).sqrt();
        let width = len(v(tl, tr)).max(len(v(bl, br)));
        let height = len(v(tl, bl)).max(len(v(tr, br)));
        let scale =
            |(x, y): (f32, f32), l: f32, to: f32| if l > 0.0 { (x / l * to, y / l * to) } else { (0.0, 0.0) };
        let along = scale(v(tl, tr), len(v(tl, tr)), width);
        let across = scale(v(tl, bl), len(v(tl, bl)), height);
        if height >= 1.5 * width {
            // Tall: text running down the photo. Turn the crop a quarter counter-clockwise,
            // as RapidOCR does (`np.rot90`): its x runs down the box's right edge.
            Crop { origin: tr, along: across, across: (-along.0, -along.1) }
        } else {
            Crop { origin: tl, along, across }
        }
    }

    fn width(&self) -> f32 {
        (self.along.0 * self.along.0 + self.along.1 * self.along.1).sqrt()
    }

    fn height(&self) -> f32 {
        (self.across.0 * self.across.0 + self.across.1 * self.across.1).sqrt()
    }

    fn ratio(&self) -> f32 {
        self.width() / self.height().max(1.0)
    }

    /// Resamples the crop to height 48 (and its own width, at most `max_width`) into `out`
    /// (`[3, 48, max_width]`, row-major), normalised BGR; the rest stays 0 (padding).
    fn sample_into(&self, image: &RgbImage, out: &mut [f32], max_width: usize) {
        let w = ((REC_HEIGHT as f32 * self.ratio()).ceil() as usize).clamp(1, max_width);
        let (iw, ih) = (image.width() as usize, image.height() as usize);
        let pixels = image.as_raw();
        let plane = REC_HEIGHT * max_width;
        for y in 0..REC_HEIGHT {
            let v = (y as f32 + 0.5) / REC_HEIGHT as f32;
            for x in 0..w {
                let u = (x as f32 + 0.5) / w as f32;
                let px = self.origin.x + self.along.0 * u + self.across.0 * v - 0.5;
                let py = self.origin.y + self.along.1 * u + self.across.1 * v - 0.5;
                let rgb = bilinear(pixels, iw, ih, px, py);
                let i = y * max_width + x;
                out[i] = rgb[2] / 127.5 - 1.0;
                out[plane + i] = rgb[1] / 127.5 - 1.0;
                out[2 * plane + i] = rgb[0] / 127.5 - 1.0;
            }
        }
    }
}

/// The colour at (`x`, `y`) of an RGB image of `w` × `h`, interpolated, edges clamped.
fn bilinear(pixels: &[u8], w: usize, h: usize, x: f32, y: f32) -> [f32; 3] {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |x: usize, y: usize, c: usize| pixels[(y * w + x) * 3 + c] as f32;
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
        let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
        *o = top * (1.0 - fy) + bottom * fy;
    }
    out
}

/// Latin script, digits and the punctuation badges use; NFKC later maps full-width forms.
fn is_latin(c: char) -> bool {
    matches!(c,
        ' '..='~'
        | '\u{00A0}'..='\u{024F}'
        | '\u{1E00}'..='\u{1EFF}'
        | '\u{2010}'..='\u{2027}'
        | '\u{2116}'
        | '\u{FF01}'..='\u{FF5E}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corners_are_ordered_like_rapidocr() {
        let p = |x, y| PointF::from_yx(y, x);
        let ordered = order_corners([p(10.0, 5.0), p(0.0, 0.0), p(0.0, 5.0), p(10.0, 0.0)]);
        assert_eq!(ordered, [p(0.0, 0.0), p(10.0, 0.0), p(10.0, 5.0), p(0.0, 5.0)]);
    }

    #[test]
    fn latin_letters_stay_and_cjk_goes() {
        assert!("Élodie Garçon N° 21957-B".chars().all(is_latin));
        assert!(!is_latin('中') && !is_latin('の'));
        assert!(is_latin('：'), "full-width colon, folded by NFKC later");
    }

    #[test]
    fn rows_read_left_to_right() {
        let b = |x: f32, y: f32| [PointF::from_yx(y, x); 4];
        let mut boxes = vec![b(50.0, 12.0), b(0.0, 100.0), b(10.0, 15.0)];
        sort_reading_order(&mut boxes);
        assert_eq!(boxes.iter().map(|b| b[0].x).collect::<Vec<_>>(), vec![10.0, 50.0, 0.0]);
    }
}
