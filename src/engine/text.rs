//! Text normalisation: Unicode word segmentation, lowercasing, accent folding, elision.
//!
//! Everything the index and the queries see goes through [`words`], so a document and a
//! query written with or without accents, capitals or typographic apostrophes meet on the
//! same folded words.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_segmentation::UnicodeSegmentation;

/// Lowercases `input` and removes accents: `Congés Maternité` → `conges maternite`.
///
/// Ligatures that French and German spell as two letters are expanded (`œ` → `oe`,
/// `æ` → `ae`, `ß` → `ss`) so that `soeur` meets `sœur`. Folding is idempotent:
/// `fold(fold(x)) == fold(x)`.
pub fn fold(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    fold_into(input, &mut out);
    out
}

/// [`fold`] appending to an existing buffer, for the hot path.
pub fn fold_into(input: &str, out: &mut String) {
    if input.is_ascii() {
        out.extend(input.chars().map(|c| c.to_ascii_lowercase()));
        return;
    }
    for c in input.chars().flat_map(char::to_lowercase).nfd() {
        match c {
            c if is_combining_mark(c) => {}
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            'ß' => out.push_str("ss"),
            'ø' => out.push('o'),
            'đ' => out.push('d'),
            'ł' => out.push('l'),
            // Typographic apostrophes become the ASCII one so elision is handled alike.
            '\u{2019}' | '\u{2018}' | '\u{02BC}' | '\u{FF07}' => out.push('\''),
            c => out.push(c),
        }
    }
}

/// Splits `text` into folded words, the unit everything else works on.
///
/// Words come from Unicode word segmentation (UAX #29), so punctuation and emoji are
/// dropped. Apostrophes split a word (`l'attestation` → `l`, `attestation`;
/// `don't` → `don`, `t`) and one-letter pieces are dropped, which removes French elided
/// articles and pronouns. Every returned word is non-empty and already folded.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, |w| out.push(w.to_owned()));
    out
}

/// Calls `f` with each folded word of `text`, without allocating a `Vec`.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let mut folded = String::with_capacity(text.len());
    fold_into(text, &mut folded);
    for segment in folded.unicode_words() {
        for piece in segment.split('\'') {
            let piece = piece.trim_matches(|c: char| !c.is_alphanumeric());
            if piece.chars().nth(1).is_some() {
                f(piece);
            } else if piece.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                // A lone digit still carries meaning ("13th month" aside, "form 2").
                f(piece);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_and_case_are_folded() {
        assert_eq!(fold("Congés MATERNITÉ"), "conges maternite");
        assert_eq!(fold("Sœur, Æther, Straße"), "soeur, aether, strasse");
        assert_eq!(fold("ÇA"), "ca");
    }

    #[test]
    fn folding_is_idempotent() {
        for s in ["Élodie Garçon", "ǅemal", "İstanbul", "ﬁche", "Ωμέγα", "straße", "x\u{301}"] {
            let once = fold(s);
            assert_eq!(fold(&once), once, "{s}");
        }
    }

    #[test]
    fn french_elision_is_split_off() {
        assert_eq!(words("L'attestation d’employeur"), ["attestation", "employeur"]);
        assert_eq!(words("Qu'est-ce que c'est ?"), ["qu", "est", "ce", "que", "est"]);
    }

    #[test]
    fn punctuation_and_emoji_are_not_words() {
        assert_eq!(words("Hi!!! 👋 my payslip??"), ["hi", "my", "payslip"]);
        assert!(words("… — !?").is_empty());
    }

    #[test]
    fn numbers_are_kept() {
        assert_eq!(words("form 2 for 2024"), ["form", "2", "for", "2024"]);
    }
}
