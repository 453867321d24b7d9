//! The tutorial's matcher, ported faithfully: the yardstick the engine is measured against.
//!
//! The Python tutorial answers each message by refitting scikit-learn's `TfidfVectorizer()`
//! — defaults throughout — on every FAQ question plus the message, then returning the
//! question with the highest cosine similarity to the message. Everything is redone per
//! message; that is the cost this module reproduces, so nothing here is cached or skipped:
//!
//! ```text
//! tokens(d)   = lowercase(d), every match of (?u)\b\w\w+\b     (no stop words, no stemming)
//! idf(t)      = ln((1 + n) / (1 + df(t))) + 1                  (smooth_idf, n = questions + 1)
//! v(d)[t]     = count(t in d) · idf(t), then L2-normalised      (raw tf, norm="l2")
//! answer      = argmax over questions q of v(q) · v(message)   (first index on ties)
//! ```

use std::collections::HashMap;

/// Refits TF-IDF on `questions` plus `query` and returns the index of the question most
/// similar to `query` with its cosine. Like numpy's `argmax`, ties and an all-zero row go to
/// the first question; `(0, 0.0)` when nothing is shared.
///
/// # Panics
/// When `questions` is empty (the tutorial's `argmax` fails too).
pub fn refit_and_match(questions: &[String], query: &str) -> (usize, f32) {
    assert!(!questions.is_empty(), "no question to match against");
    // fit_transform over every document, the message last.
    let docs: Vec<String> =
        questions.iter().map(|q| q.to_lowercase()).chain(std::iter::once(query.to_lowercase())).collect();
    let mut vocabulary: HashMap<&str, u32> = HashMap::new();
    let mut df: Vec<u32> = Vec::new();
    let mut rows: Vec<Vec<(u32, f64)>> = Vec::with_capacity(docs.len());
    let mut ids: Vec<u32> = Vec::new();
    for doc in &docs {
        ids.clear();
        for token in tokens(doc) {
            let next = vocabulary.len() as u32;
            ids.push(*vocabulary.entry(token).or_insert_with(|| {
                df.push(0);
                next
            }));
        }
        ids.sort_unstable();
        let mut row: Vec<(u32, f64)> = Vec::new();
        for &id in &ids {
            match row.last_mut() {
                Some((last, count)) if *last == id => *count += 1.0,
                _ => {
                    df[id as usize] += 1;
                    row.push((id, 1.0));
                }
            }
        }
        rows.push(row);
    }
    let n = docs.len() as f64;
    let idf: Vec<f64> = df.iter().map(|&d| ((1.0 + n) / (1.0 + f64::from(d))).ln() + 1.0).collect();
    for row in &mut rows {
        for (t, w) in row.iter_mut() {
            *w *= idf[*t as usize];
        }
        let norm = row.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|(_, w)| *w /= norm);
        }
    }

    // cosine_similarity(message, questions).argmax()
    let message = rows.pop().expect("the message is the last row");
    let mut best = (0, f64::NEG_INFINITY);
    for (i, row) in rows.iter().enumerate() {
        let score = sparse_dot(&message, row);
        if score > best.1 {
            best = (i, score);
        }
    }
    (best.0, best.1 as f32)
}

/// scikit-learn's default `token_pattern`, `(?u)\b\w\w+\b`: maximal runs of word
/// characters (letters, digits, underscore), two or more long.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|t| t.chars().nth(1).is_some())
}

/// Dot product of two sparse vectors sorted by term id.
fn sparse_dot(a: &[(u32, f64)], b: &[(u32, f64)]) -> f64 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// Checks the port against values worked out by hand and confirmed with scikit-learn 1.9
/// (`TfidfVectorizer().fit_transform(questions + [message])`, `cosine_similarity`,
/// `argmax`), so a "faster" baseline cannot quietly stop being the tutorial's algorithm.
/// The benches call it before timing; bench targets run no `#[test]`.
pub fn check_against_known_values() {
    let questions = ["The cat sat", "the dog", "A dog's dinner: dog food!"].map(String::from);
    // Message "CAT". Documents: [the cat sat] [the dog] [dog dinner dog food] [cat] ("A" and
    // "s" are one letter long), n = 4; df: the 2, cat 2, dog 2, sat 1, dinner 1, food 1.
    // idf = ln(5/3) + 1 = 1.510826 (df 2), ln(5/2) + 1 = 1.916291 (df 1).
    // v(q0) = (1.510826, 1.510826, 1.916291) / 2.870080: cat 0.526405 = cos(q0, message).
    let (i, score) = refit_and_match(&questions, "CAT");
    assert_eq!(i, 0);
    assert!((score - 0.526_405_4).abs() < 1e-6, "{score}");
    // Message "dog?": df(dog) = 3 now the message has it, idf = ln(5/4) + 1 = 1.223144.
    // q1 = (the 1.510826, dog 1.223144) / 1.943878 → 0.629228;
    // q2 = (dog 2 × 1.223144, dinner 1.916291, food 1.916291) / 3.650867 → 0.670061:
    // raw tf lets the longer question that says "dog" twice win.
    let (i, score) = refit_and_match(&questions, "dog?");
    assert_eq!(i, 2);
    assert!((score - 0.670_060_7).abs() < 1e-6, "{score}");
    let (i, score) = refit_and_match(&questions, "dinner dog");
    assert_eq!(i, 2);
    assert!((score - 0.785_320_6).abs() < 1e-6, "{score}");
    // Nothing shared: numpy's argmax of zeros is the first question.
    assert_eq!(refit_and_match(&questions, "x y z"), (0, 0.0));
    // Accents and underscores are word characters, case folds, anything else splits.
    assert_eq!(
        tokens(&"Congé-maternité d'été l'a x_y 42".to_lowercase()).collect::<Vec<_>>(),
        ["congé", "maternité", "été", "x_y", "42"]
    );
}
