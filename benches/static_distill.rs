//! A static distillation of multilingual-e5-small, measured against the encoder itself
//! (the model2vec recipe): every token of the vocabulary embedded once, alone, by the
//! encoder; the token vectors centred and projected on their principal components (PCA to
//! 256 and 128 dimensions, and without PCA); a text's vector is the frequency-weighted mean
//! of its tokens' vectors (weight `ln(2 + rank)`, the vocabulary's order standing for
//! frequency rank).
//!
//! Prints, for the shipped set and the IT-desk set, the ranking top-1 (the best entry,
//! answering every in-scope message) of each static variant and of the full encoder scored
//! the same way (0.7 × passage + 0.3 × best question), and the time per message of each.
//!
//! `cargo bench --bench static_distill` (embedding the vocabulary takes minutes).

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use wabot::engine::semantic::{E5, Role, SentenceEncoder};
use wabot::engine::{Engine, FaqEntry};
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::knowledge::semantic_models;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Static {
    vectors: Vec<Vec<f32>>,
}

impl Static {
    /// The token vectors centred and projected on their `dims` principal components.
    fn pca(vectors: &[Vec<f32>], dims: usize) -> Static {
        let d = vectors[0].len();
        let n = vectors.len() as f64;
        let mut mean = vec![0.0f64; d];
        for v in vectors {
            mean.iter_mut().zip(v).for_each(|(m, x)| *m += f64::from(*x) / n);
        }
        let cov = vectors
            .par_iter()
            .fold(
                || nalgebra::DMatrix::<f64>::zeros(d, d),
                |mut acc, v| {
                    let c = nalgebra::DVector::from_iterator(
                        d,
                        v.iter().zip(&mean).map(|(x, m)| f64::from(*x) - m),
                    );
                    acc.ger(1.0 / n, &c, &c, 1.0);
                    acc
                },
            )
            .reduce(|| nalgebra::DMatrix::<f64>::zeros(d, d), |a, b| a + b);
        let eigen = nalgebra::SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let kept: f64 = order[..dims].iter().map(|&i| eigen.eigenvalues[i]).sum::<f64>()
            / eigen.eigenvalues.iter().sum::<f64>();
        eprintln!("PCA to {dims} dimensions keeps {:.1}% of the variance", kept * 100.0);
        let basis: Vec<Vec<f64>> =
            order[..dims].iter().map(|&i| eigen.eigenvectors.column(i).iter().copied().collect()).collect();
        let vectors = vectors
            .par_iter()
            .map(|v| {
                let c: Vec<f64> = v.iter().zip(&mean).map(|(x, m)| f64::from(*x) - m).collect();
                basis.iter().map(|b| b.iter().zip(&c).map(|(x, y)| x * y).sum::<f64>() as f32).collect()
            })
            .collect();
        Static { vectors }
    }

    fn embed(&self, e5: &E5, text: &str) -> Vec<f32> {
        let ids = e5.tokenizer().encode(text);
        let mut v = vec![0.0f32; self.vectors[0].len()];
        for &id in &ids {
            let w = (2.0 + id as f32).ln();
            v.iter_mut().zip(&self.vectors[id as usize]).for_each(|(a, b)| *a += w * b);
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct Rows {
    passage: Vec<f32>,
    questions: Vec<Vec<f32>>,
}

fn score(rows: &Rows, q: &[f32]) -> f32 {
    let best = rows.questions.iter().map(|r| dot(r, q)).fold(f32::NEG_INFINITY, f32::max);
    0.7 * dot(&rows.passage, q) + 0.3 * best
}

fn top1(entries: &[FaqEntry], rows: &[Rows], q: &[f32]) -> String {
    let i = (0..rows.len()).max_by(|&a, &b| score(&rows[a], q).total_cmp(&score(&rows[b], q))).unwrap_or(0);
    entries[i].id.clone()
}

fn main() {
    let e5 = semantic_models::load_e5(&semantic_models::default_dir()).expect("model");
    let vocab = e5.tokenizer().len();
    let t = Instant::now();
    let specials = e5.tokens("", Role::Query);
    let (bos, eos) = (specials[0], specials[specials.len() - 1]);
    let vectors: Vec<Vec<f32>> =
        (0..vocab as u32).into_par_iter().map(|id| e5.embed_tokens(&[bos, id, eos])).collect();
    eprintln!("static vectors for {vocab} tokens in {:.0} s", t.elapsed().as_secs_f64());
    let variants = [
        ("static, PCA 256", Static::pca(&vectors, 256)),
        ("static, PCA 128", Static::pca(&vectors, 128)),
        ("static, no PCA", Static { vectors }),
    ];

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, corpus, queries) in [
        ("shipped", None, "tests/data/quality.jsonl"),
        ("IT desk", Some("tests/data/itdesk/faq"), "tests/data/itdesk/queries.jsonl"),
    ] {
        let kb = match corpus {
            Some(c) => KnowledgeBase::load(&root.join(c)).expect("corpus"),
            None => KnowledgeBase::embedded().expect("corpus"),
        };
        let entries = kb.entries().to_vec();
        let engine = Engine::build(&entries, kb.lexicon());
        let set = wabot::eval::load_queries(&root.join(queries), &engine).expect("queries");
        let in_scope: Vec<_> = set.iter().filter(|q| q.expected.is_some()).collect();
        let topic = |id: &str| entries.iter().find(|e| e.id == id).map(|e| e.topic_key().to_owned());
        let passage = |e: &FaqEntry| format!("{} {}", e.questions.join(" "), e.answer);

        let static_rows: Vec<Vec<Rows>> = variants
            .iter()
            .map(|(_, st)| {
                entries
                    .iter()
                    .map(|e| Rows {
                        passage: st.embed(&e5, &passage(e)),
                        questions: e.questions.iter().map(|q| st.embed(&e5, q)).collect(),
                    })
                    .collect()
            })
            .collect();
        let full_rows: Vec<Rows> = entries
            .par_iter()
            .map(|e| Rows {
                passage: e5.embed(&passage(e), Role::Passage),
                questions: e.questions.iter().map(|q| e5.embed(q, Role::Query)).collect(),
            })
            .collect();

        let runs = variants
            .iter()
            .zip(&static_rows)
            .map(|((label, st), rows)| (*label, rows, Some(st)))
            .chain([("e5", &full_rows, None)]);
        for (label, rows, st) in runs {
            let t = Instant::now();
            let right = in_scope
                .iter()
                .filter(|q| {
                    let v = match st {
                        Some(st) => st.embed(&e5, &q.q),
                        None => e5.embed(&q.q, Role::Query),
                    };
                    let got = top1(&entries, rows, &v);
                    topic(&got) == q.expected.as_deref().and_then(topic)
                })
                .count();
            let per = t.elapsed().as_secs_f64() / in_scope.len() as f64;
            eprintln!(
                "{name}: {label} ranking top-1 {:.3} ({right}/{}), {:.1} µs per message (embed + score {} entries)",
                right as f64 / in_scope.len() as f64,
                in_scope.len(),
                per * 1e6,
                entries.len()
            );
        }
    }
}
