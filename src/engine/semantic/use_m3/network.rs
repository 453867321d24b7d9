//! USE-m3's network after the token embeddings: a CNN over n-grams, a mean, a deep averaging
//! network.
//!
//! For a text of `n` tokens with embeddings `E` (n × 512):
//! 1. `X = LayerNorm(E·P + p)` (n × 768): one projection for the three branches, normalised
//!    over all 768 columns together.
//! 2. Each branch (n-gram order k ∈ {2, 3, 5}, left context 0, 1, 2) takes its 256 columns `x`
//!    and applies two residual convolutions over windows of k tokens (zeros outside the text):
//!    `h = relu(win(x)·W1 + b1) + x`, `c = relu(win(h)·W2 + b2) + h`.
//! 3. `F = LayerNorm([E | c2 | c3 | c5])` (n × 1280), summed over the tokens, then
//!    `m = (ΣF·W + n·b) / √n`: the sum commutes with the projection, so that product is one row.
//! 4. `y0 = relu(m·D0)`, `y1 = relu(m·P1 + y0·D1)`, `y2 = relu(y1·D2)`,
//!    `z = tanh(y1·P3 + y2·D3)`, returned L2-normalised.
//!
//! Products go through `rten-gemm` with the weight matrices packed once at load.

use std::ops::Range;

use rten_gemm::{BiasVector, GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix};
use rten_tensor::NdTensorView;

use super::SemanticError;
use super::embedding::DIM;
use super::format::Sections;

const BRANCH: usize = 256;
const BRANCHES: [(usize, usize); 3] = [(2, 0), (3, 1), (5, 2)];
/// Features per token: its embedding and the three branches' outputs.
pub(super) const FEATURES: usize = DIM + 3 * BRANCH;
/// How far a token's features reach on each side.
pub(super) const REACH: usize = 4;
const HIDDEN: usize = 320;

/// A weight matrix `k × n`, packed for the GEMM kernel.
struct Linear {
    packed: PackedBMatrix<f32>,
    k: usize,
    n: usize,
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Linear({} × {})", self.k, self.n)
    }
}

#[derive(Debug)]
struct Branch {
    order: usize,
    left: usize,
    w1: Linear,
    b1: Vec<f32>,
    w2: Linear,
    b2: Vec<f32>,
}

thread_local! {
    // An executor is not `Send`; matrices packed by one are read by any other with the same
    // kernel, and every executor of a machine picks the same.
    static GEMM: GemmExecutor<f32> = GemmExecutor::default();
}

/// The weights after the embedding table.
pub(super) struct Network {
    kernel: String,
    proj: Linear,
    proj_b: Vec<f32>,
    proj_g: Vec<f32>,
    proj_beta: Vec<f32>,
    branches: Vec<Branch>,
    feat_g: Vec<f32>,
    feat_beta: Vec<f32>,
    pool: Linear,
    pool_b: Vec<f32>,
    d0: Linear,
    p1: Linear,
    d1: Linear,
    d2: Linear,
    p3: Linear,
    d3: Linear,
    eps: f32,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("kernel", &self.kernel).finish_non_exhaustive()
    }
}

impl Network {
    pub(super) fn new(s: &Sections<'_>) -> Result<Self, SemanticError> {
        let gemm = GemmExecutor::<f32>::default();
        let linear = |name: &str, k: usize, n: usize| -> Result<Linear, SemanticError> {
            let w = s.f32s(name, &[k, n])?;
            Ok(Linear { packed: gemm.prepack_b(NdTensorView::from_data([k, n], &w[..])), k, n })
        };
        let vector = |name: &str, n: usize| s.f32s(name, &[n]);
        let branches = BRANCHES
            .iter()
            .map(|&(order, left)| {
                Ok(Branch {
                    order,
                    left,
                    w1: linear(&format!("cnn{order}.w1"), order * BRANCH, BRANCH)?,
                    b1: vector(&format!("cnn{order}.b1"), BRANCH)?,
                    w2: linear(&format!("cnn{order}.w2"), order * BRANCH, BRANCH)?,
                    b2: vector(&format!("cnn{order}.b2"), BRANCH)?,
                })
            })
            .collect::<Result<Vec<_>, SemanticError>>()?;
        Ok(Network {
            proj: linear("proj.w", DIM, 3 * BRANCH)?,
            proj_b: vector("proj.b", 3 * BRANCH)?,
            proj_g: vector("proj.ln_g", 3 * BRANCH)?,
            proj_beta: vector("proj.ln_b", 3 * BRANCH)?,
            branches,
            feat_g: vector("feat.ln_g", FEATURES)?,
            feat_beta: vector("feat.ln_b", FEATURES)?,
            pool: linear("pool.w", FEATURES, DIM)?,
            pool_b: vector("pool.b", DIM)?,
            d0: linear("dnn.d0", DIM, HIDDEN)?,
            p1: linear("dnn.p1", DIM, HIDDEN)?,
            d1: linear("dnn.d1", HIDDEN, HIDDEN)?,
            d2: linear("dnn.d2", HIDDEN, DIM)?,
            p3: linear("dnn.p3", HIDDEN, DIM)?,
            d3: linear("dnn.d3", DIM, DIM)?,
            eps: vector("ln.eps", 1)?[0],
            kernel: gemm.kernel_name().to_owned(),
        })
    }

    /// `out = a · w (+ bias) (+ out if accumulate)`, `a` being `rows × w.k`.
    fn matmul(
        &self,
        a: &[f32],
        rows: usize,
        w: &Linear,
        bias: Option<&[f32]>,
        out: &mut [f32],
        accumulate: bool,
    ) {
        debug_assert_eq!(a.len(), rows * w.k);
        debug_assert_eq!(out.len(), rows * w.n);
        let opts = GemmOptions {
            bias: bias.map(BiasVector::Row),
            beta: if accumulate { 1.0 } else { 0.0 },
            ..GemmOptions::default()
        };
        let a = NdTensorView::from_data([rows, w.k], a);
        // Shapes are fixed by the weights checked at load and the buffers sized from them.
        GEMM.with(|gemm| gemm.gemm(out, GemmInputA::Unpacked(a), GemmInputB::Packed(&w.packed), opts))
            .expect("GEMM shapes are consistent");
    }

    /// Steps 1–3 up to the sum, for a run of `n` consecutive tokens of a text with embeddings
    /// `emb` (`n × 512`): adds the normalised features of the tokens in `keep` to `sum`.
    ///
    /// A token's features depend on the tokens up to 4 places away (two convolutions of
    /// windows reaching 2 places), so a run that holds 4 more tokens on each side of `keep`
    /// (or the text's start or end) gives them exactly as the whole text would.
    pub(super) fn add_token_features(&self, emb: &[f32], n: usize, keep: Range<usize>, sum: &mut [f32]) {
        let mut x = vec![0.0; n * 3 * BRANCH];
        self.matmul(emb, n, &self.proj, Some(&self.proj_b), &mut x, false);
        for row in x.chunks_exact_mut(3 * BRANCH) {
            layer_norm(row, &self.proj_g, &self.proj_beta, self.eps);
        }

        let mut feats = vec![0.0; n * FEATURES];
        for (row, e) in feats.chunks_exact_mut(FEATURES).zip(emb.chunks_exact(DIM)) {
            row[..DIM].copy_from_slice(e);
        }
        let mut xs = vec![0.0; n * BRANCH];
        let mut h = vec![0.0; n * BRANCH];
        let mut c = vec![0.0; n * BRANCH];
        let mut windows = Vec::new();
        for (i, b) in self.branches.iter().enumerate() {
            for (dst, src) in xs.chunks_exact_mut(BRANCH).zip(x.chunks_exact(3 * BRANCH)) {
                dst.copy_from_slice(&src[i * BRANCH..(i + 1) * BRANCH]);
            }
            window(&xs, n, b.order, b.left, &mut windows);
            self.matmul(&windows, n, &b.w1, Some(&b.b1), &mut h, false);
            relu_add(&mut h, &xs);
            window(&h, n, b.order, b.left, &mut windows);
            self.matmul(&windows, n, &b.w2, Some(&b.b2), &mut c, false);
            relu_add(&mut c, &h);
            let at = DIM + i * BRANCH;
            for (row, src) in feats.chunks_exact_mut(FEATURES).zip(c.chunks_exact(BRANCH)) {
                row[at..at + BRANCH].copy_from_slice(src);
            }
        }
        for row in feats.chunks_exact_mut(FEATURES).take(keep.end).skip(keep.start) {
            layer_norm(row, &self.feat_g, &self.feat_beta, self.eps);
            sum.iter_mut().zip(row.iter()).for_each(|(s, v)| *s += v);
        }
    }

    /// Step 3's projection and step 4: the L2-normalised vector of a text of `n` tokens whose
    /// features sum to `sum`.
    pub(super) fn sentence(&self, sum: &[f32], n: usize) -> Vec<f32> {
        let len = n as f32;
        let mut m = self.pool_b.iter().map(|b| len * b).collect::<Vec<f32>>();
        self.matmul(sum, 1, &self.pool, None, &mut m, true);
        let inv = 1.0 / len.sqrt();
        m.iter_mut().for_each(|v| *v *= inv);

        let mut y0 = vec![0.0; HIDDEN];
        self.matmul(&m, 1, &self.d0, None, &mut y0, false);
        relu(&mut y0);
        let mut y1 = vec![0.0; HIDDEN];
        self.matmul(&m, 1, &self.p1, None, &mut y1, false);
        self.matmul(&y0, 1, &self.d1, None, &mut y1, true);
        relu(&mut y1);
        let mut y2 = vec![0.0; DIM];
        self.matmul(&y1, 1, &self.d2, None, &mut y2, false);
        relu(&mut y2);
        let mut z = vec![0.0; DIM];
        self.matmul(&y1, 1, &self.p3, None, &mut z, false);
        self.matmul(&y2, 1, &self.d3, None, &mut z, true);
        z.iter_mut().for_each(|v| *v = v.tanh());
        let norm = z.iter().map(|v| v * v).sum::<f32>().max(self.eps).sqrt();
        z.iter_mut().for_each(|v| *v /= norm);
        z
    }
}

/// Row `t` of the result is the `order` rows of `x` from `t - left`, zeros outside `0..n`.
fn window(x: &[f32], n: usize, order: usize, left: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(n * order * BRANCH, 0.0);
    for (t, row) in out.chunks_exact_mut(order * BRANCH).enumerate() {
        for (j, slot) in row.chunks_exact_mut(BRANCH).enumerate() {
            if let Some(src) = (t + j).checked_sub(left).filter(|&s| s < n) {
                slot.copy_from_slice(&x[src * BRANCH..(src + 1) * BRANCH]);
            }
        }
    }
}

fn relu(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = x.max(0.0));
}

/// `v = relu(v) + residual`.
fn relu_add(v: &mut [f32], residual: &[f32]) {
    v.iter_mut().zip(residual).for_each(|(x, r)| *x = x.max(0.0) + r);
}

/// Normalises `row` to zero mean and unit variance, then scales by `g` and shifts by `b`.
fn layer_norm(row: &mut [f32], g: &[f32], b: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    row.iter_mut().for_each(|v| *v -= mean);
    let var = row.iter().map(|v| v * v).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(g).zip(b) {
        *v = *v * inv * g + b;
    }
}
