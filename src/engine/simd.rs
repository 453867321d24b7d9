//! The scoring kernel: the dot product of a unit's sparse vector with the query held as a
//! dense vector over the vocabulary.
//!
//! A unit's weights are contiguous, so they load eight at a time into a `wide::f32x8`; the
//! query's weights are gathered at the unit's term ids. [`dot_scalar`] is the reference the
//! same tests hold [`dot`] to. Both are safe code: an out-of-range term id panics rather
//! than reading out of bounds (the index never produces one).

use wide::f32x8;

/// `Σ weights[i] · dense[indices[i]]`, vectorised.
#[inline]
pub fn dot(indices: &[u32], weights: &[f32], dense: &[f32]) -> f32 {
    debug_assert_eq!(indices.len(), weights.len());
    let chunks = indices.len() / 8;
    let mut acc = f32x8::ZERO;
    for c in 0..chunks {
        let i = &indices[c * 8..c * 8 + 8];
        let w: [f32; 8] = weights[c * 8..c * 8 + 8].try_into().unwrap_or([0.0; 8]);
        let q = [
            dense[i[0] as usize],
            dense[i[1] as usize],
            dense[i[2] as usize],
            dense[i[3] as usize],
            dense[i[4] as usize],
            dense[i[5] as usize],
            dense[i[6] as usize],
            dense[i[7] as usize],
        ];
        acc = f32x8::from(w).mul_add(f32x8::from(q), acc);
    }
    let mut sum = acc.reduce_add();
    for (&i, &w) in indices[chunks * 8..].iter().zip(&weights[chunks * 8..]) {
        sum += w * dense[i as usize];
    }
    sum
}

/// `Σ weights[i] · dense[indices[i]]`, one term at a time: the reference for [`dot`].
pub fn dot_scalar(indices: &[u32], weights: &[f32], dense: &[f32]) -> f32 {
    indices.iter().zip(weights).map(|(&i, &w)| w * dense[i as usize]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_and_long_vectors_match_the_reference() {
        let dense: Vec<f32> = (0..64).map(|i| i as f32 * 0.25).collect();
        for len in [0, 1, 7, 8, 9, 16, 23, 40] {
            let indices: Vec<u32> = (0..len).map(|i| (i * 7 % 64) as u32).collect();
            let weights: Vec<f32> = (0..len).map(|i| 1.0 / (i + 1) as f32).collect();
            let (a, b) = (dot(&indices, &weights, &dense), dot_scalar(&indices, &weights, &dense));
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{len}: {a} vs {b}");
        }
    }

    proptest! {
        #[test]
        fn the_vectorised_dot_equals_the_scalar_one(
            dense in prop::collection::vec(-1.0f32..1.0, 1..300),
            pairs in prop::collection::vec((any::<u32>(), -1.0f32..1.0), 0..100),
        ) {
            let indices: Vec<u32> = pairs.iter().map(|(i, _)| i % dense.len() as u32).collect();
            let weights: Vec<f32> = pairs.iter().map(|(_, w)| *w).collect();
            let (a, b) = (dot(&indices, &weights, &dense), dot_scalar(&indices, &weights, &dense));
            prop_assert!((a - b).abs() <= 1e-4, "{} vs {}", a, b);
        }
    }
}
