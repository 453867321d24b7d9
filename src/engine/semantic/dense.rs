//! The dense index: every entry's vectors in one contiguous matrix, scored against a query
//! by dot product (the vectors are L2-normalised, so it is their cosine).
//!
//! An entry (a key) owns one or more rows — one per question and one for its answer, say —
//! and scores as its best row. `key → rows` is explicit ([`DenseIndex::rows_of`]); adding,
//! replacing or removing a key touches only its rows (and moves the matrix's last row into a
//! freed one), never re-embeds the rest.
//!
//! Rows are stored as `i8` with one `f32` scale per row (`v ≈ code · scale`): a quarter of
//! f32's bytes, and scoring 100k rows is a pass over memory, so a quarter of its time. The
//! query is quantized to `i16` (`±QUERY_MAX`), so its own rounding is negligible; a row's
//! rounding moves a cosine by ~1e-3 (tests hold it under 0.01 of the f32 product). Dot
//! products: [`dot_i8`] with `wide` (`i16x16::dot`, i.e. `pmaddwd`), beside [`dot_i8_scalar`];
//! where the CPU has them, `std::arch` versions of the same instructions on AVX2 or AVX-512
//! (32 dimensions per instruction, a block of rows per call), because the binary is built for
//! baseline x86-64 and `wide` then runs them as SSE2 halves plus emulated sign extensions —
//! compute-bound at a third of the memory's bandwidth. All are held to the same results.
//! Batches of queries run on rayon, and so do the rows of one query on a large index
//! ([`PARALLEL_ROWS`]): one core does not draw the memory's whole bandwidth.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::hash::Hash;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use wide::{i8x16, i16x16, i32x8};

use super::SemanticError;

/// The query's quantization range: `i8 · i16` products summed over 1024 dimensions stay
/// inside `i32`.
const QUERY_MAX: f32 = 8191.0;

/// From this many rows, one query's rows are scored in blocks on rayon's pool.
pub const PARALLEL_ROWS: usize = 32_768;
/// Rows per block when scoring in parallel.
const BLOCK_ROWS: usize = 4_096;

/// A row of the result: the key, its best row's score and that row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'a, K> {
    /// The entry.
    pub key: &'a K,
    /// Its best row's cosine with the query.
    pub score: f32,
    /// That row.
    pub row: usize,
}

/// Entry vectors in one matrix, keyed. See the module doc.
#[derive(Debug, Clone)]
pub struct DenseIndex<K> {
    dim: usize,
    simd: Simd,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// Row → slot of the key owning it.
    owner: Vec<u32>,
    /// Slot → key and its rows; `None` once removed (the slot is then reused).
    slots: Vec<Option<(K, Vec<u32>)>>,
    free: Vec<u32>,
    by_key: FxHashMap<K, u32>,
}

/// A query ready to score: `i16` codes and their scale.
#[derive(Debug, Clone)]
pub struct Query {
    codes: Vec<i16>,
    scale: f32,
}

impl Query {
    /// Quantizes `v`.
    pub fn new(v: &[f32]) -> Query {
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / QUERY_MAX } else { 1.0 };
        let codes = v.iter().map(|x| (x / scale).round() as i16).collect();
        Query { codes, scale }
    }
}

impl<K: Eq + Hash + Clone> DenseIndex<K> {
    /// An empty index of vectors of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        DenseIndex {
            dim,
            simd: Simd::detect(),
            codes: Vec::new(),
            scales: Vec::new(),
            owner: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            by_key: FxHashMap::default(),
        }
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How many rows (vectors).
    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The rows `key` owns, in the order its vectors were given.
    pub fn rows_of(&self, key: &K) -> Option<&[u32]> {
        let slot = *self.by_key.get(key)?;
        self.slots[slot as usize].as_ref().map(|(_, rows)| rows.as_slice())
    }

    /// The key owning `row`.
    pub fn key_of(&self, row: usize) -> Option<&K> {
        let slot = *self.owner.get(row)?;
        self.slots[slot as usize].as_ref().map(|(k, _)| k)
    }

    /// Indexes `vectors` under `key`, replacing what `key` had. Other keys' rows keep their
    /// vectors.
    pub fn upsert(&mut self, key: K, vectors: &[Vec<f32>]) -> Result<(), SemanticError> {
        if let Some(bad) = vectors.iter().find(|v| v.len() != self.dim) {
            return Err(SemanticError::DimensionMismatch { expected: self.dim, found: bad.len() });
        }
        self.remove(&key);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let mut rows = Vec::with_capacity(vectors.len());
        for v in vectors {
            rows.push(self.scales.len() as u32);
            let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            self.codes.extend(v.iter().map(|x| (x / scale).round() as i8));
            self.scales.push(scale);
            self.owner.push(slot);
        }
        self.slots[slot as usize] = Some((key.clone(), rows));
        self.by_key.insert(key, slot);
        Ok(())
    }

    /// Removes `key` and its rows; whether it was there.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(slot) = self.by_key.remove(key) else { return false };
        let Some((_, mut rows)) = self.slots[slot as usize].take() else { return false };
        self.free.push(slot);
        // Highest first: the matrix's last row is never one still to be removed.
        rows.sort_unstable_by(|a, b| b.cmp(a));
        for row in rows {
            self.swap_remove_row(row as usize);
        }
        true
    }

    /// Moves the last row into `row`'s place and drops the last.
    fn swap_remove_row(&mut self, row: usize) {
        let last = self.scales.len() - 1;
        if row != last {
            let d = self.dim;
            self.codes.copy_within(last * d..(last + 1) * d, row * d);
            self.scales[row] = self.scales[last];
            let moved = self.owner[last];
            self.owner[row] = moved;
            if let Some((_, rows)) = self.slots[moved as usize].as_mut() {
                rows.iter_mut().filter(|r| **r as usize == last).for_each(|r| *r = row as u32);
            }
        }
        self.codes.truncate(last * self.dim);
        self.scales.truncate(last);
        self.owner.truncate(last);
    }

    /// Every row's score against `query`, into `out` (resized to [`DenseIndex::rows`]).
    pub fn score_rows(&self, query: &Query, out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.rows(), 0.0);
        if self.rows() < PARALLEL_ROWS {
            score_block(self.simd, &self.codes, &self.scales, query, out);
            return;
        }
        let (dim, simd) = (self.dim, self.simd);
        out.par_chunks_mut(BLOCK_ROWS)
            .zip(self.codes.par_chunks(BLOCK_ROWS * dim))
            .zip(self.scales.par_chunks(BLOCK_ROWS))
            .for_each(|((out, codes), scales)| score_block(simd, codes, scales, query, out));
    }

    /// The `k` keys closest to `query`, best first, each scored as its best row. Exact.
    pub fn top_k(&self, query: &[f32], k: usize) -> Vec<Hit<'_, K>> {
        let q = Query::new(query);
        let mut scores = Vec::with_capacity(self.rows());
        self.score_rows(&q, &mut scores);
        let mut best: Vec<(f32, u32)> = vec![(f32::NEG_INFINITY, u32::MAX); self.slots.len()];
        for (row, (&score, &slot)) in scores.iter().zip(&self.owner).enumerate() {
            let b = &mut best[slot as usize];
            if score > b.0 {
                *b = (score, row as u32);
            }
        }
        // The k best slots in a min-heap: one comparison for most slots.
        let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(k + 1);
        for (slot, &(score, row)) in best.iter().enumerate() {
            if row == u32::MAX || k == 0 {
                continue;
            }
            let ranked = Ranked { score, row, slot: slot as u32 };
            if heap.len() < k {
                heap.push(Reverse(ranked));
            } else if heap.peek().is_some_and(|min| ranked > min.0) {
                heap.pop();
                heap.push(Reverse(ranked));
            }
        }
        let mut ranked: Vec<Ranked> = heap.into_iter().map(|r| r.0).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        ranked
            .into_iter()
            .filter_map(|r| {
                let (key, _) = self.slots[r.slot as usize].as_ref()?;
                Some(Hit { key, score: r.score, row: r.row as usize })
            })
            .collect()
    }

    /// [`DenseIndex::top_k`] for each query, on rayon's pool.
    pub fn top_k_batch(&self, queries: &[Vec<f32>], k: usize) -> Vec<Vec<Hit<'_, K>>>
    where
        K: Sync,
    {
        queries.par_iter().map(|q| self.top_k(q, k)).collect()
    }
}

/// A candidate in `top_k`'s heap: higher score first, then lower row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    score: f32,
    row: u32,
    slot: u32,
}

impl Eq for Ranked {}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then(other.row.cmp(&self.row))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The instructions this CPU offers for the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// AVX-512 BW: 32 dimensions per `vpmaddwd`.
    Avx512,
    /// AVX2: 16 per `vpmaddwd`.
    Avx2,
    /// `wide`, portable.
    Portable,
}

impl Simd {
    /// The best this CPU runs.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") {
                return Simd::Avx512;
            }
            if has!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }

    /// Every level this CPU runs, best first (for tests holding them to one result).
    pub fn available() -> Vec<Simd> {
        let best = Simd::detect();
        [Simd::Avx512, Simd::Avx2, Simd::Portable].into_iter().skip_while(|&l| l != best).collect()
    }
}

/// `out[r] = (rows[r] · query) · scales[r] · query.scale` for the rows in `codes`.
///
/// # Panics
/// If `codes` does not hold `out.len()` rows of the query's dimension, or `scales` one per row.
pub fn score_block(simd: Simd, codes: &[i8], scales: &[f32], query: &Query, out: &mut [f32]) {
    let dim = query.codes.len();
    assert!(codes.len() == out.len() * dim && scales.len() == out.len());
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 && dim.is_multiple_of(32) {
        // SAFETY: `Simd::Avx512` comes from `detect` (or `available`): the CPU has AVX-512 F
        // and BW; the lengths were checked above and the dimension is a multiple of 32.
        unsafe { score_block_avx512(codes, scales, query, out) };
        return;
    }
    for ((row, &s), o) in codes.chunks_exact(dim).zip(scales).zip(out) {
        *o = dot_i8_dispatch(simd, row, &query.codes) as f32 * s * query.scale;
    }
}

/// # Safety
/// The CPU must have AVX-512 F and BW; `codes` holds `out.len()` rows of `query.codes.len()`
/// values, a multiple of 32, and `scales` one per row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn score_block_avx512(codes: &[i8], scales: &[f32], query: &Query, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let dim = query.codes.len();
    for (r, (o, &s)) in out.iter_mut().zip(scales).enumerate() {
        let mut acc = _mm512_setzero_si512();
        let mut i = 0;
        while i < dim {
            // SAFETY: 32 bytes of row r from r · dim + i and 32 `i16`s of the query from i,
            // i + 32 ≤ dim; loadu has no alignment requirement.
            let (c, q) = unsafe {
                (
                    _mm256_loadu_si256(codes.as_ptr().add(r * dim + i).cast()),
                    _mm512_loadu_si512(query.codes.as_ptr().add(i).cast()),
                )
            };
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_cvtepi8_epi16(c), q));
            i += 32;
        }
        *o = _mm512_reduce_add_epi32(acc) as f32 * s * query.scale;
    }
}

/// [`dot_i8`], on AVX2 when the level has it (AVX-512 rows go by [`score_block`]).
#[inline]
pub fn dot_i8_dispatch(simd: Simd, row: &[i8], query: &[i16]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Portable {
        assert_eq!(row.len(), query.len());
        // SAFETY: both x86 levels come from `Simd::detect`, which found AVX2 (AVX-512 BW
        // implies it); the lengths are equal, as required.
        return unsafe { dot_i8_avx2(row, query) };
    }
    let _ = simd;
    dot_i8(row, query)
}

/// # Safety
/// The CPU must have AVX2, and `row` and `query` the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(row: &[i8], query: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let n = row.len() / 16 * 16;
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i < n {
        // SAFETY: 16 bytes of `row` and 16 `i16`s of `query` from `i < n ≤ len`; loadu
        // has no alignment requirement.
        let (r, q) = unsafe {
            (_mm_loadu_si128(row.as_ptr().add(i).cast()), _mm256_loadu_si256(query.as_ptr().add(i).cast()))
        };
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(r), q));
        i += 16;
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` holds 8 i32s, 32 bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    lanes.iter().sum::<i32>() + dot_i8_scalar(&row[n..], &query[n..])
}

/// `Σ row[i] · query[i]`: `i8` widened to `i16`, multiplied and pair-summed into `i32`
/// sixteen at a time (`wide`'s `i16x16::dot`). `row` and `query` have the same length.
#[inline]
pub fn dot_i8(row: &[i8], query: &[i16]) -> i32 {
    debug_assert_eq!(row.len(), query.len());
    let mut acc = i32x8::ZERO;
    let (rc, qc) = (row.chunks_exact(16), query.chunks_exact(16));
    let (rt, qt) = (rc.remainder(), qc.remainder());
    for (r, q) in rc.zip(qc) {
        let r: [i8; 16] = r.try_into().unwrap_or([0; 16]);
        let q: [i16; 16] = q.try_into().unwrap_or([0; 16]);
        acc += i16x16::from_i8x16(i8x16::new(r)).dot(i16x16::new(q));
    }
    acc.reduce_add() + dot_i8_scalar(rt, qt)
}

/// The reference for [`dot_i8`].
pub fn dot_i8_scalar(row: &[i8], query: &[i16]) -> i32 {
    row.iter().zip(query).map(|(&a, &b)| a as i32 * b as i32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        // A deterministic pseudo-random unit vector.
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        v
    }

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    proptest! {
        #[test]
        fn the_vectorised_dot_equals_the_scalar_one(
            pairs in prop::collection::vec((any::<i8>(), -8191i16..=8191), 0..400),
        ) {
            let row: Vec<i8> = pairs.iter().map(|p| p.0).collect();
            let q: Vec<i16> = pairs.iter().map(|p| p.1).collect();
            prop_assert_eq!(dot_i8(&row, &q), dot_i8_scalar(&row, &q));
            for simd in Simd::available() {
                prop_assert_eq!(dot_i8_dispatch(simd, &row, &q), dot_i8_scalar(&row, &q));
            }
        }

        #[test]
        fn every_level_scores_a_block_of_rows_alike(rows in 1usize..40, seed in 0u64..1000) {
            let dim = 96;
            let mut index = DenseIndex::new(dim);
            for r in 0..rows {
                index.upsert(r, &[unit(seed * 100 + r as u64, dim)]).unwrap();
            }
            let q = Query::new(&unit(seed + 7, dim));
            let mut want = vec![0.0; rows];
            score_block(Simd::Portable, &index.codes, &index.scales, &q, &mut want);
            for simd in Simd::available() {
                let mut got = vec![0.0; rows];
                score_block(simd, &index.codes, &index.scales, &q, &mut got);
                prop_assert_eq!(&got, &want, "{:?}", simd);
            }
        }

        #[test]
        fn quantized_scores_stay_within_a_hundredth_of_the_exact_cosine(a in 0u64..1000, b in 0u64..1000) {
            let (x, y) = (unit(a, 384), unit(b + 5000, 384));
            let mut index = DenseIndex::new(384);
            index.upsert("x", std::slice::from_ref(&x)).unwrap();
            let hit = index.top_k(&y, 1)[0];
            prop_assert!((hit.score - cos(&x, &y)).abs() < 0.01, "{} vs {}", hit.score, cos(&x, &y));
        }
    }

    #[test]
    fn an_entry_scores_as_its_best_row_and_top_k_is_ordered() {
        let mut index = DenseIndex::new(64);
        let q = unit(1, 64);
        let near: Vec<f32> = q.iter().zip(unit(2, 64)).map(|(a, b)| a + 0.3 * b).collect();
        index.upsert("a", &[unit(3, 64), near.clone()]).unwrap();
        index.upsert("b", &[unit(4, 64)]).unwrap();
        index.upsert("c", std::slice::from_ref(&q)).unwrap();
        let hits = index.top_k(&q, 2);
        assert_eq!(hits.iter().map(|h| *h.key).collect::<Vec<_>>(), ["c", "a"]);
        assert_eq!(hits[1].row, 1, "a's second row is its best");
        assert!(hits[0].score > 0.99 && hits[1].score < hits[0].score);
        assert_eq!(index.top_k(&q, 10).len(), 3);
    }

    #[test]
    fn replacing_and_removing_an_entry_leaves_the_others_untouched() {
        let mut index = DenseIndex::new(32);
        for i in 0..10u64 {
            index.upsert(i, &[unit(i, 32), unit(i + 100, 32)]).unwrap();
        }
        let before: Vec<(u64, f32)> = (0..10).map(|i| (i, index.top_k(&unit(i, 32), 1)[0].score)).collect();
        assert!(index.remove(&3));
        assert!(!index.remove(&3));
        index.upsert(7, &[unit(70, 32)]).unwrap();
        assert_eq!((index.len(), index.rows()), (9, 17));
        for (i, score) in before {
            if i == 3 || i == 7 {
                continue;
            }
            let hit = index.top_k(&unit(i, 32), 1)[0];
            assert_eq!((*hit.key, hit.score), (i, score), "entry {i}");
        }
        assert_eq!(*index.top_k(&unit(70, 32), 1)[0].key, 7);
        // key → rows and row → key agree after the moves.
        for i in (0..10u64).filter(|&i| i != 3) {
            for &row in index.rows_of(&i).unwrap() {
                assert_eq!(index.key_of(row as usize), Some(&i));
            }
        }
    }

    #[test]
    fn a_vector_of_the_wrong_dimension_is_refused() {
        let mut index = DenseIndex::new(8);
        let err = index.upsert("x", &[vec![0.0; 7]]).unwrap_err();
        assert!(matches!(err, SemanticError::DimensionMismatch { expected: 8, found: 7 }));
        assert!(index.is_empty());
    }

    #[test]
    fn a_large_index_scored_in_parallel_blocks_scores_as_one_pass() {
        let dim = 32;
        let rows = PARALLEL_ROWS + BLOCK_ROWS / 2 + 3;
        let mut index = DenseIndex::new(dim);
        for r in 0..rows as u64 {
            index.upsert(r, &[unit(r, dim)]).unwrap();
        }
        let q = Query::new(&unit(rows as u64 / 3, dim));
        let mut parallel = Vec::new();
        index.score_rows(&q, &mut parallel);
        let mut one_pass = vec![0.0; rows];
        score_block(Simd::Portable, &index.codes, &index.scales, &q, &mut one_pass);
        assert_eq!(parallel, one_pass);
        assert_eq!(*index.top_k(&unit(rows as u64 / 3, dim), 1)[0].key, rows as u64 / 3);
    }

    #[test]
    fn a_batch_gives_what_each_query_gives_alone() {
        let mut index = DenseIndex::new(16);
        for i in 0..50u64 {
            index.upsert(i, &[unit(i, 16)]).unwrap();
        }
        let queries: Vec<Vec<f32>> = (0..8).map(|i| unit(i * 7, 16)).collect();
        let batch = index.top_k_batch(&queries, 3);
        for (q, hits) in queries.iter().zip(&batch) {
            assert_eq!(&index.top_k(q, 3), hits);
        }
    }
}
