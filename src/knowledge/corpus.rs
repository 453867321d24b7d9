//! The knowledge base on disk: the hand-edited TOML format, FAQ JSONL, and the corpus
//! shipped inside the binary.
//!
//! A corpus is a directory (or a single file). Each `*.toml` file but `lexicon.toml` is
//! one menu category of entries (see `corpus/README.md` for the format HR staff edit);
//! each `*.jsonl` file holds FAQ JSONL, one entry object per line; `lexicon.toml` holds
//! the bilingual concepts (a corpus without one uses the shipped lexicon). Every problem is
//! reported with the file, the line and what is wrong, and ids must be unique across files.
//!
//! [`journal`] holds the live changes made through the admin API, replayed over the corpus.

pub mod journal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use thiserror::Error;

use crate::engine::{FaqEntry, Lang, Lexicon};

include!(concat!(env!("OUT_DIR"), "/embedded_corpus.rs"));

/// The name of the lexicon file inside a corpus directory.
pub const LEXICON_FILE: &str = "lexicon.toml";

/// What can be wrong with a corpus.
#[derive(Debug, Error)]
pub enum CorpusError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid TOML, JSON or does not have the expected shape.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An entry is well-formed but unusable (empty question, bad id…).
    #[error("{file}:{line}: entry {id:?}: {message}")]
    InvalidEntry {
        /// The file.
        file: String,
        /// 1-based line of the entry.
        line: usize,
        /// The entry's id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// Two entries share an id.
    #[error("{second}: duplicate id {id:?} (first defined at {first})")]
    DuplicateId {
        /// The id.
        id: String,
        /// `file:line` of the first definition.
        first: String,
        /// `file:line` of the second.
        second: String,
    },
    /// The corpus holds no entry at all.
    #[error("{0}: no FAQ entries found (expected *.toml or *.jsonl files)")]
    Empty(String),
}

/// A menu category: a corpus TOML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// Identifier (`leave`).
    pub id: String,
    /// Title in English.
    pub title_en: String,
    /// Title in French.
    pub title_fr: String,
}

impl Category {
    /// The title in `lang`.
    pub fn title(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.title_en,
            Lang::Fr => &self.title_fr,
        }
    }
}

/// A loaded knowledge base: entries, lexicon and menu categories.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    entries: Vec<FaqEntry>,
    lexicon: Lexicon,
    categories: Vec<Category>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    category: Option<String>,
    title: Option<Titles>,
    #[serde(default)]
    entry: Vec<TomlEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Titles {
    en: Option<String>,
    fr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlEntry {
    id: toml::Spanned<String>,
    lang: Lang,
    questions: Vec<String>,
    answer: String,
    topic: Option<String>,
}

impl KnowledgeBase {
    /// The corpus shipped inside the binary.
    pub fn embedded() -> Result<KnowledgeBase, CorpusError> {
        let files: Vec<(String, String)> =
            EMBEDDED_FILES.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
        Self::from_files("embedded corpus", &files)
    }

    /// Loads a corpus directory, or a single `.toml`/`.jsonl` file.
    pub fn load(path: &Path) -> Result<KnowledgeBase, CorpusError> {
        let mut files = Vec::new();
        for p in corpus_files(path)? {
            let text =
                std::fs::read_to_string(&p).map_err(|source| CorpusError::Io { path: p.clone(), source })?;
            files.push((p.display().to_string(), text));
        }
        Self::from_files(&path.display().to_string(), &files)
    }

    /// Parses named file contents; a name ending in `lexicon.toml` is the lexicon, other
    /// `.toml` names are categories, `.jsonl` names are FAQ JSONL.
    pub fn from_files(origin: &str, files: &[(String, String)]) -> Result<KnowledgeBase, CorpusError> {
        let mut kb = KnowledgeBase::default();
        let mut lexicon = None;
        let mut seen: HashMap<String, String> = HashMap::new();
        for (name, text) in files {
            let located: Located = if is_lexicon(name) {
                lexicon = Some(parse_lexicon(name, text)?);
                continue;
            } else if name.ends_with(".jsonl") {
                parse_jsonl(name, text)?
            } else {
                let (category, entries) = parse_toml(name, text)?;
                if let Some(c) = category {
                    kb.categories.push(c);
                }
                entries
            };
            for (entry, line) in located {
                validate(name, line, &entry)?;
                let here = format!("{name}:{line}");
                if let Some(first) = seen.get(&entry.id) {
                    return Err(CorpusError::DuplicateId {
                        id: entry.id,
                        first: first.clone(),
                        second: here,
                    });
                }
                seen.insert(entry.id.clone(), here);
                if let Some(c) = &entry.category
                    && !kb.categories.iter().any(|k| &k.id == c)
                {
                    kb.categories.push(Category { id: c.clone(), title_en: c.clone(), title_fr: c.clone() });
                }
                kb.entries.push(entry);
            }
        }
        if kb.entries.is_empty() {
            return Err(CorpusError::Empty(origin.to_owned()));
        }
        kb.lexicon = match lexicon {
            Some(l) => l,
            None => embedded_lexicon()?,
        };
        Ok(kb)
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    /// The lexicon.
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// Menu categories, in file order.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The entries of category `id`.
    pub fn entries_in<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a FaqEntry> + 'a {
        self.entries.iter().filter(move |e| e.category.as_deref() == Some(id))
    }
}

/// The files a corpus path stands for: the directory's `*.toml` and `*.jsonl` files in name
/// order, or the file itself.
fn corpus_files(path: &Path) -> Result<Vec<PathBuf>, CorpusError> {
    let io = |source| CorpusError::Io { path: path.to_owned(), source };
    if !std::fs::metadata(path).map_err(io)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "jsonl")))
        .collect();
    v.sort();
    Ok(v)
}

/// What a corpus looks like on disk: its files, each with its size and modification time.
/// When two stamps differ, a file was added, removed or written in between; polling
/// compares them to reload only on a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Result<Vec<(PathBuf, u64, Option<SystemTime>)>, String>);

impl Stamp {
    /// The stamp of the corpus at `path` now. An unreadable path has a stamp too (the
    /// error), so that it differs from the readable corpus before and after.
    pub fn of(path: &Path) -> Stamp {
        let files = corpus_files(path).map_err(|e| e.to_string()).map(|files| {
            files
                .into_iter()
                .map(|p| {
                    let meta = std::fs::metadata(&p).ok();
                    let len = meta.as_ref().map_or(0, |m| m.len());
                    let modified = meta.and_then(|m| m.modified().ok());
                    (p, len, modified)
                })
                .collect()
        });
        Stamp(files)
    }
}

fn is_lexicon(name: &str) -> bool {
    Path::new(name).file_name().and_then(|n| n.to_str()) == Some(LEXICON_FILE)
}

fn embedded_lexicon() -> Result<Lexicon, CorpusError> {
    match EMBEDDED_FILES.iter().find(|(n, _)| is_lexicon(n)) {
        Some((n, t)) => parse_lexicon(n, t),
        None => Ok(Lexicon::default()),
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn toml_error(file: &str, text: &str, e: toml::de::Error) -> CorpusError {
    let line = e.span().map_or(1, |s| line_of(text, s.start));
    CorpusError::Syntax { file: file.to_owned(), line, message: e.message().to_owned() }
}

fn parse_lexicon(file: &str, text: &str) -> Result<Lexicon, CorpusError> {
    toml::from_str(text).map_err(|e| toml_error(file, text, e))
}

/// Entries with the line each starts on.
type Located = Vec<(FaqEntry, usize)>;

fn parse_toml(file: &str, text: &str) -> Result<(Option<Category>, Located), CorpusError> {
    let parsed: TomlFile = toml::from_str(text).map_err(|e| toml_error(file, text, e))?;
    let category = parsed.category.clone().map(|id| {
        let titles = parsed.title.as_ref();
        let en = titles.and_then(|t| t.en.clone()).unwrap_or_else(|| id.clone());
        let fr = titles.and_then(|t| t.fr.clone()).unwrap_or_else(|| en.clone());
        Category { id, title_en: en, title_fr: fr }
    });
    let entries = parsed
        .entry
        .into_iter()
        .map(|e| {
            let line = line_of(text, e.id.span().start);
            let entry = FaqEntry {
                id: e.id.into_inner(),
                lang: e.lang,
                questions: e.questions,
                answer: e.answer,
                category: parsed.category.clone(),
                topic: e.topic,
            };
            (entry, line)
        })
        .collect();
    Ok((category, entries))
}

fn parse_jsonl(file: &str, text: &str) -> Result<Located, CorpusError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let entry: FaqEntry = serde_json::from_str(line).map_err(|e| CorpusError::Syntax {
            file: file.to_owned(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push((entry, i + 1));
    }
    Ok(out)
}

fn validate(file: &str, line: usize, e: &FaqEntry) -> Result<(), CorpusError> {
    e.validate().map_err(|err| match err {
        crate::engine::EngineError::InvalidEntry { id, message } => {
            CorpusError::InvalidEntry { file: file.to_owned(), line, id, message }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Result<KnowledgeBase, CorpusError> {
        let files: Vec<(String, String)> =
            files.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
        KnowledgeBase::from_files("test", &files)
    }

    #[test]
    fn the_embedded_corpus_loads() {
        let kb = KnowledgeBase::embedded().unwrap();
        assert!(kb.entries().len() >= 60, "{}", kb.entries().len());
        assert!(kb.entries().iter().any(|e| e.lang == Lang::Fr));
        assert!(!kb.lexicon().concepts.is_empty());
        assert!(!kb.categories().is_empty());
    }

    #[test]
    fn faq_jsonl_is_accepted() {
        let kb = load(&[(
            "org.jsonl",
            "{\"id\": \"hr-001\", \"lang\": \"en\", \"questions\": [\"How do I?\"], \"answer\": \"Like so.\"}\n\n\
             {\"id\": \"hr-002\", \"lang\": \"fr\", \"questions\": [\"Comment ?\"], \"answer\": \"Ainsi.\"}\n",
        )])
        .unwrap();
        assert_eq!(kb.entries().len(), 2);
        assert_eq!(kb.entries()[1].lang, Lang::Fr);
    }

    #[test]
    fn a_malformed_jsonl_line_names_file_and_line() {
        let err = load(&[(
            "org.jsonl",
            "{\"id\": \"a\", \"lang\": \"en\", \"questions\": [\"q\"], \"answer\": \"a\"}\n{\"id\": \"b\", \"lang\": \"de\"",
        )])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("org.jsonl:2:"), "{err}");
    }

    #[test]
    fn an_unknown_language_in_toml_names_the_line() {
        let text =
            "category = \"x\"\n\n[[entry]]\nid = \"a\"\nlang = \"de\"\nquestions = [\"q\"]\nanswer = \"a\"\n";
        let err = load(&[("x.toml", text)]).unwrap_err().to_string();
        assert!(err.starts_with("x.toml:5:"), "{err}");
        assert!(err.contains("de"), "{err}");
    }

    #[test]
    fn duplicate_ids_are_rejected_with_both_places() {
        let a = "[[entry]]\nid = \"a\"\nlang = \"en\"\nquestions = [\"q\"]\nanswer = \"x\"\n";
        let b = "{\"id\": \"a\", \"lang\": \"fr\", \"questions\": [\"q\"], \"answer\": \"y\"}\n";
        let err = load(&[("a.toml", a), ("b.jsonl", b)]).unwrap_err().to_string();
        assert_eq!(err, "b.jsonl:1: duplicate id \"a\" (first defined at a.toml:2)");
    }

    #[test]
    fn empty_questions_and_answers_are_rejected() {
        let text = "[[entry]]\nid = \"a\"\nlang = \"en\"\nquestions = []\nanswer = \"x\"\n";
        assert!(load(&[("a.toml", text)]).unwrap_err().to_string().contains("at least one question"));
        let line = "{\"id\": \"a\", \"lang\": \"en\", \"questions\": [\"q\"], \"answer\": \" \"}";
        assert!(load(&[("a.jsonl", line)]).unwrap_err().to_string().contains("empty answer"));
    }

    #[test]
    fn a_stamp_changes_when_a_corpus_file_is_added_written_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, "{}\n").unwrap();
        let before = Stamp::of(dir.path());
        assert_eq!(Stamp::of(dir.path()), before);
        std::fs::write(dir.path().join("notes.txt"), "not a corpus file").unwrap();
        assert_eq!(Stamp::of(dir.path()), before, "other files do not count");
        std::fs::write(&a, "{}\n{}\n").unwrap();
        let written = Stamp::of(dir.path());
        assert_ne!(written, before);
        std::fs::write(dir.path().join("b.toml"), "").unwrap();
        let added = Stamp::of(dir.path());
        assert_ne!(added, written);
        std::fs::remove_file(dir.path().join("b.toml")).unwrap();
        assert_ne!(Stamp::of(dir.path()), added);
        assert_ne!(Stamp::of(&dir.path().join("gone")), before);
    }

    #[test]
    fn a_corpus_without_entries_is_an_error() {
        assert!(matches!(load(&[]), Err(CorpusError::Empty(_))));
    }
}
