//! `wabot ask`: questions matched against the FAQ, one given or many piped in, each answer
//! written as text or as a JSON object, with `--explain` the matched terms and weights.

use std::io::{BufRead, Write};

use super::CliError;
use crate::engine::{Engine, Match};

/// Lines read from stdin are matched this many at a time, in parallel.
const ASK_BATCH: usize = 4096;

/// Answers `question` (its words joined), or when it is empty every non-blank line of
/// `input`, which must then not be a terminal (`input_is_terminal`).
pub fn run(
    engine: &Engine,
    json: bool,
    explain: bool,
    question: &[String],
    input: impl BufRead,
    input_is_terminal: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    if !question.is_empty() {
        let q = question.join(" ");
        let answer = engine.answer(&q, None);
        write_answer(engine, &q, answer, json, explain, out)?;
        return Ok(out.flush()?);
    }
    if input_is_terminal {
        return Err(CliError::NoQuestion);
    }
    let mut lines = input.lines();
    loop {
        let mut batch = Vec::with_capacity(ASK_BATCH);
        for line in lines.by_ref() {
            let line = line.map_err(CliError::Stdin)?;
            if !line.trim().is_empty() {
                batch.push(line);
            }
            if batch.len() == ASK_BATCH {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        for (q, answer) in batch.iter().zip(engine.answer_batch(&batch, None)) {
            write_answer(engine, q, answer, json, explain, out)?;
        }
    }
    Ok(out.flush()?)
}

/// One question's answer (or how close the best candidate came), as text or JSON.
pub fn write_answer(
    engine: &Engine,
    q: &str,
    answer: Option<Match>,
    json: bool,
    explain: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    // Declined: still say how close the best candidate came.
    let best = match &answer {
        Some(m) => Some(m.clone()),
        None => engine.search(q, 1).into_iter().next(),
    };
    let score = best.as_ref().map_or(0.0, |m| m.score);
    if json {
        let mut obj = serde_json::json!({
            "query": q,
            "id": answer.as_ref().map(|m| m.entry.id.as_str()),
            "score": (score * 1e4).round() / 1e4,
            "answer": answer.as_ref().map(|m| m.entry.answer.as_str()),
        });
        if explain && let Some(m) = &best {
            obj["explain"] = serde_json::to_value(engine.explain(q, m))?;
            if let Some(top) = engine.rank(q, 1).and_then(|r| r.into_iter().next()) {
                obj["fused"] = serde_json::to_value(&top.evidence)?;
                obj["fused"]["entry"] = serde_json::Value::from(top.entry.id.as_str());
            }
        }
        writeln!(out, "{obj}")?;
        return Ok(());
    }
    match &answer {
        Some(m) => writeln!(out, "{} ({:.3})\n{}", m.entry.id, m.score, m.entry.answer)?,
        None => writeln!(
            out,
            "(no answer: best score {score:.3} is below the threshold {:.2})",
            engine.params().threshold
        )?,
    }
    if explain && let Some(top) = engine.rank(q, 1).and_then(|r| r.into_iter().next()) {
        let ev = &top.evidence;
        writeln!(out, "  fused: confidence {:.3} for {}", ev.confidence, top.entry.id)?;
        writeln!(out, "    lexical {:.3} (× {})", ev.lexical, crate::engine::hybrid::LEXICAL_WEIGHT)?;
        for (k, name) in engine.encoder_names().iter().enumerate() {
            writeln!(
                out,
                "    {name:<28} similarity {:.3}, z {:+.2}{}",
                ev.similarity[k],
                ev.z[k],
                if ev.ranked_first[k] { ", ranks it first" } else { "" }
            )?;
        }
        writeln!(out, "    fused score {:.2}, margin over the next entry {:+.2}", ev.fused, ev.margin)?;
    }
    if explain && let Some(m) = &best {
        let x = engine.explain(q, m);
        writeln!(out, "  candidate {} via {:?}: {:?}", m.matched.id, m.unit, x.unit_text)?;
        for (term, qw, dw, c) in &x.terms {
            writeln!(out, "  {term:<24} query {qw:.3} × entry {dw:.3} = {c:.3}")?;
        }
        for (typed, fixed) in &x.corrected {
            writeln!(out, "  corrected {typed:?} → {fixed:?}")?;
        }
        if !x.unknown.is_empty() {
            writeln!(out, "  unknown words: {}", x.unknown.join(", "))?;
        }
    }
    writeln!(out)?;
    Ok(())
}
