//! `wabot eval --self`: how well the engine answers an FAQ, measured on the FAQ alone.
//!
//! An entry asked several ways is its own test: each of its questions is held out in turn
//! (the entry is indexed without it, so the question must be recognised from the entry's
//! other questions and its answer), asked, and the entry put back. Reported: top-1 over
//! those held-out questions, the pairs of entries the engine mixes up (worth rewording or
//! merging), and a suggested threshold — where the held-out questions are still answered
//! and messages no helpdesk answers ([`GENERIC_OUT_OF_SCOPE`]) are declined. No labelled
//! queries are needed.

use std::collections::HashMap;

use serde::Serialize;

use crate::engine::{Engine, FaqEntry};

/// Messages no helpdesk FAQ answers, English and French, one per line.
pub const GENERIC_OUT_OF_SCOPE: &str = include_str!("out_of_scope.txt");

/// Thresholds tried for the suggestion.
const SWEEP: std::ops::RangeInclusive<u32> = 1..=16;
const SWEEP_STEP: f32 = 0.05;

/// One held-out question and what the engine made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The entry the question belongs to.
    pub entry: String,
    /// The question.
    pub question: String,
    /// The best-ranked entry's topic with the question held out, and its score.
    pub got: Option<(String, f32)>,
}

/// Two entries the engine mixes up.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Confusion {
    /// One entry's topic.
    pub a: String,
    /// The other's.
    pub b: String,
    /// Held-out questions of either answered with the other.
    pub count: usize,
    /// Such questions, for the reader (at most three).
    pub examples: Vec<String>,
}

/// Figures at one threshold.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct SelfFigures {
    /// The threshold.
    pub threshold: f32,
    /// Held-out questions answered with their own entry's topic.
    pub top1: f32,
    /// Generic out-of-scope messages declined.
    pub out_of_scope_rejection: f32,
}

/// The self-evaluation of an FAQ.
#[derive(Debug, Clone, Serialize)]
pub struct SelfReport {
    /// Entries in the FAQ.
    pub entries: usize,
    /// Held-out questions asked (entries with one question cannot be probed).
    pub probes: usize,
    /// Entries with a single question, not probed.
    pub unprobed_entries: usize,
    /// Held-out questions whose best-ranked entry is their own, whatever the score.
    pub ranking_top1: f32,
    /// Figures at the engine's threshold.
    pub at_threshold: SelfFigures,
    /// The suggested threshold and its figures: the best sum of held-out top-1 and generic
    /// out-of-scope rejection, the lowest such threshold.
    pub suggested: SelfFigures,
    /// The sweep the suggestion was picked from.
    pub sweep: Vec<SelfFigures>,
    /// Pairs of entries mixed up, most first.
    pub confusions: Vec<Confusion>,
}

/// Holds each question of `engine`'s entries out in turn and asks it; the engine is left
/// as it was found.
pub fn self_evaluate(engine: &Engine) -> SelfReport {
    let entries = engine.entries();
    let mut probes = Vec::new();
    let mut unprobed = 0;
    let progress = crate::telemetry::progress::reporter("holding each question out");
    for (n, entry) in entries.iter().enumerate() {
        progress(n + 1, entries.len());
        if entry.questions.len() < 2 {
            unprobed += 1;
            continue;
        }
        for (i, question) in entry.questions.iter().enumerate() {
            let mut without = FaqEntry::clone(entry);
            without.questions.remove(i);
            // The entry was valid with the question, so it is without it (one is left).
            if engine.upsert(without).is_err() {
                continue;
            }
            let got = ranked_topic(engine, question);
            probes.push(Probe { entry: entry.id.clone(), question: question.clone(), got });
        }
        // Put the entry back as it was.
        let _ = engine.upsert(FaqEntry::clone(entry));
    }
    let outside: Vec<Option<f32>> =
        generic_out_of_scope().map(|q| ranked_topic(engine, q).map(|(_, s)| s)).collect();
    let topic_of: HashMap<&str, &str> = entries.iter().map(|e| (e.id.as_str(), e.topic_key())).collect();
    let own = |p: &Probe| topic_of.get(p.entry.as_str()).copied().unwrap_or(&p.entry).to_owned();
    let at = |threshold: f32| figures(&probes, &outside, threshold, &own);
    let sweep: Vec<SelfFigures> = SWEEP.map(|i| at(i as f32 * SWEEP_STEP)).collect();
    let suggested = sweep
        .iter()
        .copied()
        .fold(None::<SelfFigures>, |best, f| match best {
            Some(b) if b.top1 + b.out_of_scope_rejection >= f.top1 + f.out_of_scope_rejection => Some(b),
            _ => Some(f),
        })
        .unwrap_or_else(|| at(engine.params().threshold));
    let ranked_right = probes.iter().filter(|p| p.got.as_ref().is_some_and(|(t, _)| *t == own(p))).count();
    SelfReport {
        entries: entries.len(),
        probes: probes.len(),
        unprobed_entries: unprobed,
        ranking_top1: ratio(ranked_right, probes.len()),
        at_threshold: at(engine.params().threshold),
        suggested,
        sweep,
        confusions: confusions(&probes, &own),
    }
}

/// The generic out-of-scope messages, comments and blank lines skipped.
pub fn generic_out_of_scope() -> impl Iterator<Item = &'static str> {
    GENERIC_OUT_OF_SCOPE.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The best-ranked entry's topic for `q` and its score, at any score.
fn ranked_topic(engine: &Engine, q: &str) -> Option<(String, f32)> {
    let mut lowered = engine.params();
    lowered.threshold = 0.0;
    engine.answer_with(q, None, &lowered).map(|m| (m.entry.topic_key().to_owned(), m.score))
}

fn figures(
    probes: &[Probe],
    outside: &[Option<f32>],
    threshold: f32,
    own: &dyn Fn(&Probe) -> String,
) -> SelfFigures {
    let right = probes
        .iter()
        .filter(|p| p.got.as_ref().is_some_and(|(t, s)| *s >= threshold && *t == own(p)))
        .count();
    let declined = outside.iter().filter(|s| s.is_none_or(|s| s < threshold)).count();
    SelfFigures {
        threshold,
        top1: ratio(right, probes.len()),
        out_of_scope_rejection: ratio(declined, outside.len()),
    }
}

fn confusions(probes: &[Probe], own: &dyn Fn(&Probe) -> String) -> Vec<Confusion> {
    let mut pairs: HashMap<(String, String), (usize, Vec<String>)> = HashMap::new();
    for p in probes {
        let Some((got, _)) = &p.got else { continue };
        let mine = own(p);
        if *got == mine {
            continue;
        }
        let key = if mine < *got { (mine, got.clone()) } else { (got.clone(), mine) };
        let slot = pairs.entry(key).or_default();
        slot.0 += 1;
        if slot.1.len() < 3 {
            slot.1.push(p.question.clone());
        }
    }
    let mut out: Vec<Confusion> =
        pairs.into_iter().map(|((a, b), (count, examples))| Confusion { a, b, count, examples }).collect();
    out.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| (&x.a, &x.b).cmp(&(&y.a, &y.b))));
    out
}

fn ratio(a: usize, b: usize) -> f32 {
    if b == 0 { 0.0 } else { a as f32 / b as f32 }
}

impl std::fmt::Display for SelfReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "entries: {} ({} held-out questions; {} entries with one question not probed)",
            self.entries, self.probes, self.unprobed_entries
        )?;
        writeln!(f, "held-out top-1, any score: {:.3}", self.ranking_top1)?;
        let line = |f: &mut std::fmt::Formatter<'_>, label: &str, s: &SelfFigures| {
            writeln!(
                f,
                "{label} {:.2}: held-out top-1 {:.3}, generic out-of-scope declined {:.3}",
                s.threshold, s.top1, s.out_of_scope_rejection
            )
        };
        line(f, "at the threshold", &self.at_threshold)?;
        line(f, "suggested threshold", &self.suggested)?;
        if !self.confusions.is_empty() {
            writeln!(f, "\nentries mixed up (worth rewording):")?;
            for c in self.confusions.iter().take(20) {
                writeln!(f, "  {} ↔ {}: {}", c.a, c.b, c.count)?;
                for e in &c.examples {
                    writeln!(f, "      {e:?}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Lang, Lexicon};

    fn faq() -> Vec<FaqEntry> {
        vec![
            FaqEntry::new(
                "pw-en",
                Lang::En,
                &["How do I reset my password?", "I forgot my password", "password reset link"],
                "Use the reset page.",
            ),
            FaqEntry::new(
                "leave-en",
                Lang::En,
                &["How do I book annual leave?", "request holiday days", "take a day off"],
                "Book leave in the HR portal.",
            ),
            FaqEntry::new("lonely-en", Lang::En, &["Where is the canteen?"], "Building B."),
        ]
    }

    #[test]
    fn every_question_of_an_entry_asked_several_ways_is_held_out_and_the_engine_is_restored() {
        let engine = Engine::build(&faq(), &Lexicon::default());
        let before: Vec<FaqEntry> = engine.entries().iter().map(|e| FaqEntry::clone(e)).collect();
        let report = self_evaluate(&engine);
        assert_eq!(report.entries, 3);
        assert_eq!(report.probes, 6, "three questions each for two entries");
        assert_eq!(report.unprobed_entries, 1);
        let after: Vec<FaqEntry> = engine.entries().iter().map(|e| FaqEntry::clone(e)).collect();
        assert_eq!(before.len(), after.len());
        for e in &before {
            assert!(after.contains(e), "{} restored as it was", e.id);
        }
        assert!(report.ranking_top1 > 0.5, "{report}");
        assert!(report.suggested.out_of_scope_rejection > 0.9, "{report}");
    }

    #[test]
    fn two_entries_asked_the_same_way_are_reported_as_mixed_up() {
        let mut entries = faq();
        entries.push(FaqEntry::new(
            "pw-expired-en",
            Lang::En,
            &["my password expired", "password expired reset", "expired password"],
            "Change it at the sign-in page.",
        ));
        let engine = Engine::build(&entries, &Lexicon::default());
        let report = self_evaluate(&engine);
        assert!(
            report.confusions.iter().any(|c| c.a == "pw" && c.b == "pw-expired"),
            "{:?}",
            report.confusions
        );
    }
}
