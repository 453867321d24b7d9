//! Text normalisation: Unicode word segmentation, lowercasing, accent folding, elision.
//!
//! Everything the index and the queries see goes through [`words`], so a document and a
//! query written with or without accents, capitals or typographic apostrophes meet on the
//! same folded words.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};
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
    // Character by character: canonical decomposition of one character does not depend on
    // its neighbours, and the only reordering NFD does is among combining marks, which
    // are all dropped.
    for c in input.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        for lower in c.to_lowercase() {
            decompose_canonical(lower, |d| push_folded(d, out));
        }
    }
}

fn push_folded(c: char, out: &mut String) {
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
        // French typography's no-break spaces (`1 000 €`, `48 h`) separate words like a
        // space; word segmentation would otherwise glue `1 000` into one word.
        '\u{00A0}' | '\u{2007}' | '\u{202F}' => out.push(' '),
        c => out.push(c),
    }
}

/// Splits `text` into folded words, the unit everything else works on.
///
/// Words come from Unicode word segmentation (UAX #29), so punctuation and emoji are
/// dropped. French elisions and English clitics are cut off (`l'attestation` →
/// `attestation`, `what's` → `what`, `don't` → `don`); other apostrophes are removed
/// (`aujourd'hui` → `aujourdhui`). One-letter words other than digits are dropped. Every
/// returned word is non-empty and already folded.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, |w| out.push(w.to_owned()));
    out
}

/// Calls `f` with each folded word of `text`, without allocating a `Vec`.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let mut folded = String::with_capacity(text.len());
    fold_into(text, &mut folded);
    let mut joined = String::new();
    for segment in folded.unicode_words() {
        let word = if segment.contains('\'') {
            let mut pieces: Vec<&str> = segment.split('\'').collect();
            while pieces.len() > 1 && FRENCH_ELISIONS.contains(&pieces[0]) {
                pieces.remove(0);
            }
            while pieces.len() > 1 && pieces.last().is_some_and(|p| ENGLISH_CLITICS.contains(p)) {
                pieces.pop();
            }
            joined.clear();
            pieces.iter().for_each(|p| joined.push_str(p));
            joined.as_str()
        } else {
            segment
        };
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        // A lone digit still carries meaning ("form 2"); a lone letter does not.
        if word.chars().nth(1).is_some() || word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            f(word);
        }
    }
}

/// Folded words written with a capital inside a sentence (`Lyon`, `Portugal`): names,
/// which typo correction must leave alone.
pub fn proper_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut sentence_start = true;
    for (_, token) in text.split_word_bound_indices() {
        let mut chars = token.chars();
        let Some(first) = chars.next() else { continue };
        if first.is_alphabetic() {
            let rest_lower = chars.clone().any(|c| c.is_lowercase());
            if !sentence_start && first.is_uppercase() && rest_lower {
                names.push(fold(token));
            }
            sentence_start = false;
        } else if matches!(first, '.' | '!' | '?' | '\n' | '¿' | '¡') {
            sentence_start = true;
        }
    }
    names
}

/// French words elided before a vowel: `l'attestation` is `attestation`.
const FRENCH_ELISIONS: &[&str] =
    &["c", "d", "j", "jusqu", "l", "lorsqu", "m", "n", "puisqu", "qu", "quoiqu", "s", "t"];

/// English endings after an apostrophe: `what's` is `what`, `don't` is `don`.
const ENGLISH_CLITICS: &[&str] = &["d", "ll", "m", "re", "s", "t", "ve"];

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
        assert_eq!(words("Qu'est-ce que c'est ?"), ["est", "ce", "que", "est"]);
        assert_eq!(words("aujourd'hui, jusqu'à lundi"), ["aujourdhui", "lundi"]);
    }

    #[test]
    fn no_break_spaces_separate_words() {
        // Found by fuzzing: U+202F joined digits and letters into one word.
        assert_eq!(words("1\u{202F}000 € sous 48\u{202F}h"), ["1", "000", "sous", "48"]);
        assert_eq!(words("1\u{00A0}000"), words("1 000"));
    }

    #[test]
    fn capitalised_words_inside_a_sentence_are_names() {
        assert_eq!(proper_names("Can I work from Portugal? Lyon is nice. PDF please"), ["portugal"]);
    }

    #[test]
    fn english_clitics_are_cut_off() {
        assert_eq!(
            words("What's my manager's email? I don't know"),
            ["what", "my", "manager", "email", "don", "know"]
        );
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

    /// The whole-string definition: lowercase, NFD, marks dropped, the special letters.
    fn fold_reference(input: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let mut out = String::new();
        for c in input.chars().flat_map(char::to_lowercase).nfd() {
            push_folded(c, &mut out);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn folding_char_by_char_equals_folding_the_whole_string(
            s in "[a-zA-Z0-9 '’éèêëàâäçùûüîïôöœæßÉÈÀÇŒ\u{0301}\u{0300}\u{0327}\u{0323}\u{00A0}ǅǱẞİ]{0,40}|\\PC{0,40}"
        ) {
            proptest::prop_assert_eq!(fold(&s), fold_reference(&s));
        }
    }
}
