//! The FAQ's own spelling of a message's words, for the sentence encoders.
//!
//! The lexical engine folds accents and corrects typos inside its analysis, so `conges
//! maternite` and `congés maternité` meet on the same terms. A sentence encoder reads the
//! text as typed: to it `conges` is a different, rarer string than `congés`, and a typo is
//! a different word. Before a message is embedded, each word that the FAQ spells with
//! accents the message left out (`maternite` → `maternité`), and each word the lexical
//! engine corrected against the FAQ's vocabulary (`vacancs` → `vacances`), is written the
//! way the FAQ writes it. Everything else — names, numbers, punctuation, casing of untouched
//! words — is left as typed.

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use unicode_segmentation::UnicodeSegmentation;

use super::FaqEntry;
use super::text::fold;

/// How the FAQ spells its words: folded form → its most frequent written form (lowercase).
#[derive(Debug, Clone, Default)]
pub struct Spellings {
    forms: FxHashMap<String, FxHashMap<String, u32>>,
}

impl Spellings {
    /// The spellings of `entries`' questions and answers.
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a FaqEntry>) -> Spellings {
        let mut s = Spellings::default();
        for e in entries {
            s.learn(e);
        }
        s
    }

    /// Adds `entry`'s words. (A removed entry's words stay: a spelling does not go stale.)
    pub fn learn(&mut self, entry: &FaqEntry) {
        for text in entry.questions.iter().chain(std::iter::once(&entry.answer)) {
            for word in text.unicode_words() {
                if !word.chars().all(char::is_alphabetic) {
                    continue;
                }
                let lower = word.to_lowercase();
                let counts = self.forms.entry(fold(&lower)).or_default();
                *counts.entry(lower).or_default() += 1;
            }
        }
    }

    /// The FAQ's spelling of the folded word `folded`: its most frequent form, ties to the
    /// alphabetically first.
    fn spelling(&self, folded: &str) -> Option<&str> {
        let counts = self.forms.get(folded)?;
        counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(w, _)| w.as_str())
    }

    /// `text` with the FAQ's spelling of words typed without their accents, and of the
    /// words in `corrected` (`(typed, corrected)`, both folded, as the lexical engine
    /// reports them). Borrowed when nothing changes.
    pub fn respell<'t>(&self, text: &'t str, corrected: &[(String, String)]) -> Cow<'t, str> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for (at, word) in text.unicode_word_indices() {
            if !word.chars().all(char::is_alphabetic) {
                continue;
            }
            let lower = word.to_lowercase();
            let folded = fold(&lower);
            let target = match corrected.iter().find(|(typed, _)| *typed == folded) {
                Some((_, fixed)) => self.spelling(fixed),
                // Only a word typed without accents gains them: one typed with accents
                // is as its writer meant it.
                None if lower == folded && self.spelling(&folded).is_some_and(|s| s != lower) => {
                    // And only where the FAQ never writes it bare (`a` and `à` both exist).
                    match self.forms.get(&folded) {
                        Some(counts) if !counts.contains_key(&lower) => self.spelling(&folded),
                        _ => None,
                    }
                }
                None => None,
            };
            let Some(target) = target.filter(|t| *t != lower) else { continue };
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
            buf.push_str(&text[copied..at]);
            if word.chars().next().is_some_and(char::is_uppercase) {
                let mut chars = target.chars();
                if let Some(first) = chars.next() {
                    buf.extend(first.to_uppercase());
                    buf.push_str(chars.as_str());
                }
            } else {
                buf.push_str(target);
            }
            copied = at + word.len();
        }
        match out {
            Some(mut buf) => {
                buf.push_str(&text[copied..]);
                Cow::Owned(buf)
            }
            None => Cow::Borrowed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lang;

    fn faq() -> Spellings {
        Spellings::of(&[
            FaqEntry::new(
                "a",
                Lang::Fr,
                &["Comment poser un congé maternité ?"],
                "Le congé se pose à l'avance.",
            ),
            FaqEntry::new(
                "b",
                Lang::Fr,
                &["Où est la cafétéria ?"],
                "Au rez-de-chaussée, à côté de l'accueil.",
            ),
        ])
    }

    #[test]
    fn words_typed_without_accents_get_the_faqs_accents_and_keep_their_case() {
        let s = faq();
        assert_eq!(s.respell("conge maternite svp", &[]), "congé maternité svp");
        assert_eq!(s.respell("Cafeteria ouverte ?", &[]), "Cafétéria ouverte ?");
    }

    #[test]
    fn a_word_the_faq_also_writes_bare_and_words_it_never_uses_are_left_alone() {
        let s = faq();
        // "a" (has) and "à" (at) are both French words.
        let mut with_bare = faq();
        with_bare.learn(&FaqEntry::new("c", Lang::Fr, &["Qui a droit au congé ?"], "Tout salarié."));
        assert_eq!(with_bare.respell("a la cafeteria", &[]), "a la cafétéria");
        assert!(matches!(s.respell("my laptop is broken", &[]), Cow::Borrowed(_)));
    }

    #[test]
    fn corrected_typos_are_written_as_the_faq_writes_the_correction() {
        let s = faq();
        let corrected = vec![("matrnite".to_string(), "maternite".to_string())];
        assert_eq!(s.respell("conge matrnite", &corrected), "congé maternité");
    }
}
