//! A photo's bytes to an image the OCR reads: the declared type, the magic number (JPEG, PNG,
//! WebP) and the dimensions (read first) are checked before anything is decoded, so a
//! hostile file cannot make the decoder allocate without bound. Shared by `wabot ocr` and the
//! badge flow.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits, RgbImage};
use thiserror::Error;

/// The largest width or height accepted before decoding.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// The most pixels accepted before decoding (a 1600 × 1200 photo has 1.9 million).
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;

/// Why bytes are not an image the OCR can read.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The bytes are not a JPEG, PNG or WebP image.
    #[error("the file is not a JPEG, PNG or WebP image")]
    NotAnImage,
    /// The image is too large to decode safely.
    #[error("the image is {width} × {height} pixels, more than allowed")]
    Dimensions {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// The decoder failed.
    #[error("the image cannot be decoded: {0}")]
    Decode(String),
}

/// True when `content_type` (as Twilio declares it) is an image.
pub fn is_image_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("image/"))
}

/// The image format announced by the file's first bytes.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

/// Decodes a JPEG, PNG or WebP photo to RGB after checking its magic number and dimensions.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    let format = sniff_format(bytes).ok_or(DecodeError::NotAnImage)?;
    let limits = || {
        let mut l = Limits::default();
        l.max_image_width = Some(MAX_IMAGE_SIDE);
        l.max_image_height = Some(MAX_IMAGE_SIDE);
        l.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
        l
    };
    let mut probe = ImageReader::with_format(Cursor::new(bytes), format);
    probe.limits(limits());
    let (width, height) = probe.into_dimensions().map_err(|e| decode_error(e, (0, 0)))?;
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS
    {
        return Err(DecodeError::Dimensions { width, height });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits());
    let image = reader.decode().map_err(|e| decode_error(e, (width, height)))?;
    Ok(image.to_rgb8())
}

fn decode_error(e: image::ImageError, (width, height): (u32, u32)) -> DecodeError {
    match e {
        image::ImageError::Limits(_) => DecodeError::Dimensions { width, height },
        other => DecodeError::Decode(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_number_decides_not_the_declared_type() {
        assert!(matches!(decode_image(b"%PDF-1.7 ..."), Err(DecodeError::NotAnImage)));
        assert!(matches!(decode_image(b"GIF89a......"), Err(DecodeError::NotAnImage)));
        assert!(matches!(decode_image(&[0xFF, 0xD8, 0xFF, 0x00]), Err(DecodeError::Decode(_))));
    }

    #[test]
    fn a_huge_image_is_refused_before_decoding() {
        // A PNG header announcing 100000 × 100000 pixels, with no pixel data at all.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        let err = decode_image(&png).unwrap_err();
        assert!(matches!(err, DecodeError::Dimensions { .. }), "{err}");
    }

    #[test]
    fn only_image_types_are_downloaded() {
        assert!(is_image_type(Some("image/jpeg")));
        assert!(is_image_type(Some("IMAGE/PNG ")));
        assert!(!is_image_type(Some("application/pdf")));
        assert!(!is_image_type(None));
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
