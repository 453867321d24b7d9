//! A sentence the bot says, in both of its languages.

use crate::engine::Lang;

/// A sentence in English and French: every fixed thing the bot says is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bilingual {
    /// In English.
    pub en: &'static str,
    /// In French.
    pub fr: &'static str,
}

impl Bilingual {
    /// The sentence, `en` and `fr`.
    pub const fn new(en: &'static str, fr: &'static str) -> Bilingual {
        Bilingual { en, fr }
    }

    /// The sentence in `lang`.
    pub fn get(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Fr => self.fr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentence_is_read_in_either_language() {
        const HI: Bilingual = Bilingual::new("Hello", "Bonjour");
        assert_eq!((HI.get(Lang::En), HI.get(Lang::Fr)), ("Hello", "Bonjour"));
    }
}
