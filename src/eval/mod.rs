//! `wabot eval`: how well the engine answers a labelled set of queries.
//!
//! Queries are JSONL, `{"q": "…", "expected": "entry-id"}` or `"expected": null` for a
//! question the FAQ must decline, with an optional `"kind"` (`paraphrase`, `typo`…) for
//! figures per kind of message. Reported: top-1 accuracy on in-scope queries (the
//! answer given is the expected entry), out-of-scope rejection (declined when it should),
//! answered/declined rates, and the same at other thresholds. [`self_check`] measures an FAQ
//! on its own questions, without labelled queries (`wabot eval --self`).

pub mod self_check;

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::engine::{Engine, EngineParams, Match};

/// What can be wrong with a query file.
#[derive(Debug, Error)]
pub enum EvalError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a valid query object.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A query expects an entry the corpus does not have.
    #[error("{path}:{line}: expected entry {id:?} is not in the corpus")]
    UnknownEntry {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// The id.
        id: String,
    },
}

/// One labelled query.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledQuery {
    /// The text.
    pub q: String,
    /// The entry that should answer, or `None` when the FAQ should decline.
    pub expected: Option<String>,
    /// What kind of message it is (`paraphrase`, `typo`, `out-of-scope`…), for figures
    /// per kind; free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Reads a JSONL query file and checks its expected ids against `engine`.
pub fn load_queries(path: &Path, engine: &Engine) -> Result<Vec<LabelledQuery>, EvalError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: name.clone(), source })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: LabelledQuery = serde_json::from_str(line).map_err(|e| EvalError::Syntax {
            path: name.clone(),
            line: i + 1,
            message: e.to_string(),
        })?;
        if let Some(id) = &q.expected
            && engine.entry(id).is_none()
        {
            return Err(EvalError::UnknownEntry { path: name, line: i + 1, id: id.clone() });
        }
        out.push(q);
    }
    Ok(out)
}

/// Figures at one threshold.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Figures {
    /// The threshold.
    pub threshold: f32,
    /// In-scope queries answered with the expected entry, over in-scope queries.
    pub top1_accuracy: f32,
    /// Out-of-scope queries declined, over out-of-scope queries.
    pub out_of_scope_rejection: f32,
    /// All queries answered, over all queries.
    pub answered_rate: f32,
}

/// How one kind of message fares at the engine's threshold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KindFigures {
    /// The kind, as the query file names it.
    pub kind: String,
    /// How many queries of this kind.
    pub queries: usize,
    /// Right outcomes over queries: the expected entry answered, or an out-of-scope
    /// message declined.
    pub accuracy: f32,
    /// In-scope queries whose best-ranked entry is the expected one, whatever its score
    /// (`None` for a kind with no in-scope query).
    pub ranking: Option<f32>,
}

/// A query answered wrongly at the configured threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    /// The query.
    pub q: String,
    /// What was expected.
    pub expected: Option<String>,
    /// What was answered (`None`: declined).
    pub got: Option<String>,
    /// Its score.
    pub score: f32,
}

/// The evaluation of a query set.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Number of queries.
    pub queries: usize,
    /// How many expect an answer.
    pub in_scope: usize,
    /// How many expect a refusal.
    pub out_of_scope: usize,
    /// Figures at the engine's threshold.
    pub at_threshold: Figures,
    /// In-scope queries whose best-ranked entry is the expected one, whatever its score.
    pub ranking_accuracy: f32,
    /// Figures over a range of thresholds.
    pub sweep: Vec<Figures>,
    /// Per kind of message (when the queries say), at the engine's threshold.
    pub by_kind: Vec<KindFigures>,
    /// The queries answered wrongly at the engine's threshold.
    pub misses: Vec<Miss>,
}

/// The engine's answer to one query with `params`, and its best-ranked candidate whatever
/// the score.
fn judge(engine: &Engine, q: &str, params: &EngineParams) -> (Option<Match>, Option<Match>) {
    let lowered = EngineParams { threshold: 0.0, ..*params };
    // At threshold 0 the answer is the candidate the sweep applies other thresholds to.
    let ranked = engine.answer_with(q, None, &lowered);
    (engine.answer_with(q, None, params), ranked)
}

/// Per query: the expected id, and the best candidate with its score.
type Outcomes = [(Option<String>, Option<(String, f32)>)];

fn figures(results: &Outcomes, threshold: f32) -> Figures {
    let (mut in_ok, mut in_n, mut out_ok, mut out_n, mut answered) = (0, 0, 0, 0, 0);
    for (expected, got) in results {
        let got = got.as_ref().filter(|(_, s)| *s >= threshold);
        answered += usize::from(got.is_some());
        match expected {
            Some(id) => {
                in_n += 1;
                in_ok += usize::from(got.is_some_and(|(g, _)| g == id));
            }
            None => {
                out_n += 1;
                out_ok += usize::from(got.is_none());
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
    Figures {
        threshold,
        top1_accuracy: ratio(in_ok, in_n),
        out_of_scope_rejection: ratio(out_ok, out_n),
        answered_rate: ratio(answered, results.len()),
    }
}

/// Runs every query through `engine`.
pub fn evaluate(engine: &Engine, queries: &[LabelledQuery]) -> Report {
    evaluate_with(engine, queries, &engine.params())
}

/// Runs every query through `engine` with `params` in place of its own (an ablation).
pub fn evaluate_with(engine: &Engine, queries: &[LabelledQuery], params: &EngineParams) -> Report {
    let threshold = params.threshold;
    let mut results = Vec::with_capacity(queries.len());
    let mut misses = Vec::new();
    let mut ranked_ok = 0;
    // Per kind: queries, right at the threshold, in scope, in scope ranked first.
    let mut kinds: Vec<(String, [usize; 4])> = Vec::new();
    use rayon::prelude::*;
    let progress = crate::telemetry::progress::reporter("evaluating");
    let done = std::sync::atomic::AtomicUsize::new(0);
    let judged: Vec<(Option<Match>, Option<Match>)> = queries
        .par_iter()
        .map(|q| {
            let judged = judge(engine, &q.q, params);
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, queries.len());
            judged
        })
        .collect();
    for (q, (answered, ranked)) in queries.iter().zip(judged) {
        let best = ranked.map(|m| (m.entry.id.clone(), m.score));
        let ranked_right = q.expected.is_some() && best.as_ref().map(|b| &b.0) == q.expected.as_ref();
        ranked_ok += usize::from(ranked_right);
        let got = answered.map(|m| m.entry.id.clone());
        let right = got == q.expected;
        if !right {
            misses.push(Miss {
                q: q.q.clone(),
                expected: q.expected.clone(),
                got,
                score: best.as_ref().map_or(0.0, |b| b.1),
            });
        }
        results.push((q.expected.clone(), best));
        if let Some(kind) = &q.kind {
            let counts = match kinds.iter_mut().position(|(k, _)| k == kind) {
                Some(i) => &mut kinds[i].1,
                None => {
                    kinds.push((kind.clone(), [0; 4]));
                    &mut kinds.last_mut().expect("just pushed").1
                }
            };
            counts[0] += 1;
            counts[1] += usize::from(right);
            counts[2] += usize::from(q.expected.is_some());
            counts[3] += usize::from(ranked_right);
        }
    }
    let by_kind = kinds
        .into_iter()
        .map(|(kind, [queries, ok, in_scope, ranked])| KindFigures {
            kind,
            queries,
            accuracy: ok as f32 / queries as f32,
            ranking: (in_scope > 0).then(|| ranked as f32 / in_scope as f32),
        })
        .collect();
    let in_scope = queries.iter().filter(|q| q.expected.is_some()).count();
    let sweep = (1..=14).map(|i| figures(&results, i as f32 * 0.05)).collect();
    Report {
        queries: queries.len(),
        in_scope,
        out_of_scope: queries.len() - in_scope,
        at_threshold: figures(&results, threshold),
        ranking_accuracy: if in_scope == 0 { 0.0 } else { ranked_ok as f32 / in_scope as f32 },
        sweep,
        by_kind,
        misses,
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.at_threshold;
        writeln!(
            f,
            "queries: {} ({} in scope, {} out of scope)",
            self.queries, self.in_scope, self.out_of_scope
        )?;
        writeln!(f, "threshold: {:.2}", t.threshold)?;
        writeln!(f, "top-1 accuracy (in scope): {:.3}", t.top1_accuracy)?;
        writeln!(f, "out-of-scope rejection:    {:.3}", t.out_of_scope_rejection)?;
        writeln!(f, "answered: {:.3}   declined: {:.3}", t.answered_rate, 1.0 - t.answered_rate)?;
        writeln!(f, "ranking accuracy (best candidate, any score): {:.3}", self.ranking_accuracy)?;
        if !self.by_kind.is_empty() {
            writeln!(f, "\nkind            queries  right  ranked first (any score)")?;
            for k in &self.by_kind {
                let ranking = k.ranking.map_or_else(|| "-".to_string(), |r| format!("{r:.3}"));
                writeln!(f, "  {:<14} {:>5}  {:.3}  {ranking}", k.kind, k.queries, k.accuracy)?;
            }
        }
        writeln!(f, "\nthreshold  top-1  oos-rejection  answered")?;
        for s in &self.sweep {
            writeln!(
                f,
                "  {:.2}     {:.3}  {:.3}          {:.3}",
                s.threshold, s.top1_accuracy, s.out_of_scope_rejection, s.answered_rate
            )?;
        }
        if !self.misses.is_empty() {
            writeln!(f, "\nmisses at threshold {:.2}:", t.threshold)?;
            for m in &self.misses {
                writeln!(
                    f,
                    "  {:?}: expected {}, got {} ({:.3})",
                    m.q,
                    m.expected.as_deref().unwrap_or("(decline)"),
                    m.got.as_deref().unwrap_or("(declined)"),
                    m.score
                )?;
            }
        }
        Ok(())
    }
}
