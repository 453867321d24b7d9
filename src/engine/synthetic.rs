//! Deterministic synthetic FAQ corpora and queries, for benchmarks and load tests.
//!
//! [`corpus`] writes `n` bilingual HR/admin entries (about half English, half French), each
//! with three questions and an answer in its own language; [`queries`] paraphrases their
//! questions the way employees type them and says which entry each should find.
//!
//! Words are picked Zipf-like — rank `r` of a list with probability ∝ `1 / (r + 1)` — so a
//! few words (`leave`, `congé`, `Lyon`) are in a large share of the entries and most are
//! rare, which gives posting lists the skew of a real FAQ. A few hundred hand-written nouns,
//! verbs and modifiers per language sit beside a long tail of several thousand site, product
//! and vendor names and codes (`Lyon`, `Workday`, `Brailon`, `B214`), shared by both languages.
//!
//! Owns: a seeded PRNG, the vocabulary, the question and answer templates.
//! Compiled only with the `synthetic` cargo feature: the benches and the tests turn it on
//! (through the package's dev-dependency on itself); the product build does not contain it.
//!
//! Must not: do I/O, read the clock or any other source of randomness than the seed, or
//! depend on the engine beyond [`FaqEntry`] and [`Lang`] — the same `(n, seed)` gives the
//! same corpus on every machine, and a corpus of `n` entries is a prefix of a larger one.
//!
//! ```
//! let entries = wabot::synthetic::corpus(100, 7);
//! assert_eq!(entries.len(), 100);
//! assert_eq!(entries, wabot::synthetic::corpus(100, 7));
//! let queries = wabot::synthetic::queries(&entries, 10, 7);
//! assert!(queries.iter().all(|(_, id)| entries.iter().any(|e| &e.id == id)));
//! ```

use crate::engine::{FaqEntry, Lang};
use std::collections::HashSet;

/// Questions per entry.
pub const QUESTIONS_PER_ENTRY: usize = 3;
/// Words in a question, inclusive.
pub const QUESTION_WORDS: (usize, usize) = (6, 14);
/// Words in an answer, inclusive.
pub const ANSWER_WORDS: (usize, usize) = (25, 60);

/// Generated names beside the hand-written ones: the long tail of the vocabulary.
const GENERATED_NAMES: usize = 12_000;
/// The vocabulary does not depend on the corpus seed, so corpora of different seeds share it.
const VOCABULARY_SEED: u64 = 0x05EE_D0FF_4C00;
/// Keeps the query stream apart from the corpus stream of the same seed.
const QUERY_STREAM: u64 = 0x9E37_79B9_7F4A_7C15;

/// `n` synthetic FAQ entries, ids `syn-{i}-en` / `syn-{i}-fr`. Same `(n, seed)`, same
/// entries; `corpus(n, s)` is a prefix of `corpus(m, s)` for `n <= m`.
pub fn corpus(n: usize, seed: u64) -> Vec<FaqEntry> {
    let vocab = Vocabulary::new();
    let mut rng = Rng(seed);
    (0..n).map(|i| vocab.entry(i, &mut rng)).collect()
}

/// `n` queries paraphrasing questions of `corpus`, each with the id of the entry it comes
/// from: a word or two dropped or swapped, sometimes a one-letter typo in a long word. The
/// expected entry is usually, not always, the best match (two entries may share the words
/// left). Empty when `corpus` is.
pub fn queries(corpus: &[FaqEntry], n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed ^ QUERY_STREAM);
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !corpus.is_empty() {
        let e = &corpus[rng.below(corpus.len())];
        if e.questions.is_empty() {
            continue;
        }
        let q = &e.questions[rng.below(e.questions.len())];
        out.push((paraphrase(q, &mut rng), e.id.clone()));
    }
    out
}

/// Words as a reader counts them: whitespace-separated, with at least one letter or digit
/// (a French `?` is not a word).
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count()
}

// ── Randomness ───────────────────────────────────────────────────────────────

/// SplitMix64 (Steele, Lea & Flood, 2014): tiny, fast, and plenty for picking words.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`, `n > 0` (multiply-shift: the bias is far below what matters here).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A ranked word list: rank `r` is picked with probability ∝ `1 / (r + 1)`.
#[derive(Debug)]
struct Ranked<T> {
    items: Vec<T>,
    /// Cumulative weights, `cdf[r] = Σ_{i ≤ r} 1 / (i + 1)`.
    cdf: Vec<f64>,
}

impl<T> Ranked<T> {
    fn new(items: Vec<T>) -> Self {
        assert!(!items.is_empty(), "a ranked list needs items");
        let mut total = 0.0;
        let cdf = (0..items.len())
            .map(|r| {
                total += 1.0 / (r as f64 + 1.0);
                total
            })
            .collect();
        Ranked { items, cdf }
    }

    fn pick(&self, rng: &mut Rng) -> &T {
        let u = rng.unit() * self.cdf[self.cdf.len() - 1];
        let r = self.cdf.partition_point(|&c| c <= u);
        &self.items[r.min(self.items.len() - 1)]
    }

    /// A pick different from `other`, when the list has another item.
    fn pick_other(&self, rng: &mut Rng, other: &T) -> &T
    where
        T: PartialEq,
    {
        for _ in 0..8 {
            let x = self.pick(rng);
            if x != other {
                return x;
            }
        }
        self.items.iter().find(|x| *x != other).unwrap_or(&self.items[0])
    }
}

// ── Vocabulary ───────────────────────────────────────────────────────────────

/// A French noun and whether it is feminine.
type NounFr = (&'static str, bool);
/// A French adjective, masculine and feminine.
type AdjFr = (&'static str, &'static str);

const M: bool = false;
const F: bool = true;

/// Everything the templates draw from, most frequent first.
struct Vocabulary {
    names: Ranked<String>,
    en_nouns: Ranked<&'static str>,
    en_verbs: Ranked<&'static str>,
    en_mods: Ranked<&'static str>,
    en_states: Ranked<&'static str>,
    en_times: Ranked<&'static str>,
    en_places: Ranked<&'static str>,
    en_teams: Ranked<&'static str>,
    en_sections: Ranked<&'static str>,
    en_contracts: Ranked<&'static str>,
    fr_nouns: Ranked<NounFr>,
    fr_verbs: Ranked<&'static str>,
    fr_mods: Ranked<AdjFr>,
    fr_states: Ranked<AdjFr>,
    fr_times: Ranked<&'static str>,
    fr_places: Ranked<NounFr>,
    fr_teams: Ranked<(&'static str, &'static str)>,
    fr_sections: Ranked<&'static str>,
    fr_contracts: Ranked<&'static str>,
    mailboxes: Ranked<&'static str>,
}

impl Vocabulary {
    fn new() -> Self {
        Vocabulary {
            names: Ranked::new(names()),
            en_nouns: Ranked::new(EN_NOUNS.to_vec()),
            en_verbs: Ranked::new(EN_VERBS.to_vec()),
            en_mods: Ranked::new(EN_MODIFIERS.to_vec()),
            en_states: Ranked::new(EN_STATES.to_vec()),
            en_times: Ranked::new(EN_TIMES.to_vec()),
            en_places: Ranked::new(EN_PLACES.to_vec()),
            en_teams: Ranked::new(EN_TEAMS.to_vec()),
            en_sections: Ranked::new(EN_SECTIONS.to_vec()),
            en_contracts: Ranked::new(EN_CONTRACTS.to_vec()),
            fr_nouns: Ranked::new(FR_NOUNS.to_vec()),
            fr_verbs: Ranked::new(FR_VERBS.to_vec()),
            fr_mods: Ranked::new(FR_MODIFIERS.to_vec()),
            fr_states: Ranked::new(FR_STATES.to_vec()),
            fr_times: Ranked::new(FR_TIMES.to_vec()),
            fr_places: Ranked::new(FR_PLACES.to_vec()),
            fr_teams: Ranked::new(FR_TEAMS.to_vec()),
            fr_sections: Ranked::new(FR_SECTIONS.to_vec()),
            fr_contracts: Ranked::new(FR_CONTRACTS.to_vec()),
            mailboxes: Ranked::new(MAILBOXES.to_vec()),
        }
    }

    /// The `i`-th entry. Its questions share a subject — a noun, a second noun and a name —
    /// and vary the rest, as the ways of asking one FAQ question do.
    fn entry(&self, i: usize, rng: &mut Rng) -> FaqEntry {
        let lang = if rng.chance(0.5) { Lang::En } else { Lang::Fr };
        let name = self.names.pick(rng).as_str();
        let (questions, answer) = match lang {
            Lang::En => {
                let noun = *self.en_nouns.pick(rng);
                let noun2 = *self.en_nouns.pick_other(rng, &noun);
                let questions = self.several(rng, |v, rng| v.question_en(rng, noun, noun2, name));
                (questions, self.answer_en(rng, noun, noun2, name))
            }
            Lang::Fr => {
                let noun = *self.fr_nouns.pick(rng);
                let noun2 = *self.fr_nouns.pick_other(rng, &noun);
                let questions = self.several(rng, |v, rng| v.question_fr(rng, noun, noun2.0, name));
                (questions, self.answer_fr(rng, noun, noun2.0, name))
            }
        };
        let question_refs: Vec<&str> = questions.iter().map(String::as_str).collect();
        FaqEntry::new(&format!("syn-{i}-{}", lang.code()), lang, &question_refs, &answer)
    }

    /// [`QUESTIONS_PER_ENTRY`] distinct questions within [`QUESTION_WORDS`].
    fn several(&self, rng: &mut Rng, mut make: impl FnMut(&Self, &mut Rng) -> String) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(QUESTIONS_PER_ENTRY);
        // Bounded so a pathological vocabulary cannot loop forever; 64 tries is far more
        // than the templates ever need.
        for _ in 0..64 {
            if out.len() == QUESTIONS_PER_ENTRY {
                break;
            }
            let q = make(self, rng);
            let words = word_count(&q);
            if (QUESTION_WORDS.0..=QUESTION_WORDS.1).contains(&words) && !out.contains(&q) {
                out.push(q);
            }
        }
        out
    }

    fn question_en(&self, rng: &mut Rng, n: &str, n2: &str, t: &str) -> String {
        let v = self.en_verbs.pick(rng);
        let m = self.en_mods.pick(rng);
        let w = self.en_times.pick(rng);
        let p = self.en_places.pick(rng);
        match rng.below(12) {
            0 => format!("How do I {v} my {m} {n} for {t}?"),
            1 => format!("Where can I {v} the {n} {n2} at the {t} {p}?"),
            2 => format!("Who should I contact to {v} {} {n} in {t} {w}?", a(m)),
            3 => format!("Can I {v} my {n} {n2} {w} with {t}?"),
            4 => format!("What is the process to {v} {} at the {t} {p}?", a(n)),
            5 => format!("Is it possible to {v} my {m} {n} through {t} {w}?"),
            6 => format!("I need to {v} my {n} {n2} for {t}, what should I do?"),
            7 => format!("{t}: how long does it take to {v} {} {n}?", a(m)),
            8 => format!("Why can't I {v} my {n} {n2} in {t} anymore?"),
            9 => format!("Do I have to {v} the {m} {n} before using {t}?"),
            10 => format!("Which form do I use to {v} my {n} at {t} {w}?"),
            _ => format!("My {n} {n2} at {t} is {}, how do I {v} it?", self.en_states.pick(rng)),
        }
    }

    fn question_fr(&self, rng: &mut Rng, n: NounFr, n2: &str, t: &str) -> String {
        let v = self.fr_verbs.pick(rng);
        let m = agree(*self.fr_mods.pick(rng), n.1);
        let w = self.fr_times.pick(rng);
        let p = *self.fr_places.pick(rng);
        let (noun, poss, def, indef) = (n.0, possessive(n), definite(n), indefinite(n));
        match rng.below(12) {
            0 => format!("Comment {v} {poss} {noun} {m} pour {t} ?"),
            1 => format!("Où puis-je {v} {def}{noun} {}{n2} {}{} de {t} ?", de(n2), to_definite(p), p.0),
            2 => format!("Qui contacter pour {v} {indef} {noun} {m} à {t} {w} ?"),
            3 => format!("Puis-je {v} {poss} {noun} {}{n2} {w} avec {t} ?", de(n2)),
            4 => format!("Quelle est la démarche pour {v} {indef} {noun} {}{} de {t} ?", to_definite(p), p.0),
            5 => format!("Est-il possible {}{v} {poss} {noun} {m} via {t} {w} ?", de(v)),
            6 => format!("Je dois {v} {poss} {noun} {}{n2} pour {t}, que faire ?", de(n2)),
            7 => format!("{t} : combien de temps faut-il pour {v} {indef} {noun} {m} ?"),
            8 => format!("Pourquoi je ne peux plus {v} {poss} {noun} {}{n2} sur {t} ?", de(n2)),
            9 => format!("Faut-il {v} {def}{noun} {m} avant d'utiliser {t} ?"),
            10 => format!("Quel formulaire utiliser pour {v} {poss} {noun} à {t} {w} ?"),
            _ => {
                let state = agree(*self.fr_states.pick(rng), n.1);
                let it = match (starts_with_vowel(v), n.1) {
                    (true, _) => "l'",
                    (false, true) => "la ",
                    (false, false) => "le ",
                };
                format!("{} {noun} {}{n2} à {t} est {state}, comment {it}{v} ?", capitalize(poss), de(n2))
            }
        }
    }

    /// Sentences until the answer reaches [`ANSWER_WORDS`]; the first names the subject.
    fn answer_en(&self, rng: &mut Rng, n: &str, n2: &str, t: &str) -> String {
        let v = self.en_verbs.pick(rng);
        let first = format!("To {v} your {n}, open {t} and go to {}.", self.en_sections.pick(rng));
        self.fill_answer(rng, first, |rng, k| {
            let team = self.en_teams.pick(rng);
            let n3 = self.en_nouns.pick(rng);
            let a_m = a(self.en_mods.pick(rng));
            let days = rng.between(2, 30);
            match k {
                0 => format!("Requests for {a_m} {n} are handled by the {team} within {days} working days."),
                1 => {
                    "You receive a confirmation e-mail once your manager has approved the request.".to_owned()
                }
                2 => format!(
                    "Staff based at the {t} {} can also ask the {team} directly.",
                    self.en_places.pick(rng)
                ),
                3 => format!("Attach the {n2} to your request, otherwise it cannot be processed."),
                4 => format!(
                    "If the {n} is {}, call extension {} or write to {}@example.com.",
                    self.en_states.pick(rng),
                    rng.between(1000, 9999),
                    self.mailboxes.pick(rng)
                ),
                5 => format!("The {n} {n2} is usually available {}.", self.en_times.pick(rng)),
                6 => format!(
                    "For {a_m} {n}, the {team} may ask you for {} from {}.",
                    a(n3),
                    self.names.pick(rng)
                ),
                7 => format!("More details are in the {t} guide, section {}.", rng.between(1, 40)),
                8 => format!(
                    "This applies to every {} contract, including part-time staff.",
                    self.en_contracts.pick(rng)
                ),
                9 => format!(
                    "Keep a copy of the {n2} for {} years, as the {n3} policy requires.",
                    rng.between(2, 10)
                ),
                _ => format!(
                    "The deadline is {}; late requests are processed the following month.",
                    self.en_times.pick(rng)
                ),
            }
        })
    }

    fn answer_fr(&self, rng: &mut Rng, n: NounFr, n2: &str, t: &str) -> String {
        let v = self.fr_verbs.pick(rng);
        let first =
            format!("Pour {v} votre {}, ouvrez {t} puis allez dans {}.", n.0, self.fr_sections.pick(rng));
        self.fill_answer(rng, first, |rng, k| {
            let (team, to_team) = *self.fr_teams.pick(rng);
            let n3 = *self.fr_nouns.pick(rng);
            let days = rng.between(2, 30);
            match k {
                0 => format!(
                    "Une demande de {} {} est traitée par {team} sous {days} jours ouvrés.",
                    n.0,
                    agree(*self.fr_mods.pick(rng), n.1)
                ),
                1 => "Vous recevez un e-mail de confirmation dès que votre manager a validé la demande."
                    .to_owned(),
                2 => {
                    let p = *self.fr_places.pick(rng);
                    format!(
                        "Les salariés {}{} de {t} peuvent aussi s'adresser directement {to_team}.",
                        of_definite(p),
                        p.0
                    )
                }
                3 => format!(
                    "Joignez le justificatif {}{n2} à votre demande, sinon elle ne peut pas être traitée.",
                    de(n2)
                ),
                4 => format!(
                    "Si votre {} est {}, appelez le poste {} ou écrivez à {}@example.com.",
                    n.0,
                    agree(*self.fr_states.pick(rng), n.1),
                    rng.between(1000, 9999),
                    self.mailboxes.pick(rng)
                ),
                5 => format!(
                    "{}{} {}{n2} est généralement disponible {}.",
                    capitalize(definite(n)),
                    n.0,
                    de(n2),
                    self.fr_times.pick(rng)
                ),
                6 => format!(
                    "Pour {} {} {}, {team} peut vous demander {} {} de {}.",
                    indefinite(n),
                    n.0,
                    agree(*self.fr_mods.pick(rng), n.1),
                    indefinite(n3),
                    n3.0,
                    self.names.pick(rng)
                ),
                7 => format!("Tous les détails figurent dans le guide {t}, section {}.", rng.between(1, 40)),
                8 => format!(
                    "Cela s'applique à tous les contrats {}, temps partiel compris.",
                    self.fr_contracts.pick(rng)
                ),
                9 => format!(
                    "Conservez une copie {}{n2} pendant {} ans, comme le prévoit la politique {}{}.",
                    de(n2),
                    rng.between(2, 10),
                    de(n3.0),
                    n3.0
                ),
                _ => format!(
                    "La date limite est {} ; les demandes tardives sont traitées le mois suivant.",
                    self.fr_times.pick(rng)
                ),
            }
        })
    }

    /// `first`, then distinct random sentences of `sentence(rng, k)` (`k` in `0..11`) until
    /// the text has at least [`ANSWER_WORDS`]`.0` words, never more than `.1`.
    fn fill_answer(
        &self,
        rng: &mut Rng,
        first: String,
        mut sentence: impl FnMut(&mut Rng, usize) -> String,
    ) -> String {
        let mut text = first;
        let mut words = word_count(&text);
        let mut used = [false; 11];
        let mut target = ANSWER_WORDS.0;
        // Some answers go on past the minimum, so lengths spread over the whole range.
        if rng.chance(0.5) {
            target = rng.between(ANSWER_WORDS.0, ANSWER_WORDS.1);
        }
        for _ in 0..64 {
            if words >= target {
                break;
            }
            let k = rng.below(used.len());
            if used[k] {
                continue;
            }
            let s = sentence(rng, k);
            let w = word_count(&s);
            if words + w > ANSWER_WORDS.1 {
                continue;
            }
            used[k] = true;
            text.push(' ');
            text.push_str(&s);
            words += w;
        }
        text
    }
}

/// The long tail: real site and product names first, then generated names and codes.
fn names() -> Vec<String> {
    let mut rng = Rng(VOCABULARY_SEED);
    let mut seen: HashSet<String> = HashSet::new();
    let mut out: Vec<String> = Vec::with_capacity(REAL_NAMES.len() + GENERATED_NAMES);
    for n in REAL_NAMES {
        if seen.insert(n.to_lowercase()) {
            out.push((*n).to_owned());
        }
    }
    let target = out.len() + GENERATED_NAMES;
    while out.len() < target {
        let name = if rng.chance(0.2) {
            // A building, room or form code: `B214`, `RH42`.
            let letters = rng.between(1, 2);
            let mut s: String = (0..letters).map(|_| (b'A' + rng.below(26) as u8) as char).collect();
            s.push_str(&rng.between(10, 999).to_string());
            s
        } else {
            let mut s = String::new();
            for _ in 0..rng.between(2, 3) {
                s.push_str(rng.pick::<&str>(ONSETS));
                s.push_str(rng.pick::<&str>(NUCLEI));
                s.push_str(rng.pick::<&str>(CODAS));
            }
            capitalize(&s)
        };
        if seen.insert(name.to_lowercase()) {
            out.push(name);
        }
    }
    out
}

// ── Grammar helpers ──────────────────────────────────────────────────────────

fn starts_with_vowel(word: &str) -> bool {
    word.chars().next().is_some_and(|c| "aeiouyéèêàâîïôûAEIOUYÉ".contains(c))
        || ["hôtel", "horaire", "heures", "habilitation", "hébergement"].iter().any(|h| word.starts_with(h))
}

/// English indefinite article with its word: `a badge`, `an expense`.
fn a(word: &str) -> String {
    if starts_with_vowel(word) { format!("an {word}") } else { format!("a {word}") }
}

/// `de ` or `d'` before `word`.
fn de(word: &str) -> &'static str {
    if starts_with_vowel(word) { "d'" } else { "de " }
}

fn possessive((word, fem): NounFr) -> &'static str {
    if fem && !starts_with_vowel(word) { "ma" } else { "mon" }
}

/// `le `, `la ` or `l'`, to be written right before the noun.
fn definite((word, fem): NounFr) -> &'static str {
    match (starts_with_vowel(word), fem) {
        (true, _) => "l'",
        (false, true) => "la ",
        (false, false) => "le ",
    }
}

fn indefinite((_, fem): NounFr) -> &'static str {
    if fem { "une" } else { "un" }
}

/// `au `, `à la ` or `à l'` before a place.
fn to_definite(noun: NounFr) -> &'static str {
    match definite(noun) {
        "le " => "au ",
        "la " => "à la ",
        _ => "à l'",
    }
}

/// `du `, `de la ` or `de l'` before a place.
fn of_definite(noun: NounFr) -> &'static str {
    match definite(noun) {
        "le " => "du ",
        "la " => "de la ",
        _ => "de l'",
    }
}

fn agree((masculine, feminine): AdjFr, fem: bool) -> &'static str {
    if fem { feminine } else { masculine }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

// ── Queries ──────────────────────────────────────────────────────────────────

/// A question as an employee might retype it.
fn paraphrase(question: &str, rng: &mut Rng) -> String {
    let mut words: Vec<String> = question.split_whitespace().map(str::to_owned).collect();
    let is_word = |w: &String| w.chars().any(char::is_alphanumeric);
    let mut changed = false;
    if rng.chance(0.6) {
        changed |= drop_word(&mut words, rng, is_word);
        if rng.chance(0.3) {
            drop_word(&mut words, rng, is_word);
        }
    }
    if rng.chance(0.35) && words.len() >= 2 {
        let i = rng.below(words.len() - 1);
        words.swap(i, i + 1);
        changed = true;
    }
    if rng.chance(0.35) {
        changed |= typo(&mut words, rng);
    }
    if !changed {
        drop_word(&mut words, rng, is_word);
    }
    let mut text = words.join(" ");
    if rng.chance(0.3) {
        text = text.to_lowercase();
    }
    if rng.chance(0.3) {
        text = text.trim_end_matches([' ', '?']).to_owned();
    }
    text
}

/// Drops one word, keeping at least four.
fn drop_word(words: &mut Vec<String>, rng: &mut Rng, is_word: impl Fn(&String) -> bool) -> bool {
    let candidates: Vec<usize> = (0..words.len()).filter(|&i| is_word(&words[i])).collect();
    if candidates.len() <= 4 {
        return false;
    }
    words.remove(*rng.pick(&candidates));
    true
}

/// One-letter typo — substitution, deletion, doubling or swap, never the first letter — in
/// a lowercase word of seven letters or more.
fn typo(words: &mut [String], rng: &mut Rng) -> bool {
    let long: Vec<usize> = (0..words.len())
        .filter(|&i| {
            let w = words[i].trim_end_matches([',', '?', ':']);
            w.len() >= 7 && w.bytes().all(|b| b.is_ascii_lowercase())
        })
        .collect();
    if long.is_empty() {
        return false;
    }
    let i = *rng.pick(&long);
    let word = &mut words[i];
    let len = word.trim_end_matches([',', '?', ':']).len();
    let mut bytes = word.as_bytes().to_vec();
    let at = rng.between(1, len - 2);
    match rng.below(4) {
        0 => {
            let original = bytes[at];
            bytes[at] = b'a' + ((original - b'a' + 1 + rng.below(25) as u8) % 26);
        }
        1 => {
            bytes.remove(at);
        }
        2 => bytes.insert(at, bytes[at]),
        _ => bytes.swap(at, at + 1),
    }
    *word = String::from_utf8(bytes).expect("ASCII letters stay ASCII");
    true
}

// ── Word lists, most frequent first ──────────────────────────────────────────

#[rustfmt::skip]
const EN_NOUNS: &[&str] = &[
    "leave", "payslip", "badge", "laptop", "password", "expense", "salary", "contract", "training",
    "certificate", "holiday", "account", "phone", "parking", "insurance", "pension", "bonus", "overtime",
    "timesheet", "claim", "receipt", "invoice", "mileage", "trip", "hotel", "flight", "visa", "address",
    "bank", "mailbox", "printer", "screen", "keyboard", "headset", "charger", "desk", "locker", "meeting",
    "room", "visitor", "card", "key", "voucher", "allowance", "refund", "reimbursement", "advance",
    "benefit", "ticket", "subscription", "vaccination", "appointment", "sickness", "absence", "injury",
    "accident", "maternity", "paternity", "adoption", "sabbatical", "resignation", "dismissal",
    "retirement", "probation", "promotion", "appraisal", "review", "objective", "interview", "referral",
    "onboarding", "offboarding", "induction", "mentor", "manager", "department", "headcount", "vacancy",
    "application", "recruitment", "internship", "apprenticeship", "relocation", "transfer", "secondment",
    "schedule", "shift", "rota", "timetable", "calendar", "deadline", "approval", "signature", "form",
    "document", "letter", "statement", "attestation", "declaration", "payroll", "deduction", "tax",
    "garnishment", "wage", "raise", "commission", "incentive", "shares", "savings", "scheme", "fund",
    "cover", "policy", "procedure", "portal", "software", "licence", "update", "upgrade", "installation",
    "scanner", "webcam", "monitor", "dock", "cable", "adapter", "battery", "backup", "drive", "folder",
    "network", "vpn", "router", "server", "profile", "photo", "directory", "extension", "voicemail",
    "sim", "tariff", "roaming", "uniform", "equipment", "chair", "footrest", "canteen", "cafeteria",
    "meal", "lunch", "gym", "shower", "bicycle", "car", "fuel", "toll", "taxi", "bus", "metro",
    "commute", "shuttle", "garage", "lift", "keycard", "fob", "alarm", "evacuation", "defibrillator",
    "doctor", "nurse", "checkup", "counselling", "wellbeing", "stress", "harassment", "complaint",
    "grievance", "whistleblowing", "ethics", "gift", "union", "representative", "election", "committee",
    "strike", "donation", "charity", "volunteering", "sponsorship", "event", "party", "seminar",
    "conference", "course", "exam", "diploma", "degree", "qualification", "skill", "language",
    "coaching", "budget", "purchase", "supplier", "order", "delivery", "parcel", "courier", "archive",
    "shredding", "confidentiality", "privacy", "consent", "dependant", "spouse", "child", "childcare",
    "nursery", "school", "wedding", "bereavement", "funeral", "birth", "moving", "housing", "rent",
    "deposit", "guarantee", "mortgage", "income", "seniority", "medal", "telework", "homeworking",
    "stipend", "per-diem", "canteen-card", "sickpay", "payday", "bonus-scheme", "pay-rise",
];

#[rustfmt::skip]
const EN_VERBS: &[&str] = &[
    "get", "request", "renew", "update", "change", "cancel", "submit", "download", "sign", "approve",
    "replace", "report", "claim", "check", "find", "declare", "transfer", "book", "extend", "reset",
    "activate", "return", "order", "print", "correct", "contest", "validate", "track", "modify",
    "register", "pay", "receive", "send", "upload", "share", "recover", "unlock", "apply for",
    "postpone", "split", "close", "open", "delete", "archive", "justify", "confirm", "configure",
    "install", "repair", "borrow", "view", "access", "withdraw", "convert", "suspend", "reactivate",
];

#[rustfmt::skip]
const EN_MODIFIERS: &[&str] = &[
    "new", "lost", "expired", "annual", "monthly", "temporary", "replacement", "missing", "blocked",
    "broken", "stolen", "damaged", "personal", "professional", "digital", "paper", "second", "first",
    "last", "urgent", "pending", "approved", "rejected", "incorrect", "duplicate", "provisional", "final",
    "electronic", "shared", "remote", "international", "local", "partial", "unpaid", "paid",
    "exceptional", "additional", "spare", "old", "current", "previous", "upcoming", "official", "signed",
    "scanned", "corrected", "frozen", "locked", "unused", "outstanding", "overdue", "special",
    "standard", "corporate", "quarterly", "weekly", "extra", "mandatory", "optional",
];

#[rustfmt::skip]
const EN_STATES: &[&str] = &[
    "lost", "broken", "missing", "blocked", "wrong", "late", "rejected", "damaged", "expired", "stolen",
    "incomplete", "unreadable", "frozen", "suspended", "overdue",
];

#[rustfmt::skip]
const EN_TIMES: &[&str] = &[
    "today", "tomorrow", "this week", "next week", "this month", "next month", "before Friday",
    "by month end", "in January", "in February", "in March", "in April", "in May", "in June", "in July",
    "in August", "in September", "in October", "in November", "in December", "during my notice",
    "after probation", "before summer", "this year", "next year", "on Monday", "before the deadline",
    "in 2025", "in 2026", "during the holidays", "right now", "as soon as possible", "this quarter",
    "after my return", "before my trip",
];

#[rustfmt::skip]
const EN_PLACES: &[&str] = &[
    "office", "site", "building", "campus", "headquarters", "branch", "warehouse", "plant", "agency",
    "store", "lab", "hub", "factory", "depot", "centre",
];

#[rustfmt::skip]
const EN_TEAMS: &[&str] = &[
    "HR team", "payroll team", "IT helpdesk", "facilities team", "travel desk", "benefits team",
    "security desk", "finance team", "HR business partner", "works council", "training team",
    "legal team", "health and safety officer", "reception",
];

#[rustfmt::skip]
const EN_SECTIONS: &[&str] = &[
    "My requests", "My documents", "My pay", "My time", "My profile", "Expenses", "Travel", "Equipment",
    "Benefits", "Training", "Settings", "Help",
];

#[rustfmt::skip]
const EN_CONTRACTS: &[&str] =
    &["permanent", "fixed-term", "temporary", "apprenticeship", "internship", "executive", "seasonal"];

#[rustfmt::skip]
const FR_NOUNS: &[NounFr] = &[
    ("congé", M), ("fiche de paie", F), ("badge", M), ("ordinateur portable", M), ("mot de passe", M),
    ("note de frais", F), ("salaire", M), ("contrat", M), ("formation", F), ("attestation", F),
    ("mutuelle", F), ("compte", M), ("téléphone", M), ("parking", M), ("assurance", F), ("retraite", F),
    ("prime", F), ("feuille de temps", F), ("demande", F), ("justificatif", M), ("facture", F),
    ("indemnité kilométrique", F), ("déplacement", M), ("hôtel", M), ("billet", M), ("visa", M),
    ("adresse", F), ("banque", F), ("messagerie", F), ("imprimante", F), ("écran", M), ("clavier", M),
    ("souris", F), ("casque", M), ("chargeur", M), ("bureau", M), ("casier", M), ("réunion", F),
    ("salle", F), ("visiteur", M), ("carte", F), ("clé", F), ("titre-restaurant", M), ("avance", F),
    ("avantage", M), ("abonnement", M), ("pass Navigo", M), ("rendez-vous", M), ("arrêt maladie", M),
    ("absence", F), ("maladie", F), ("accident du travail", M), ("congé maternité", M),
    ("congé paternité", M), ("congé parental", M), ("démission", F), ("licenciement", M),
    ("rupture conventionnelle", F), ("période d'essai", F), ("promotion", F), ("entretien annuel", M),
    ("objectif", M), ("évaluation", F), ("entretien", M), ("cooptation", F), ("intégration", F),
    ("tuteur", M), ("manager", M), ("équipe", F), ("service", M), ("poste", M), ("candidature", F),
    ("recrutement", M), ("stage", M), ("alternance", F), ("mutation", F), ("détachement", M),
    ("mobilité", F), ("planning", M), ("horaire", M), ("astreinte", F), ("calendrier", M),
    ("échéance", F), ("validation", F), ("signature", F), ("formulaire", M), ("document", M),
    ("courrier", M), ("relevé", M), ("déclaration", F), ("paie", F), ("retenue", F), ("impôt", M),
    ("prélèvement à la source", M), ("rémunération", F), ("augmentation", F), ("commission", F),
    ("intéressement", M), ("participation", F), ("épargne salariale", F), ("plan d'épargne", M),
    ("régime", M), ("garantie", F), ("politique", F), ("règlement", M), ("procédure", F), ("portail", M),
    ("application", F), ("logiciel", M), ("licence", F), ("mise à jour", F), ("installation", F),
    ("scanner", M), ("webcam", F), ("moniteur", M), ("station d'accueil", F), ("câble", M),
    ("adaptateur", M), ("batterie", F), ("sauvegarde", F), ("dossier", M), ("fichier", M), ("réseau", M),
    ("VPN", M), ("serveur", M), ("boîte mail", F), ("profil", M), ("photo", F), ("annuaire", M),
    ("numéro", M), ("messagerie vocale", F), ("forfait", M), ("carte SIM", F), ("tenue", F),
    ("équipement", M), ("fauteuil", M), ("ergonomie", F), ("cantine", F), ("restaurant d'entreprise", M),
    ("repas", M), ("déjeuner", M), ("salle de sport", F), ("douche", F), ("vélo", M), ("voiture", F),
    ("carburant", M), ("péage", M), ("taxi", M), ("bus", M), ("métro", M), ("trajet", M), ("navette", F),
    ("garage", M), ("ascenseur", M), ("alarme", F), ("incendie", M), ("évacuation", F),
    ("secourisme", M), ("défibrillateur", M), ("médecin du travail", M), ("visite médicale", F),
    ("infirmerie", F), ("soutien psychologique", M), ("bien-être", M), ("stress", M),
    ("harcèlement", M), ("plainte", F), ("réclamation", F), ("alerte éthique", F), ("déontologie", F),
    ("cadeau", M), ("conflit d'intérêts", M), ("syndicat", M), ("représentant", M), ("élection", F),
    ("CSE", M), ("grève", F), ("don", M), ("association", F), ("bénévolat", M), ("parrainage", M),
    ("événement", M), ("fête", F), ("séminaire", M), ("conférence", F), ("cours", M), ("examen", M),
    ("diplôme", M), ("compétence", F), ("langue", F), ("coaching", M), ("budget", M), ("achat", M),
    ("fournisseur", M), ("commande", F), ("livraison", F), ("colis", M), ("coursier", M),
    ("archive", F), ("destruction", F), ("confidentialité", F), ("RGPD", M), ("consentement", M),
    ("ayant droit", M), ("conjoint", M), ("enfant", M), ("garde d'enfant", F), ("crèche", F),
    ("école", F), ("famille", F), ("mariage", M), ("décès", M), ("naissance", F), ("déménagement", M),
    ("logement", M), ("loyer", M), ("caution", F), ("prêt immobilier", M), ("revenu", M),
    ("télétravail", M), ("RTT", F), ("compte épargne-temps", M), ("solde", M), ("acompte", M),
    ("virement", M), ("chèque-vacances", M), ("carte de transport", F), ("vaccin", M),
    ("certificat médical", M), ("médaille du travail", F), ("ancienneté", F), ("per diem", M),
];

#[rustfmt::skip]
const FR_VERBS: &[&str] = &[
    "obtenir", "demander", "renouveler", "mettre à jour", "modifier", "annuler", "envoyer",
    "télécharger", "signer", "valider", "remplacer", "signaler", "réclamer", "vérifier", "trouver",
    "déclarer", "transférer", "réserver", "prolonger", "réinitialiser", "activer", "rendre",
    "commander", "imprimer", "corriger", "contester", "suivre", "consulter", "enregistrer", "payer",
    "recevoir", "déposer", "partager", "récupérer", "débloquer", "reporter", "fractionner", "clôturer",
    "ouvrir", "supprimer", "archiver", "justifier", "confirmer", "configurer", "installer", "réparer",
    "emprunter", "faire rembourser", "faire valider", "poser", "saisir", "retirer", "convertir",
    "suspendre", "réactiver",
];

#[rustfmt::skip]
const FR_MODIFIERS: &[AdjFr] = &[
    ("perdu", "perdue"), ("expiré", "expirée"), ("annuel", "annuelle"), ("mensuel", "mensuelle"),
    ("provisoire", "provisoire"), ("de remplacement", "de remplacement"), ("manquant", "manquante"),
    ("bloqué", "bloquée"), ("cassé", "cassée"), ("volé", "volée"), ("endommagé", "endommagée"),
    ("personnel", "personnelle"), ("professionnel", "professionnelle"), ("numérique", "numérique"),
    ("papier", "papier"), ("urgent", "urgente"), ("en attente", "en attente"), ("validé", "validée"),
    ("refusé", "refusée"), ("incorrect", "incorrecte"), ("en double", "en double"),
    ("définitif", "définitive"), ("électronique", "électronique"), ("partagé", "partagée"),
    ("international", "internationale"), ("local", "locale"), ("partiel", "partielle"),
    ("non payé", "non payée"), ("payé", "payée"), ("exceptionnel", "exceptionnelle"),
    ("supplémentaire", "supplémentaire"), ("actuel", "actuelle"), ("précédent", "précédente"),
    ("officiel", "officielle"), ("signé", "signée"), ("scanné", "scannée"), ("corrigé", "corrigée"),
    ("gelé", "gelée"), ("verrouillé", "verrouillée"), ("inutilisé", "inutilisée"),
    ("en retard", "en retard"), ("spécial", "spéciale"), ("standard", "standard"),
    ("collectif", "collective"), ("trimestriel", "trimestrielle"), ("hebdomadaire", "hebdomadaire"),
    ("obligatoire", "obligatoire"), ("facultatif", "facultative"), ("dématérialisé", "dématérialisée"),
];

#[rustfmt::skip]
const FR_STATES: &[AdjFr] = &[
    ("perdu", "perdue"), ("cassé", "cassée"), ("introuvable", "introuvable"), ("bloqué", "bloquée"),
    ("faux", "fausse"), ("en retard", "en retard"), ("refusé", "refusée"), ("abîmé", "abîmée"),
    ("expiré", "expirée"), ("volé", "volée"), ("incomplet", "incomplète"), ("illisible", "illisible"),
    ("gelé", "gelée"), ("suspendu", "suspendue"), ("en souffrance", "en souffrance"),
];

#[rustfmt::skip]
const FR_TIMES: &[&str] = &[
    "aujourd'hui", "demain", "cette semaine", "la semaine prochaine", "ce mois-ci", "le mois prochain",
    "avant vendredi", "d'ici la fin du mois", "en janvier", "en février", "en mars", "en avril", "en mai",
    "en juin", "en juillet", "en août", "en septembre", "en octobre", "en novembre", "en décembre",
    "pendant mon préavis", "après ma période d'essai", "avant l'été", "cette année", "l'an prochain",
    "lundi", "avant la date limite", "en 2025", "en 2026", "pendant les vacances", "tout de suite",
    "dès que possible", "ce trimestre", "après mon retour", "avant mon départ",
];

#[rustfmt::skip]
const FR_PLACES: &[NounFr] = &[
    ("site", M), ("bâtiment", M), ("campus", M), ("siège", M), ("agence", F), ("entrepôt", M),
    ("usine", F), ("magasin", M), ("laboratoire", M), ("centre", M), ("établissement", M),
    ("plateforme", F), ("antenne", F), ("dépôt", M), ("bureau", M),
];

#[rustfmt::skip]
const FR_TEAMS: &[(&str, &str)] = &[
    ("l'équipe RH", "à l'équipe RH"), ("le service paie", "au service paie"),
    ("le support informatique", "au support informatique"), ("les services généraux", "aux services généraux"),
    ("l'agence de voyages", "à l'agence de voyages"), ("le service avantages", "au service avantages"),
    ("l'accueil sécurité", "à l'accueil sécurité"), ("la comptabilité", "à la comptabilité"),
    ("votre RRH", "à votre RRH"), ("le CSE", "au CSE"), ("l'équipe formation", "à l'équipe formation"),
    ("le service juridique", "au service juridique"), ("le référent sécurité", "au référent sécurité"),
    ("l'accueil", "à l'accueil"),
];

#[rustfmt::skip]
const FR_SECTIONS: &[&str] = &[
    "Mes demandes", "Mes documents", "Ma paie", "Mon temps", "Mon profil", "Frais", "Déplacements",
    "Équipement", "Avantages", "Formation", "Paramètres", "Aide",
];

#[rustfmt::skip]
const FR_CONTRACTS: &[&str] =
    &["CDI", "CDD", "intérimaires", "d'apprentissage", "de professionnalisation", "cadres", "saisonniers"];

#[rustfmt::skip]
const MAILBOXES: &[&str] = &[
    "hr", "payroll", "helpdesk", "facilities", "travel", "benefits", "security", "finance", "training",
    "rh", "paie", "support", "moyens-generaux", "voyages", "formation", "juridique", "legal",
];

/// Sites, cities and software an organisation's FAQ names, the head of the long tail.
#[rustfmt::skip]
const REAL_NAMES: &[&str] = &[
    "Lyon", "Paris", "Workday", "Nantes", "Concur", "Bordeaux", "Teams", "Lille", "Toulouse", "Outlook",
    "Marseille", "Swile", "Rennes", "Lucca", "Grenoble", "Payfit", "Strasbourg", "Okta", "Nice",
    "SharePoint", "Montpellier", "Jira", "Dijon", "Zoom", "Brest", "Slack", "Rouen", "Salesforce", "Metz",
    "Coupa", "Reims", "Docusign", "Tours", "Edenred", "Angers", "Sodexo", "Caen", "Citrix", "London",
    "Windows", "Manchester", "MacBook", "Leeds", "ThinkPad", "Dublin", "iPhone", "Brussels", "Android",
    "Geneva", "Yubikey", "Montreal", "Webex", "Madrid", "Moodle", "Milan", "Coursera", "Berlin", "Degreed",
    "Munich", "Cegid", "Amsterdam", "Sage", "Lisbon", "Oracle", "Warsaw", "ServiceNow", "Prague",
    "Zendesk", "Vienna", "Trainline", "Zurich", "Uber", "Luxembourg", "Navigo", "Casablanca", "Malakoff",
    "Dakar", "Alan", "Tunis", "Abidjan", "Singapore", "Boston", "Toronto", "Limoges", "Orléans", "Nancy",
    "Besançon", "Poitiers", "Perpignan", "Clermont", "Annecy", "Valence", "Pau", "Bayonne", "Lorient",
];

#[rustfmt::skip]
const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "cr", "dr", "gr", "pr",
    "tr", "st", "ch", "ph", "qu", "fl", "pl", "sk", "vr", "j",
];
#[rustfmt::skip]
const NUCLEI: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou", "ea", "io", "y", "au", "é"];
#[rustfmt::skip]
const CODAS: &[&str] = &["", "", "", "n", "r", "s", "l", "x", "m", "t"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_corpus() {
        assert_eq!(corpus(300, 42), corpus(300, 42));
        assert_ne!(corpus(300, 42), corpus(300, 43));
        assert_eq!(queries(&corpus(300, 42), 50, 1), queries(&corpus(300, 42), 50, 1));
    }

    #[test]
    fn a_small_corpus_is_a_prefix_of_a_larger_one() {
        assert_eq!(corpus(100, 5)[..], corpus(250, 5)[..100]);
    }

    #[test]
    fn sizes_are_as_requested() {
        for n in [0, 1, 17, 1000] {
            let c = corpus(n, 9);
            assert_eq!(c.len(), n);
            assert_eq!(queries(&c, 33, 9).len(), if n == 0 { 0 } else { 33 });
        }
        for e in corpus(2000, 3) {
            assert_eq!(e.questions.len(), QUESTIONS_PER_ENTRY, "{e:?}");
            for q in &e.questions {
                let n = word_count(q);
                assert!((QUESTION_WORDS.0..=QUESTION_WORDS.1).contains(&n), "{n} words: {q}");
            }
            let n = word_count(&e.answer);
            assert!((ANSWER_WORDS.0..=ANSWER_WORDS.1).contains(&n), "{n} words: {}", e.answer);
        }
    }

    #[test]
    fn both_languages_are_present_about_equally() {
        let c = corpus(2000, 11);
        let en = c.iter().filter(|e| e.lang == Lang::En).count();
        assert!((800..=1200).contains(&en), "{en} English entries of 2000");
        for e in &c {
            assert!(e.id.ends_with(&format!("-{}", e.lang.code())), "{}", e.id);
        }
    }

    #[test]
    fn ids_are_unique() {
        let c = corpus(5000, 13);
        let ids: HashSet<&str> = c.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), c.len());
    }

    #[test]
    fn word_choice_has_a_head_and_a_long_tail() {
        let c = corpus(5000, 17);
        let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for e in &c {
            for w in e.questions.iter().chain([&e.answer]).flat_map(|t| t.split_whitespace()) {
                let w: String = w.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
                if w.chars().count() > 3 {
                    *counts.entry(w).or_default() += 1;
                }
            }
        }
        let once = counts.values().filter(|&&n| n == 1).count();
        let top = counts.values().copied().max().unwrap_or(0);
        assert!(counts.len() > 3000, "{} distinct words", counts.len());
        assert!(once > 1000, "{once} words seen once");
        assert!(top > 50 * c.len() / 100, "the most common word is in only {top} places");
    }

    #[test]
    fn queries_name_an_entry_of_the_corpus_and_differ_from_its_questions() {
        let c = corpus(500, 21);
        for (q, id) in queries(&c, 300, 21) {
            let e = c.iter().find(|e| e.id == id).expect("expected id is in the corpus");
            assert!(!e.questions.contains(&q), "{q} is not paraphrased");
            assert!(word_count(&q) >= 4, "{q}");
        }
    }

    #[test]
    fn word_lists_hold_no_duplicates() {
        fn check<T: std::fmt::Debug + PartialEq>(name: &str, list: &[T]) {
            for (i, x) in list.iter().enumerate() {
                assert!(!list[..i].contains(x), "{name}: {x:?} twice");
            }
        }
        check("EN_NOUNS", EN_NOUNS);
        check("EN_VERBS", EN_VERBS);
        check("EN_MODIFIERS", EN_MODIFIERS);
        check("FR_NOUNS", FR_NOUNS);
        check("FR_VERBS", FR_VERBS);
        check("FR_MODIFIERS", FR_MODIFIERS);
        check("REAL_NAMES", REAL_NAMES);
    }

    #[test]
    fn french_articles_agree() {
        assert_eq!(possessive(("attestation", F)), "mon");
        assert_eq!(possessive(("carte", F)), "ma");
        assert_eq!(definite(("hôtel", M)), "l'");
        assert_eq!(to_definite(("site", M)), "au ");
        assert_eq!(of_definite(("agence", F)), "de l'");
        assert_eq!(a("expense"), "an expense");
    }
}
