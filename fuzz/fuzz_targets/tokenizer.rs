//! `engine::text`: accent folding, word splitting and proper-name spotting, on any text.
//!
//! Input: raw bytes, read as UTF-8 (invalid sequences become U+FFFD, as a lossy client would
//! send them), so the seeds in `corpus/tokenizer/` are plain text files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unicode_normalization::char::is_combining_mark;
use wabot::engine::text::{fold, fold_into, for_each_word, proper_names, words};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let folded = check_fold(&text);
    check_words(&text, &folded);
    check_proper_names(&text);
});

fn check_fold(text: &str) -> String {
    let folded = fold(text);
    // Documented: folding twice changes nothing. The index folds documents and queries once
    // each, so a non-idempotent fold would let the same word be stored under two spellings.
    assert_eq!(fold(&folded), folded, "fold is not idempotent on {text:?}");
    // "Removes accents": no combining mark survives.
    assert!(!folded.chars().any(is_combining_mark), "combining mark left in fold({text:?}) = {folded:?}");
    // The ASCII fast path must agree with plain ASCII lowercasing.
    if text.is_ascii() {
        assert_eq!(folded, text.to_ascii_lowercase());
    }
    // `fold_into` appends exactly what `fold` returns, keeping what the buffer held.
    let mut buffer = String::from("Préfixe ");
    fold_into(text, &mut buffer);
    assert_eq!(buffer.strip_prefix("Préfixe "), Some(folded.as_str()));
    folded
}

fn check_words(text: &str, folded: &str) {
    let list = words(text);
    let mut streamed = Vec::new();
    for_each_word(text, |w| streamed.push(w.to_owned()));
    assert_eq!(streamed, list, "for_each_word and words disagree on {text:?}");

    for word in &list {
        // "Every returned word is non-empty and already folded."
        assert!(!word.is_empty(), "empty word in {list:?} from {text:?}");
        assert_eq!(&fold(word), word, "unfolded word {word:?} from {text:?}");
        // No whitespace: fold turns the no-break spaces UAX #29 would let join digits and
        // letters (`1\u{202F}000`, `48\u{202F}h`) into spaces (see `regressions/tokenizer/`).
        assert!(
            !word.contains(char::is_whitespace),
            "whitespace in {word:?} from {text:?}"
        );
        // Elisions and clitics are cut off, other apostrophes removed, words trimmed to
        // alphanumerics.
        assert!(!word.contains('\''), "apostrophe in {word:?} from {text:?}");
        let first = word.chars().next().unwrap();
        let last = word.chars().next_back().unwrap();
        assert!(first.is_alphanumeric() && last.is_alphanumeric(), "untrimmed {word:?} from {text:?}");
        // One-letter words are dropped, except a lone digit.
        assert!(
            word.chars().nth(1).is_some() || first.is_ascii_digit(),
            "one-letter word {word:?} from {text:?}"
        );
    }

    // The words are pieces of the folded text, in order and without overlap, once the
    // apostrophes are gone (elisions and clitics are cut off, other apostrophes removed:
    // `aujourd'hui` → `aujourdhui`).
    let unapostrophed = folded.replace('\'', "");
    let mut rest = unapostrophed.as_str();
    for word in &list {
        let at = rest.find(word.as_str()).unwrap_or_else(|| {
            panic!("{word:?} is not in order in fold({text:?}) = {folded:?}; words: {list:?}")
        });
        rest = &rest[at + word.len()..];
    }

    // Splitting folds first, so splitting already-folded text gives the same words.
    assert_eq!(words(folded), list, "words(fold(x)) != words(x) for {text:?}");
}

fn check_proper_names(text: &str) {
    for name in proper_names(text) {
        assert!(!name.is_empty(), "empty name from {text:?}");
        assert_eq!(fold(&name), name, "unfolded name {name:?} from {text:?}");
    }
}
