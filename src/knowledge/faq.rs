//! The live FAQ: the corpus on disk, the journal of changes made through the admin API,
//! and the engine and knowledge base serving them while both change.
//!
//! Owns the order of a change: the journal line is written and synced first, then the
//! engine is updated, so a change the caller is told about survives a restart, and a change
//! that could not be saved is never served. Owns reloading: the corpus is read again from
//! disk, the journal replayed over it, and the index and the menu's categories replaced;
//! a corpus that does not load is reported and the previous index keeps serving. Changes
//! and reloads take turns; queries never wait for either (the engine publishes snapshots).
//!
//! Must not: speak HTTP (`server::admin` does), converse (the dialog reads the engine and
//! [`Faq::knowledge`]) or catch signals (`startup` does; it calls [`reload_and_log`] on
//! `SIGHUP` and runs [`poll`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use thiserror::Error;

use crate::engine::{Engine, EngineError, EngineParams, FaqEntry};
use crate::knowledge::corpus::journal::{self, Journal, Op};
use crate::knowledge::corpus::{CorpusError, KnowledgeBase, Stamp};

/// Where the FAQ comes from and how it is matched; [`Default`] is the embedded corpus,
/// changes kept in memory only.
#[derive(Debug, Clone, Default)]
pub struct FaqOptions {
    /// Corpus directory or file; `None` for the embedded corpus (which cannot change).
    pub corpus: Option<PathBuf>,
    /// The journal of changes; `None` keeps changes in memory only, lost on restart.
    pub journal: Option<PathBuf>,
    /// The engine's parameters.
    pub params: EngineParams,
    /// The semantic scorer beside the lexical one; `None`: lexical only.
    pub semantic: Option<crate::engine::hybrid::SemanticSetup>,
    /// A journal several processes share (a database), used instead of `journal`: changes
    /// go there, and [`Faq::follow`] applies the other processes' changes.
    pub shared: Option<SharedLog>,
}

/// A journal of FAQ changes several processes share — replicas on one database: a change
/// is appended there before it is served here, and every process follows the others'.
pub trait SharedJournal: Send + Sync {
    /// Appends `op` durably and returns its sequence number (increasing in commit order).
    /// Called on a blocking thread.
    fn append(&self, op: &Op) -> Result<i64, String>;
}

/// A shared journal, and the changes it held when the FAQ was opened, with their sequence
/// numbers, in order.
#[derive(Clone)]
pub struct SharedLog {
    /// The journal.
    pub journal: Arc<dyn SharedJournal>,
    /// Its changes so far.
    pub ops: Vec<(i64, Op)>,
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog").field("ops", &self.ops.len()).finish_non_exhaustive()
    }
}

/// What a change or a reload can fail with.
#[derive(Debug, Error)]
pub enum FaqError {
    /// The corpus could not be loaded.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// The shared journal (the database) refused or failed the change: it is not served.
    #[error("the shared FAQ journal: {0}")]
    Shared(String),
    /// The entry cannot be served.
    #[error(transparent)]
    InvalidEntry(#[from] EngineError),
}

/// What [`Faq::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// There was no entry with this id.
    Created,
    /// The entry with this id was replaced.
    Replaced,
}

/// What a reload produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    /// Entries now served: the corpus's, with the journal's changes.
    pub entries: usize,
    /// Journal operations replayed over the corpus.
    pub changes: usize,
}

/// The knowledge base being served, replaced whole by each reload: what the menu's
/// categories are read from.
pub type LiveKnowledge = Arc<ArcSwap<KnowledgeBase>>;

/// The FAQ being served, and the one way to change it.
pub struct Faq {
    corpus: Option<PathBuf>,
    knowledge: LiveKnowledge,
    engine: Arc<Engine>,
    /// One change or reload at a time.
    writer: Mutex<Writer>,
    /// The last sequence number of the shared journal applied here: read without the
    /// writer's lock (a follower asks from an async task while a change is journaled).
    followed: AtomicI64,
}

struct Writer {
    journal: Option<Journal>,
    /// The shared journal, when there is one (instead of `journal`).
    shared: Option<Arc<dyn SharedJournal>>,
    /// This process's own changes to the shared journal not yet seen by [`Faq::follow`]:
    /// their sequence numbers and entry ids.
    own: std::collections::BTreeMap<i64, String>,
    /// Every change since startup (and before, from the journal), replayed at reloads.
    ops: Vec<Op>,
    /// The corpus as last loaded, or last tried: a broken edit is reported once, not at
    /// every poll.
    seen: Option<Stamp>,
}

impl std::fmt::Debug for Faq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faq")
            .field("corpus", &self.corpus)
            .field("entries", &self.engine().len())
            .finish_non_exhaustive()
    }
}

impl Faq {
    /// Loads the corpus (`options.corpus`, or the embedded one), replays the journal over
    /// it and builds the engine.
    pub fn open(options: FaqOptions) -> Result<Faq, FaqError> {
        // Stamped before reading: an edit made during the load is seen by the next poll.
        let seen = options.corpus.as_deref().map(Stamp::of);
        let kb = match &options.corpus {
            Some(path) => KnowledgeBase::load(path)?,
            None => KnowledgeBase::embedded()?,
        };
        Faq::build(kb, seen, options)
    }

    /// [`Faq::open`] on a knowledge base already loaded (from `options.corpus`, which
    /// reloads read, or from elsewhere when it is `None`).
    pub fn with_knowledge_base(kb: KnowledgeBase, options: FaqOptions) -> Result<Faq, FaqError> {
        let seen = options.corpus.as_deref().map(Stamp::of);
        Faq::build(kb, seen, options)
    }

    fn build(kb: KnowledgeBase, seen: Option<Stamp>, options: FaqOptions) -> Result<Faq, FaqError> {
        let shared = options.shared.clone();
        let (journal, ops) = match &options.journal {
            _ if shared.is_some() => (None, Vec::new()),
            Some(path) => {
                let (journal, replay) = Journal::open(path)?;
                if let Some(torn) = &replay.torn {
                    tracing::warn!(
                        journal = %path.display(),
                        line = torn.line,
                        bytes = torn.bytes,
                        reason = %torn.message,
                        "skipping the journal's unfinished last line (an interrupted write)"
                    );
                }
                (Some(journal), replay.ops)
            }
            None => (None, Vec::new()),
        };
        let followed = shared.as_ref().and_then(|s| s.ops.last()).map_or(0, |(seq, _)| *seq);
        let ops: Vec<Op> = match &shared {
            Some(s) => s.ops.iter().map(|(_, op)| op.clone()).collect(),
            None => ops,
        };
        let mut entries = kb.entries().to_vec();
        journal::apply(&mut entries, &ops);
        if !ops.is_empty() {
            tracing::info!(changes = ops.len(), entries = entries.len(), "replayed the FAQ journal");
        }
        let engine = match options.semantic {
            Some(setup) => {
                let started = std::time::Instant::now();
                let engine =
                    Engine::with_semantic(&entries, kb.lexicon(), options.params, setup.models, setup.cache);
                tracing::info!(
                    entries = entries.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "embedded the FAQ"
                );
                engine
            }
            None => Engine::with_params(&entries, kb.lexicon(), options.params),
        };
        Ok(Faq {
            corpus: options.corpus,
            knowledge: Arc::new(ArcSwap::from_pointee(kb)),
            engine: Arc::new(engine),
            followed: AtomicI64::new(followed),
            writer: Mutex::new(Writer {
                journal,
                shared: shared.map(|s| s.journal),
                own: Default::default(),
                ops,
                seen,
            }),
        })
    }

    /// The knowledge base as last loaded, replaced by each reload.
    pub fn knowledge(&self) -> LiveKnowledge {
        Arc::clone(&self.knowledge)
    }

    /// The engine serving this FAQ.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine serving this FAQ, shared.
    pub fn shared_engine(&self) -> Arc<Engine> {
        Arc::clone(&self.engine)
    }

    /// The corpus path reloads read, if any.
    pub fn corpus(&self) -> Option<&Path> {
        self.corpus.as_deref()
    }

    /// Adds `entry`, or replaces the entry with its id: journaled first, then served to
    /// the next message.
    pub fn put(&self, entry: FaqEntry) -> Result<Stored, FaqError> {
        entry.validate()?;
        let mut writer = self.lock();
        let op = Op::Put { entry: entry.clone() };
        Self::journal(&mut writer, &op)?;
        let previous = self.engine().upsert(entry)?;
        writer.ops.push(op);
        Ok(if previous.is_some() { Stored::Replaced } else { Stored::Created })
    }

    /// Removes the entry `id`: journaled first, then gone from the next message's answers.
    /// Returns the removed entry, or `None` (and changes nothing) if there was none.
    pub fn delete(&self, id: &str) -> Result<Option<Arc<FaqEntry>>, FaqError> {
        let mut writer = self.lock();
        if self.engine().entry(id).is_none() {
            return Ok(None);
        }
        let op = Op::Delete { id: id.to_owned() };
        Self::journal(&mut writer, &op)?;
        let removed = self.engine().remove(id);
        writer.ops.push(op);
        Ok(removed)
    }

    /// Writes `op` to the journal, shared or file, before it is served.
    fn journal(writer: &mut Writer, op: &Op) -> Result<(), FaqError> {
        if let Some(shared) = &writer.shared {
            let seq = shared.append(op).map_err(FaqError::Shared)?;
            writer.own.insert(seq, op.id().to_owned());
        } else if let Some(journal) = &mut writer.journal {
            journal.append(op)?;
        }
        Ok(())
    }

    /// The last sequence number of the shared journal applied here.
    pub fn followed(&self) -> i64 {
        self.followed.load(Ordering::Acquire)
    }

    /// Applies the changes the shared journal holds after [`Faq::followed`] — other
    /// processes' — in order; the number applied. This process's own changes, already
    /// served, are passed over, and so is another's older change to an entry this process
    /// changed since: every process ends with the change committed last.
    pub fn follow(&self, ops: Vec<(i64, Op)>) -> Result<usize, FaqError> {
        let mut writer = self.lock();
        let mut applied = 0;
        for (seq, op) in ops {
            if seq <= self.followed() {
                continue;
            }
            self.followed.store(seq, Ordering::Release);
            if writer.own.remove(&seq).is_some() {
                continue;
            }
            if writer.own.iter().any(|(own, id)| *own > seq && id == op.id()) {
                continue;
            }
            match &op {
                Op::Put { entry } => drop(self.engine().upsert(entry.clone())?),
                Op::Delete { id } => drop(self.engine().remove(id)),
            }
            writer.ops.push(op);
            applied += 1;
        }
        Ok(applied)
    }

    /// Reads the corpus again, replays the journal over it and serves the result. On an
    /// error nothing changes: the previous index keeps serving. Without a corpus path the
    /// index is rebuilt from the knowledge base in use.
    pub fn reload(&self) -> Result<Reloaded, FaqError> {
        let mut writer = self.lock();
        let kb = match &self.corpus {
            Some(path) => {
                writer.seen = Some(Stamp::of(path));
                KnowledgeBase::load(path)?
            }
            None => KnowledgeBase::clone(&self.knowledge.load_full()),
        };
        let mut entries = kb.entries().to_vec();
        journal::apply(&mut entries, &writer.ops);
        self.engine().reload(&entries, kb.lexicon());
        self.knowledge.store(Arc::new(kb));
        Ok(Reloaded { entries: entries.len(), changes: writer.ops.len() })
    }

    /// [`Faq::reload`] if a corpus file was added, removed or written since the last
    /// load or attempt; `None` when nothing changed or there is no corpus path.
    pub fn reload_if_changed(&self) -> Option<Result<Reloaded, FaqError>> {
        let path = self.corpus.as_deref()?;
        if self.lock().seen.as_ref() == Some(&Stamp::of(path)) {
            return None;
        }
        Some(self.reload())
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock happened before the engine published anything
        // (it publishes whole snapshots), so the state is still usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs [`Faq::reload`] on a blocking thread (it reads files and rebuilds the index) and
/// logs the outcome; `trigger` says why (`"SIGHUP"`, `"corpus changed"`).
pub async fn reload_and_log(faq: &Arc<Faq>, trigger: &str) {
    let faq = Arc::clone(faq);
    let result = tokio::task::spawn_blocking(move || faq.reload()).await;
    log_reload(trigger, result);
}

/// Checks the corpus files every `period` and reloads when one changed; runs forever.
pub async fn poll(faq: Arc<Faq>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // The first tick is immediate; the corpus was just loaded.
    loop {
        ticks.tick().await;
        let faq = Arc::clone(&faq);
        match tokio::task::spawn_blocking(move || faq.reload_if_changed()).await {
            Ok(None) => {}
            Ok(Some(result)) => log_reload("corpus changed", Ok(result)),
            Err(e) => log_reload("corpus changed", Err(e)),
        }
    }
}

fn log_reload(trigger: &str, result: Result<Result<Reloaded, FaqError>, tokio::task::JoinError>) {
    match result {
        Ok(Ok(r)) => tracing::info!(trigger, entries = r.entries, changes = r.changes, "FAQ reloaded"),
        Ok(Err(e)) => {
            tracing::error!(trigger, error = %e, "FAQ reload refused; the previous FAQ keeps serving");
        }
        Err(e) => tracing::error!(trigger, error = %e, "FAQ reload failed; the previous FAQ keeps serving"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lang;

    const LEAVE: &str = "category = \"leave\"\ntitle = { en = \"Leave\", fr = \"Congés\" }\n\n\
        [[entry]]\nid = \"leave-en\"\nlang = \"en\"\nquestions = [\"How do I book annual leave?\"]\n\
        answer = \"Book it in the HR portal.\"\n";

    fn corpus() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("leave.toml"), LEAVE).unwrap();
        dir
    }

    fn open(corpus: &Path, journal: &Path) -> Faq {
        let options = FaqOptions {
            corpus: Some(corpus.to_owned()),
            journal: Some(journal.to_owned()),
            ..FaqOptions::default()
        };
        Faq::open(options).unwrap()
    }

    fn parking() -> FaqEntry {
        FaqEntry::new("parking-en", Lang::En, &["Where can I park my car?"], "Level -2, badge required.")
    }

    fn answer(faq: &Faq, q: &str) -> Option<String> {
        faq.engine().answer(q, None).map(|m| m.entry.id.clone())
    }

    #[test]
    fn a_put_is_served_at_once_and_replayed_after_a_restart() {
        let (dir, state) = (corpus(), tempfile::tempdir().unwrap());
        let journal = state.path().join("journal.jsonl");
        let faq = open(dir.path(), &journal);
        assert_eq!(answer(&faq, "where do I park my car"), None);
        assert_eq!(faq.put(parking()).unwrap(), Stored::Created);
        assert_eq!(faq.engine().entry("parking-en").as_deref(), Some(&parking()));
        assert_eq!(answer(&faq, "where do I park my car").as_deref(), Some("parking-en"));
        assert_eq!(faq.put(parking()).unwrap(), Stored::Replaced);
        assert_eq!(faq.delete("leave-en").unwrap().unwrap().id, "leave-en");
        assert_eq!(faq.delete("leave-en").unwrap(), None, "a second delete changes nothing");
        drop(faq);

        let again = open(dir.path(), &journal);
        assert_eq!(answer(&again, "where do I park my car").as_deref(), Some("parking-en"));
        assert_eq!(answer(&again, "how do I book annual leave"), None);
        let journal = std::fs::read_to_string(&journal).unwrap();
        assert_eq!(journal.lines().count(), 3, "{journal}");
    }

    #[test]
    fn an_invalid_entry_is_refused_before_anything_is_written() {
        let (dir, state) = (corpus(), tempfile::tempdir().unwrap());
        let journal = state.path().join("journal.jsonl");
        let faq = open(dir.path(), &journal);
        let mut bad = parking();
        bad.questions.clear();
        assert!(matches!(faq.put(bad), Err(FaqError::InvalidEntry(_))));
        assert!(!journal.exists());
    }

    #[test]
    fn a_change_that_cannot_be_journaled_is_not_served() {
        let (dir, state) = (corpus(), tempfile::tempdir().unwrap());
        let faq = open(dir.path(), &state.path().join("sub/journal.jsonl"));
        // The journal's directory turns out to be a file: every append fails.
        std::fs::write(state.path().join("sub"), "").unwrap();
        assert!(matches!(faq.put(parking()), Err(FaqError::Journal(_))));
        assert_eq!(faq.engine().entry("parking-en"), None);
        assert!(matches!(faq.delete("leave-en"), Err(FaqError::Journal(_))));
        assert!(faq.engine().entry("leave-en").is_some());
    }

    #[test]
    fn a_reload_reads_the_edited_corpus_and_keeps_the_journaled_changes() {
        let (dir, state) = (corpus(), tempfile::tempdir().unwrap());
        let faq = open(dir.path(), &state.path().join("journal.jsonl"));
        faq.put(parking()).unwrap();
        let edited = LEAVE.replace("How do I book annual leave?", "How do I request a day off?");
        std::fs::write(dir.path().join("leave.toml"), edited).unwrap();
        assert_eq!(faq.reload().unwrap(), Reloaded { entries: 2, changes: 1 });
        assert_eq!(answer(&faq, "request a day off").as_deref(), Some("leave-en"));
        assert_eq!(answer(&faq, "where do I park my car").as_deref(), Some("parking-en"));
    }

    #[test]
    fn a_broken_edit_is_refused_and_the_previous_faq_keeps_serving() {
        let (dir, state) = (corpus(), tempfile::tempdir().unwrap());
        let faq = open(dir.path(), &state.path().join("journal.jsonl"));
        std::fs::write(dir.path().join("leave.toml"), LEAVE.replace("lang = \"en\"", "lang = \"de\""))
            .unwrap();
        let err = faq.reload().unwrap_err().to_string();
        assert!(err.contains("leave.toml:6:"), "names the file and line: {err}");
        assert_eq!(answer(&faq, "how do I book annual leave").as_deref(), Some("leave-en"));
        assert!(faq.reload_if_changed().is_none(), "the same broken files are not retried");
    }

    #[test]
    fn only_a_changed_corpus_is_reloaded_by_polling() {
        let (dir, state) = (corpus(), tempfile::tempdir().unwrap());
        let faq = open(dir.path(), &state.path().join("journal.jsonl"));
        assert!(faq.reload_if_changed().is_none());
        let line = serde_json::to_string(&parking()).unwrap();
        std::fs::write(dir.path().join("extra.jsonl"), line).unwrap();
        assert_eq!(faq.reload_if_changed().unwrap().unwrap().entries, 2);
        assert!(faq.reload_if_changed().is_none());
    }

    #[test]
    fn the_menu_follows_reloads_and_changes() {
        let (dir, state) = (corpus(), tempfile::tempdir().unwrap());
        let faq = open(dir.path(), &state.path().join("journal.jsonl"));
        let menu = |faq: &Faq| {
            let mut session = crate::domain::Session::default();
            let user = crate::domain::Address::parse(crate::domain::Channel::Twilio, "u").unwrap();
            let msg = crate::dialog::Incoming { user, text: "menu".into(), profile_name: None };
            let clock = Arc::new(crate::domain::SystemClock);
            let dialog = crate::dialog::Dialog::live(faq.knowledge(), faq.shared_engine(), clock);
            dialog.respond(&mut session, &msg).messages.join("\n")
        };
        assert!(menu(&faq).contains("1. Leave"), "{}", menu(&faq));
        std::fs::write(dir.path().join("leave.toml"), LEAVE.replace("en = \"Leave\"", "en = \"Time off\""))
            .unwrap();
        faq.reload().unwrap();
        assert!(menu(&faq).contains("1. Time off"), "{}", menu(&faq));
        let mut parking = parking();
        parking.category = Some("parking".into());
        faq.put(parking).unwrap();
        assert!(menu(&faq).contains("2. parking"), "{}", menu(&faq));
        faq.delete("leave-en").unwrap();
        assert!(menu(&faq).contains("1. parking"), "an empty category leaves the menu: {}", menu(&faq));
    }

    #[test]
    fn without_a_journal_changes_live_in_memory() {
        let faq = Faq::open(FaqOptions::default()).unwrap();
        let before = faq.engine().len();
        let mut bikes = parking();
        bikes.id = "bike-charging-en".into();
        assert_eq!(faq.put(bikes).unwrap(), Stored::Created);
        assert_eq!(faq.engine().len(), before + 1);
        assert_eq!(faq.reload().unwrap().entries, before + 1, "a reload keeps them");
    }
}
