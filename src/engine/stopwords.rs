//! English and French stop words, already folded (see [`super::text::fold`]).
//!
//! Based on the Snowball lists, plus the words people wrap a helpdesk question in
//! ("please", "I need", "svp", "je voudrais") which say nothing about the topic.
//! Both lists apply to every text: a query's language is not known in advance.

/// English stop words.
pub const ENGLISH: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anyone",
    "anything",
    "are",
    "aren",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "couldn",
    "did",
    "didn",
    "do",
    "does",
    "doesn",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "else",
    "few",
    "for",
    "from",
    "further",
    "get",
    "getting",
    "got",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "he",
    "hello",
    "help",
    "her",
    "here",
    "hers",
    "herself",
    "hey",
    "hi",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "im",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "itself",
    "just",
    "kindly",
    "know",
    "let",
    "like",
    "ll",
    "me",
    "might",
    "more",
    "most",
    "must",
    "mustn",
    "my",
    "myself",
    "need",
    "needs",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "ok",
    "okay",
    "on",
    "once",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "please",
    "pls",
    "plz",
    "re",
    "same",
    "shall",
    "shan",
    "she",
    "should",
    "shouldn",
    "so",
    "some",
    "such",
    "tell",
    "than",
    "thank",
    "thanks",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "thx",
    "to",
    "too",
    "u",
    "under",
    "until",
    "up",
    "ur",
    "us",
    "ve",
    "very",
    "wanna",
    "want",
    "was",
    "wasn",
    "we",
    "were",
    "weren",
    "what",
    "whats",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "won",
    "would",
    "wouldn",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// French stop words.
pub const FRENCH: &[&str] = &[
    "ai", "aie", "aient", "aies", "ait", "alors", "as", "au", "aucun", "aucune", "aupres", "aura", "aurai",
    "auraient", "aurais", "aurait", "aux", "avaient", "avais", "avait", "avec", "avez", "aviez", "avions",
    "avoir", "avons", "ayant", "besoin", "bjr", "bonjour", "bonsoir", "ca", "ce", "ceci", "cela", "celle",
    "celles", "celui", "ces", "cet", "cette", "ceux", "chez", "comment", "dans", "de", "des", "dois", "doit",
    "donc", "du", "elle", "elles", "en", "es", "est", "et", "etaient", "etais", "etait", "etant", "ete",
    "etes", "etre", "eu", "eux", "faire", "fais", "fait", "faut", "il", "ils", "je", "jusqu", "la", "le",
    "les", "leur", "leurs", "lui", "ma", "mais", "me", "meme", "merci", "mes", "moi", "mon", "ne", "nos",
    "notre", "nous", "on", "ont", "ou", "par", "pas", "peut", "peux", "pour", "pourquoi", "pourrais",
    "pouvez", "puis", "puisqu", "qu", "quand", "que", "quel", "quelle", "quelles", "quels", "qui", "quoi",
    "sa", "salut", "sans", "sera", "serai", "serait", "ses", "si", "sil", "slt", "soit", "sommes", "son",
    "sont", "stp", "suis", "sur", "svp", "ta", "te", "tes", "toi", "ton", "tu", "un", "une", "vais", "veux",
    "vos", "votre", "voudrais", "voulais", "vouloir", "vous", "vu", "wesh", "y", "ya",
];

/// True when `word` (folded) is a stop word in English or French.
pub fn is_stop_word(word: &str) -> bool {
    ENGLISH.binary_search(&word).is_ok() || FRENCH.binary_search(&word).is_ok()
}

/// How many of `words` are stop words of English only and of French only: a cheap,
/// good-enough signal of a short message's language.
pub fn language_votes<'a>(words: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let (mut en, mut fr) = (0, 0);
    for w in words {
        let is_en = ENGLISH.binary_search(&w).is_ok();
        let is_fr = FRENCH.binary_search(&w).is_ok();
        match (is_en, is_fr) {
            (true, false) => en += 1,
            (false, true) => fr += 1,
            _ => {}
        }
    }
    (en, fr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::text::fold;

    #[test]
    fn lists_are_sorted_unique_and_folded() {
        for list in [ENGLISH, FRENCH] {
            for pair in list.windows(2) {
                assert!(pair[0] < pair[1], "{pair:?} out of order");
            }
            for w in list {
                assert_eq!(&fold(w), w);
            }
        }
    }

    #[test]
    fn stop_words_of_either_language_are_recognised() {
        assert!(is_stop_word("the"));
        assert!(is_stop_word("votre"));
        assert!(!is_stop_word("payslip"));
        assert!(!is_stop_word("conge"));
    }
}
