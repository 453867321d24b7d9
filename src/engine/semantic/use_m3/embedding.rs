//! The token embedding table: 512 six-bit codes per piece, Huffman-coded, decoded per row when a
//! text needs it.
//!
//! Each row belongs to one of 17 chunks (its piece id in the original model, modulo 17), with
//! its own affine map `value = code × scale + lo` and its own canonical Huffman code of at most
//! 12 bits, read least-significant bit first. Each row's bits start on a byte boundary. Only the
//! rows of a message's pieces are decoded (about a microsecond each), so the table stays
//! compressed in memory: 15 MB instead of 160 MB of `f32`.

use super::SemanticError;

/// Values per row.
pub(super) const DIM: usize = 512;
/// Chunks of rows sharing a code and an affine map.
pub(super) const CHUNKS: usize = 17;
const SYMBOLS: usize = 64;
const MAX_BITS: u32 = 12;

/// The compressed table.
#[derive(Debug)]
pub(super) struct Embeddings {
    /// Per chunk, `1 << MAX_BITS` entries indexed by the next bits: `symbol | length << 8`.
    decode: Vec<[u16; 1 << MAX_BITS]>,
    chunk: Vec<u8>,
    scale: [f32; CHUNKS],
    lo: [f32; CHUNKS],
    offsets: Vec<u32>,
    bits: Vec<u8>,
}

impl Embeddings {
    pub(super) fn new(
        code_lengths: &[u8],
        chunk: &[u8],
        scale: &[f32],
        lo: &[f32],
        offsets: Vec<u32>,
        bits: &[u8],
    ) -> Result<Self, SemanticError> {
        let invalid = |what: &str| SemanticError::Invalid(format!("embedding table: {what}"));
        let decode = code_lengths.chunks_exact(SYMBOLS).map(decode_table).collect::<Result<Vec<_>, _>>()?;
        if decode.len() != CHUNKS || scale.len() != CHUNKS || lo.len() != CHUNKS {
            return Err(invalid("not 17 chunks"));
        }
        if chunk.iter().any(|&c| usize::from(c) >= CHUNKS) {
            return Err(invalid("a row's chunk is out of range"));
        }
        if offsets.len() != chunk.len() + 1
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets.last().map(|&end| end as usize) != Some(bits.len())
        {
            return Err(invalid("row offsets do not cover the codes"));
        }
        let mut table = Embeddings {
            decode,
            chunk: chunk.to_vec(),
            scale: scale.try_into().map_err(|_| invalid("scales"))?,
            lo: lo.try_into().map_err(|_| invalid("offsets"))?,
            offsets,
            bits: bits.to_vec(),
        };
        // Eight zero bytes after the last row let the reader refill a word at a time.
        table.bits.extend_from_slice(&[0; 8]);
        let mut codes = [0_u8; DIM];
        for row in 0..table.rows() {
            if !table.decode_codes(row, &mut codes) {
                return Err(invalid(&format!("row {row} does not decode to {DIM} codes")));
            }
        }
        Ok(table)
    }

    /// How many rows (pieces).
    pub(super) fn rows(&self) -> usize {
        self.chunk.len()
    }

    /// Writes row `row`'s values into `out`; `row` must be below [`Self::rows`].
    pub(super) fn row(&self, row: usize, out: &mut [f32]) {
        let mut codes = [0_u8; DIM];
        let ok = self.decode_codes(row, &mut codes);
        debug_assert!(ok, "rows are checked at load");
        let c = usize::from(self.chunk[row]);
        let (scale, lo) = (self.scale[c], self.lo[c]);
        for (o, &code) in out.iter_mut().zip(&codes) {
            // Two roundings, not a fused multiply-add: the values the reference computes.
            *o = f32::from(code) * scale + lo;
        }
    }

    /// Decodes row `row`'s codes; false if its bits are not exactly 512 codes.
    fn decode_codes(&self, row: usize, out: &mut [u8; DIM]) -> bool {
        let table = &self.decode[usize::from(self.chunk[row])];
        let (start, end) = (self.offsets[row] as usize, self.offsets[row + 1] as usize);
        let avail_bits = (end - start) * 8;
        let mut pos = start; // next byte to load
        let mut buf: u64 = 0;
        let mut have: u32 = 0; // bits in buf
        let mut used = 0; // bits of the row consumed
        for o in out.iter_mut() {
            if have < MAX_BITS {
                // Past the padding (only a corrupt row gets there), zeros: the row then fails.
                let word =
                    self.bits.get(pos..pos + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
                buf |= word << have;
                let loaded = (63 - have) / 8;
                pos += loaded as usize;
                have += loaded * 8;
            }
            let entry = table[(buf & ((1 << MAX_BITS) - 1)) as usize];
            let len = u32::from(entry >> 8);
            if len == 0 {
                return false;
            }
            *o = entry as u8;
            buf >>= len;
            have -= len;
            used += len as usize;
        }
        used <= avail_bits && avail_bits - used < 8
    }
}

/// The lookup table of one canonical code, from its code lengths (0 = symbol absent).
fn decode_table(lengths: &[u8]) -> Result<[u16; 1 << MAX_BITS], SemanticError> {
    let invalid = || SemanticError::Invalid("embedding table: a Huffman code is malformed".into());
    let mut symbols: Vec<(u8, usize)> =
        lengths.iter().enumerate().filter(|(_, l)| **l > 0).map(|(s, &l)| (l, s)).collect();
    symbols.sort_unstable();
    let mut table = [0_u16; 1 << MAX_BITS];
    let (mut code, mut prev) = (0_u32, 0_u32);
    for (len, symbol) in symbols {
        let len = u32::from(len);
        if len > MAX_BITS {
            return Err(invalid());
        }
        code <<= len - prev;
        prev = len;
        if code >= 1 << len {
            return Err(invalid()); // over-subscribed
        }
        let reversed = code.reverse_bits() >> (32 - len);
        for fill in 0..1_u32 << (MAX_BITS - len) {
            table[(reversed | fill << len) as usize] = symbol as u16 | (len as u16) << 8;
        }
        code += 1;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes codes with the canonical code of `lengths`, as `models/fetch_use.py` does.
    fn encode(lengths: &[u8], codes: &[u8]) -> Vec<u8> {
        let mut order: Vec<(u8, usize)> =
            lengths.iter().enumerate().filter(|(_, l)| **l > 0).map(|(s, &l)| (l, s)).collect();
        order.sort_unstable();
        let mut canon = vec![(0_u32, 0_u32); lengths.len()];
        let (mut code, mut prev) = (0_u32, 0_u32);
        for (len, s) in order {
            code <<= u32::from(len) - prev;
            prev = u32::from(len);
            canon[s] = (code.reverse_bits() >> (32 - u32::from(len)), u32::from(len));
            code += 1;
        }
        let (mut acc, mut n, mut out) = (0_u128, 0_u32, Vec::new());
        for &c in codes {
            let (bits, len) = canon[usize::from(c)];
            acc |= u128::from(bits) << n;
            n += len;
            while n >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                n -= 8;
            }
        }
        if n > 0 {
            out.push(acc as u8);
        }
        out
    }

    #[test]
    fn rows_decode_to_the_values_they_were_coded_from() {
        // Eight symbols of 1 to 6 bits and two of 12: a prefix code with the longest length.
        let mut lengths = vec![0_u8; SYMBOLS];
        for (s, l) in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 12), (63, 12)] {
            lengths[s] = l;
        }
        let all: Vec<u8> = lengths.iter().copied().cycle().take(SYMBOLS * CHUNKS).collect();
        let rows: Vec<Vec<u8>> =
            (0..3).map(|r| (0..DIM).map(|i| [0, 1, 2, 3, 4, 5, 6, 63][(i * 7 + r) % 8]).collect()).collect();
        let mut bits = Vec::new();
        let mut offsets = vec![0];
        for row in &rows {
            bits.extend(encode(&lengths, row));
            offsets.push(bits.len() as u32);
        }
        let scale = [0.5_f32; CHUNKS];
        let lo = [-1.0_f32; CHUNKS];
        let table = Embeddings::new(&all, &[0, 5, 16], &scale, &lo, offsets, &bits).unwrap();
        let mut out = [0.0_f32; DIM];
        for (r, row) in rows.iter().enumerate() {
            table.row(r, &mut out);
            let want: Vec<f32> = row.iter().map(|&c| f32::from(c) * 0.5 - 1.0).collect();
            assert_eq!(out.to_vec(), want);
        }
    }

    #[test]
    fn a_row_with_missing_bits_is_refused_at_load() {
        let mut lengths = [0_u8; SYMBOLS];
        lengths[0] = 1;
        lengths[1] = 1;
        let all: Vec<u8> = lengths.iter().copied().cycle().take(SYMBOLS * CHUNKS).collect();
        let bits = vec![0_u8; DIM / 8 - 1];
        let err =
            Embeddings::new(&all, &[0], &[1.0; CHUNKS], &[0.0; CHUNKS], vec![0, bits.len() as u32], &bits);
        assert!(err.is_err());
    }
}
