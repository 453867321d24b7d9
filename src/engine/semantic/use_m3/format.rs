//! The model file's container: a table of named sections, each a typed array.
//!
//! ```text
//! magic "WBUSEM3\0" | version u32 | section count u32 | table length u32 | table | padding to 8
//! table entry: name length u8, name, dtype u8, ndim u8, dims u32 × ndim, offset u64, length u64
//! data: the sections, each at its offset from the end of the padded header, little-endian
//! ```
//! `models/fetch_use.py` writes it; everything is checked here before use, so a file cut short
//! or edited by hand is refused with the name of the section at fault.

use rustc_hash::FxHashMap;

use super::SemanticError;

/// The format's name in errors.
pub(super) const FORMAT: &str = "USE-m3";

/// The first eight bytes.
pub(super) const MAGIC: &[u8; 8] = b"WBUSEM3\0";
/// The version this build reads.
pub(super) const VERSION: u32 = 1;

/// Element types of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dtype {
    Bytes,
    F32,
    F16,
    U32,
    U8,
}

impl Dtype {
    fn from_tag(tag: u8) -> Option<Dtype> {
        Some(match tag {
            0 => Dtype::Bytes,
            1 => Dtype::F32,
            2 => Dtype::F16,
            3 => Dtype::U32,
            4 => Dtype::U8,
            _ => return None,
        })
    }

    fn width(self) -> usize {
        match self {
            Dtype::Bytes | Dtype::U8 => 1,
            Dtype::F16 => 2,
            Dtype::F32 | Dtype::U32 => 4,
        }
    }
}

/// One section: its type, shape and bytes.
#[derive(Debug)]
pub(super) struct Section<'a> {
    dtype: Dtype,
    dims: Vec<usize>,
    data: &'a [u8],
}

/// The sections of a model file, by name.
#[derive(Debug)]
pub(super) struct Sections<'a> {
    by_name: FxHashMap<&'a str, Section<'a>>,
}

/// A little-endian reader over the header.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SemanticError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(SemanticError::Truncated { what })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, SemanticError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SemanticError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, SemanticError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
}

impl<'a> Sections<'a> {
    /// Reads the header and finds every section's bytes.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, SemanticError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8, "the magic number")? != MAGIC {
            return Err(SemanticError::BadMagic { format: FORMAT });
        }
        let version = r.u32("the version")?;
        if version != VERSION {
            return Err(SemanticError::UnsupportedVersion {
                format: FORMAT,
                found: version,
                supported: VERSION,
            });
        }
        let count = r.u32("the section count")?;
        let table_len = r.u32("the section table length")? as usize;
        let table_end = r.pos + table_len;
        let data_start = table_end.next_multiple_of(8);
        let data = bytes.get(data_start..).ok_or(SemanticError::Truncated { what: "the section table" })?;
        let mut by_name = FxHashMap::default();
        for _ in 0..count {
            let name_len = r.u8("a section name")? as usize;
            let name = std::str::from_utf8(r.take(name_len, "a section name")?)
                .map_err(|_| SemanticError::Invalid("a section name is not UTF-8".into()))?;
            let dtype = Dtype::from_tag(r.u8("a section type")?)
                .ok_or_else(|| SemanticError::Invalid(format!("section {name}: unknown type")))?;
            let ndim = r.u8("a section shape")?;
            let dims = (0..ndim)
                .map(|_| r.u32("a section shape").map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let offset = r.u64("a section offset")?;
            let len = r.u64("a section length")?;
            let want = dims.iter().try_fold(dtype.width(), |acc, &d| acc.checked_mul(d));
            if want != Some(len as usize) {
                return Err(SemanticError::Invalid(format!(
                    "section {name}: {len} bytes for shape {dims:?}"
                )));
            }
            let range = usize::try_from(offset)
                .ok()
                .and_then(|o| Some(o..o.checked_add(usize::try_from(len).ok()?)?));
            let section = range
                .and_then(|range| data.get(range))
                .ok_or(SemanticError::Truncated { what: "a section" })?;
            by_name.insert(name, Section { dtype, dims, data: section });
        }
        if r.pos != table_end {
            return Err(SemanticError::Invalid(
                "the section table's length does not match its entries".into(),
            ));
        }
        Ok(Sections { by_name })
    }

    fn get(&self, name: &str, dtype: Dtype) -> Result<&Section<'a>, SemanticError> {
        let section =
            self.by_name.get(name).ok_or_else(|| SemanticError::Invalid(format!("no section {name}")))?;
        if section.dtype != dtype && !(dtype == Dtype::F32 && section.dtype == Dtype::F16) {
            return Err(SemanticError::Invalid(format!(
                "section {name} has type {:?}, not {dtype:?}",
                section.dtype
            )));
        }
        Ok(section)
    }

    fn shaped(&self, name: &str, dtype: Dtype, dims: &[usize]) -> Result<&Section<'a>, SemanticError> {
        let section = self.get(name, dtype)?;
        if section.dims != dims {
            return Err(SemanticError::Invalid(format!(
                "section {name} has shape {:?}, not {dims:?}",
                section.dims
            )));
        }
        Ok(section)
    }

    /// A byte section of any length.
    pub(super) fn bytes(&self, name: &str) -> Result<&'a [u8], SemanticError> {
        Ok(self.get(name, Dtype::Bytes)?.data)
    }

    /// A `u8` array of shape `dims`.
    pub(super) fn u8s(&self, name: &str, dims: &[usize]) -> Result<&'a [u8], SemanticError> {
        Ok(self.shaped(name, Dtype::U8, dims)?.data)
    }

    /// A `u32` array of shape `dims`.
    pub(super) fn u32s(&self, name: &str, dims: &[usize]) -> Result<Vec<u32>, SemanticError> {
        let data = self.shaped(name, Dtype::U32, dims)?.data;
        Ok(data.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// An `f32` array of shape `dims`, stored as `f32` or `f16`.
    pub(super) fn f32s(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>, SemanticError> {
        let section = self.shaped(name, Dtype::F32, dims)?;
        Ok(match section.dtype {
            Dtype::F16 => {
                section.data.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect()
            }
            _ => section.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        })
    }

    /// The length of a one-dimensional section.
    pub(super) fn len_of(&self, name: &str) -> Result<usize, SemanticError> {
        let section =
            self.by_name.get(name).ok_or_else(|| SemanticError::Invalid(format!("no section {name}")))?;
        match section.dims[..] {
            [len] => Ok(len),
            _ => Err(SemanticError::Invalid(format!("section {name} is not one-dimensional"))),
        }
    }
}

/// An IEEE 754 half float, widened exactly.
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        // Subnormal: frac × 2^-24, exact in f32.
        (0, _) => {
            let magnitude = frac as f32 * f32::powi(2.0, -24);
            return if sign == 0 { magnitude } else { -magnitude };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_widen_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x8001), -5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn a_file_without_the_magic_number_is_refused() {
        assert!(matches!(Sections::parse(b"PK\x03\x04 not a model"), Err(SemanticError::BadMagic { .. })));
    }

    #[test]
    fn a_header_cut_short_names_what_is_missing() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        let err = Sections::parse(&bytes).unwrap_err();
        assert!(matches!(err, SemanticError::Truncated { what: "the section count" }), "{err}");
    }
}
