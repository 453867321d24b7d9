//! The matching engine, the sentence encoders and the OCR on real data, through the
//! library: measured quality (`quality`, `fused`), incremental changes against fresh builds
//! (`incremental`), the encoders against their reference engines (`semantic`, `use_m3`), and
//! the badge photos' golden readings (`ocr_golden`).

mod fused;
mod incremental;
mod ocr_golden;
mod quality;
mod semantic;
mod use_m3;
