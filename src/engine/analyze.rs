//! From text to index terms: stop words, Snowball stemming by language, lexicon concepts.
//!
//! A document's language is known, so its words are stemmed with its own stemmer. A query's
//! language is not: each query word is stemmed both ways and keeps the stems the index knows.
//! Lexicon phrases ("fiche de paie", "payslip") add a shared *concept term* to documents and
//! queries alike, which is how an English question finds a French-only entry.

use compact_str::CompactString;
use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHashMap as HashMap;

use super::stopwords::is_stop_word;
use super::text;
use super::{FaqEntry, Lang, Lexicon, Unit};

/// Words a stem cache remembers at most, per stemmer.
const STEM_CACHE_WORDS: usize = 100_000;

/// Stems already computed, by stemmer: words repeat, stemming is the costly step.
#[derive(Debug, Default)]
pub struct StemCache([HashMap<Term, Term>; 2]);

impl StemCache {
    fn stem(&mut self, stemmer: &Stemmer, s: usize, word: &str) -> Term {
        if let Some(stem) = self.0[s].get(word) {
            return stem.clone();
        }
        let stem = Term::from(stemmer.stem(word));
        if self.0[s].len() < STEM_CACHE_WORDS {
            self.0[s].insert(word.into(), stem.clone());
        }
        stem
    }
}

/// A word or a term: almost always short enough to be held inline, without a heap
/// allocation (analysing a large corpus makes millions of them).
pub type Term = CompactString;

thread_local! {
    /// Stems of query words; a stem depends only on the word and the language.
    static QUERY_STEMS: std::cell::RefCell<StemCache> = std::cell::RefCell::new(StemCache::default());
}

/// An entry as the index stores it.
#[derive(Debug, Clone)]
pub struct EntryAnalysis {
    /// Each unit with its terms and their counts, sorted by term.
    pub units: Vec<(Unit, Vec<(Term, u32)>)>,
    /// The distinct content words of the entry's indexed texts, for typo correction.
    pub words: Vec<Term>,
}

/// Prefix of concept terms; stems never contain it since words are alphanumeric.
pub const CONCEPT_PREFIX: char = '~';

/// A word of a text with its stems under both stemmers.
#[derive(Debug, Clone)]
pub struct Word {
    /// The folded word.
    pub surface: Term,
    /// `[english stem, french stem]`.
    pub stems: [Term; 2],
    /// False for stop words.
    pub content: bool,
}

/// One lexicon phrase, ready to match.
#[derive(Debug, Clone)]
struct Phrase {
    /// The phrase's words, as ids of their stems in the phrase vocabulary, under each
    /// stemmer (`[en, fr]`).
    stems: [Vec<u32>; 2],
    concept: u32,
}

/// A stem no phrase uses.
const NO_STEM: u32 = u32::MAX;

/// Turns texts into terms. Cheap to share: it holds no per-index state.
pub struct Analyzer {
    stemmers: [Stemmer; 2],
    /// Every stem a phrase uses, numbered: a word is looked up once, then phrases are
    /// matched by comparing numbers.
    phrase_stems: HashMap<Term, u32>,
    /// Phrase ids by the id of their first stem (under either stemmer); `[0]` for phrases
    /// matched against content words, `[1]` for *strict* ones, matched against every word
    /// (stop words included) because dropping stop words would leave one generic word
    /// ("time off" must not match every "time").
    phrases: [Vec<Vec<u32>>; 2],
    phrase_list: Vec<Phrase>,
    concept_names: Vec<String>,
    /// Some phrase must match stop words too, so documents stem them as well.
    phrases_use_stop_words: bool,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("phrases", &self.phrase_list.len())
            .field("concepts", &self.concept_names.len())
            .finish()
    }
}

fn stemmer_index(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Fr => 1,
    }
}

impl Analyzer {
    /// An analyzer that knows the concepts of `lexicon`.
    pub fn new(lexicon: &Lexicon) -> Self {
        let stemmers = [Stemmer::create(Algorithm::English), Stemmer::create(Algorithm::French)];
        let mut analyzer = Analyzer {
            stemmers,
            phrase_stems: HashMap::default(),
            phrases: [Vec::new(), Vec::new()],
            phrase_list: Vec::new(),
            concept_names: Vec::new(),
            phrases_use_stop_words: false,
        };
        for (c, concept) in lexicon.concepts.iter().enumerate() {
            let name = concept.en.first().or(concept.fr.first()).cloned().unwrap_or_default();
            analyzer.concept_names.push(text::fold(&name));
            for phrase in concept.en.iter().chain(&concept.fr) {
                analyzer.add_phrase(phrase, c as u32);
            }
        }
        analyzer
    }

    fn add_phrase(&mut self, phrase: &str, concept: u32) {
        let words = self.words(phrase);
        let content: Vec<&Word> = words.iter().filter(|w| w.content).collect();
        let strict = content.is_empty() || (content.len() == 1 && words.len() > 1);
        let chosen: Vec<&Word> = if strict { words.iter().collect() } else { content };
        if chosen.is_empty() {
            return;
        }
        let mut intern = |stem: &Term| {
            let next = self.phrase_stems.len() as u32;
            *self.phrase_stems.entry(stem.clone()).or_insert(next)
        };
        let stems = [0, 1].map(|s| chosen.iter().map(|w| intern(&w.stems[s])).collect::<Vec<u32>>());
        self.phrases_use_stop_words |= strict;
        let id = self.phrase_list.len() as u32;
        let by_first = &mut self.phrases[usize::from(strict)];
        for first in [stems[0][0], stems[1][0]] {
            if by_first.len() <= first as usize {
                by_first.resize(first as usize + 1, Vec::new());
            }
            let ids = &mut by_first[first as usize];
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
        self.phrase_list.push(Phrase { stems, concept });
    }

    /// The stem of a folded word under `lang`'s stemmer.
    pub fn stem(&self, lang: Lang, word: &str) -> String {
        self.stemmers[stemmer_index(lang)].stem(word).into_owned()
    }

    /// Folds, segments and stems `text` both ways.
    pub fn words(&self, text: &str) -> Vec<Word> {
        let mut out = Vec::new();
        text::for_each_word(text, |w| out.push(self.word(w)));
        out
    }

    /// One folded word with its stems. Queries repeat the same words, so each thread
    /// keeps the stems it has computed.
    pub fn word(&self, surface: &str) -> Word {
        let stems = QUERY_STEMS.with(|cache| {
            let mut cache = cache.borrow_mut();
            [0, 1].map(|s| cache.stem(&self.stemmers[s], s, surface))
        });
        Word { surface: surface.into(), stems, content: !is_stop_word(surface) }
    }

    /// The terms of a document written in `lang`: the stems of its content words, then
    /// one concept term per lexicon phrase it contains.
    pub fn document_terms(&self, text: &str, lang: Lang) -> Vec<Term> {
        self.document_terms_cached(text, lang, &mut StemCache::default())
    }

    /// [`Analyzer::document_terms`] reusing the stems of words seen before.
    pub fn document_terms_cached(&self, text: &str, lang: Lang, cache: &mut StemCache) -> Vec<Term> {
        self.analyze_text(text, lang, cache, &mut Vec::new())
    }

    /// The terms of `text`; its content words are appended to `content_words`.
    fn analyze_text(
        &self,
        text: &str,
        lang: Lang,
        cache: &mut StemCache,
        content_words: &mut Vec<Term>,
    ) -> Vec<Term> {
        let s = stemmer_index(lang);
        let mut words = Vec::new();
        text::for_each_word(text, |w| {
            let content = !is_stop_word(w);
            let stem = if content || self.phrases_use_stop_words {
                cache.stem(&self.stemmers[s], s, w)
            } else {
                Term::default()
            };
            let mut stems = [Term::default(), Term::default()];
            stems[s] = stem;
            words.push(Word { surface: w.into(), stems, content });
        });
        let mut terms: Vec<Term> = words.iter().filter(|w| w.content).map(|w| w.stems[s].clone()).collect();
        terms.extend(self.concepts(&words, &[s]).into_iter().map(|c| self.concept_term(c).into()));
        content_words.extend(words.into_iter().filter(|w| w.content).map(|w| w.surface));
        terms
    }

    /// The texts of an entry the index holds: its questions, and its answer if indexed.
    fn entry_texts(e: &FaqEntry, index_answer: bool) -> impl Iterator<Item = (Unit, &str)> {
        let questions = e.questions.iter().enumerate().map(|(i, q)| (Unit::Question(i), q.as_str()));
        questions.chain(index_answer.then_some((Unit::Answer, e.answer.as_str())))
    }

    /// The distinct content words of an entry's indexed texts, without analysing them
    /// further: what removing the entry takes from typo correction.
    pub fn entry_words(&self, e: &FaqEntry, index_answer: bool) -> Vec<Term> {
        let mut words: Vec<Term> = Vec::new();
        for (_, text) in Self::entry_texts(e, index_answer) {
            text::for_each_word(text, |w| {
                if !is_stop_word(w) {
                    words.push(w.into());
                }
            });
        }
        words.sort_unstable();
        words.dedup();
        words
    }

    /// An entry's units and content words, ready to index.
    pub fn analyze_entry(&self, e: &FaqEntry, index_answer: bool, cache: &mut StemCache) -> EntryAnalysis {
        let mut units = Vec::with_capacity(e.questions.len() + 1);
        let mut words: Vec<Term> = Vec::new();
        for (unit, text) in Self::entry_texts(e, index_answer) {
            let mut terms = self.analyze_text(text, e.lang, cache, &mut words);
            terms.sort_unstable();
            let mut counted: Vec<(Term, u32)> = Vec::with_capacity(terms.len());
            for t in terms {
                match counted.last_mut() {
                    Some((last, n)) if *last == t => *n += 1,
                    _ => counted.push((t, 1)),
                }
            }
            units.push((unit, counted));
        }
        words.sort_unstable();
        words.dedup();
        EntryAnalysis { units, words }
    }

    /// The concepts whose phrases occur in `words`, matching stems of the given stemmers
    /// (a phrase matches when all its words match under one stemmer). One entry per match.
    pub fn concepts(&self, words: &[Word], stemmers: &[usize]) -> Vec<u32> {
        let ids: Vec<[u32; 2]> = words
            .iter()
            .map(|w| {
                [0, 1].map(|s| {
                    let known = stemmers.contains(&s).then(|| self.phrase_stems.get(w.stems[s].as_str()));
                    known.flatten().copied().unwrap_or(NO_STEM)
                })
            })
            .collect();
        let content: Vec<usize> = (0..words.len()).filter(|&i| words[i].content).collect();
        let all: Vec<usize> = (0..words.len()).collect();
        let mut found = Vec::new();
        for (stream, by_first) in [(&content, &self.phrases[0]), (&all, &self.phrases[1])] {
            for start in 0..stream.len() {
                for &s in stemmers {
                    let first = ids[stream[start]][s];
                    let Some(candidates) = by_first.get(first as usize) else { continue };
                    for &id in candidates {
                        let phrase = &self.phrase_list[id as usize];
                        // All the phrase's words must match under one stemmer.
                        let matches = stemmers.iter().any(|&s| {
                            let p = &phrase.stems[s];
                            let at = &stream[start..];
                            at.len() >= p.len() && p.iter().zip(at).all(|(&stem, &w)| stem == ids[w][s])
                        });
                        if matches {
                            found.push(phrase.concept);
                        }
                    }
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The index term standing for concept `c`.
    pub fn concept_term(&self, c: u32) -> String {
        format!("{CONCEPT_PREFIX}{c}")
    }

    /// A readable name for a term: concept terms show their concept's first phrase.
    pub fn describe_term(&self, term: &str) -> String {
        match term.strip_prefix(CONCEPT_PREFIX).and_then(|c| c.parse::<usize>().ok()) {
            Some(c) => format!("{CONCEPT_PREFIX}{}", self.concept_names.get(c).map_or("?", String::as_str)),
            None => term.to_owned(),
        }
    }

    /// The language a short message is most likely in, when the stop words say so.
    pub fn detect_language(words: &[Word], raw: &str) -> Option<Lang> {
        let (en, mut fr) = super::stopwords::language_votes(words.iter().map(|w| w.surface.as_str()));
        // Accented letters French uses but English does not.
        let french_letter = |c| {
            matches!(
                c,
                'é' | 'è'
                    | 'ê'
                    | 'à'
                    | 'â'
                    | 'ç'
                    | 'ù'
                    | 'û'
                    | 'î'
                    | 'ï'
                    | 'ô'
                    | 'œ'
                    | 'É'
                    | 'È'
                    | 'Ê'
                    | 'À'
                    | 'Ç'
            )
        };
        if raw.chars().any(french_letter) {
            fr += 1;
        }
        match en.cmp(&fr) {
            std::cmp::Ordering::Greater => Some(Lang::En),
            std::cmp::Ordering::Less => Some(Lang::Fr),
            std::cmp::Ordering::Equal => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Concept;

    fn lexicon() -> Lexicon {
        Lexicon {
            concepts: vec![
                Concept {
                    en: vec!["payslip".into(), "pay slip".into()],
                    fr: vec!["fiche de paie".into(), "bulletin de salaire".into()],
                },
                Concept { en: vec!["time off".into()], fr: vec!["congé".into()] },
            ],
        }
    }

    #[test]
    fn a_french_phrase_and_an_english_word_share_a_concept_term() {
        let a = Analyzer::new(&lexicon());
        let fr = a.document_terms("Où trouver ma fiche de paie ?", Lang::Fr);
        let en = a.document_terms("Where is my payslip?", Lang::En);
        assert!(fr.iter().any(|t| t == "~0"), "{fr:?}");
        assert!(en.iter().any(|t| t == "~0"), "{en:?}");
    }

    #[test]
    fn content_phrases_match_without_their_stop_words() {
        let a = Analyzer::new(&lexicon());
        let words = a.words("ma fiche paie");
        assert_eq!(a.concepts(&words, &[0, 1]), [0]);
    }

    #[test]
    fn strict_phrases_need_every_word() {
        let a = Analyzer::new(&lexicon());
        assert!(a.concepts(&a.words("what time is it"), &[0, 1]).is_empty());
        assert_eq!(a.concepts(&a.words("I need time off"), &[0, 1]), [1]);
        assert_eq!(a.concepts(&a.words("mes conges"), &[0, 1]), [1]);
    }

    #[test]
    fn language_is_told_by_stop_words_and_accents() {
        let a = Analyzer::new(&lexicon());
        let detect = |s: &str| Analyzer::detect_language(&a.words(s), s);
        assert_eq!(detect("where is my payslip"), Some(Lang::En));
        assert_eq!(detect("où est ma fiche de paie"), Some(Lang::Fr));
        assert_eq!(detect("payslip"), None);
    }
}
