//! The journal of live FAQ changes: an append-only file of operations, one JSON object a
//! line, replayed over the corpus at every start and every reload.
//!
//! ```text
//! {"op":"put","entry":{"id":"parking-en","lang":"en","questions":["Where can I park?"],"answer":"…"}}
//! {"op":"delete","id":"leave-balance-fr"}
//! ```
//!
//! Owns the file format, durability (each line is written and `fsync`ed before
//! [`Journal::append`] returns, so a caller applies a change only once it is on disk) and
//! recovery: a torn last line — a crash in the middle of a write — is skipped and
//! overwritten by the next append; a bad line anywhere else is an error naming the file and
//! the line, because skipping it would silently lose a change made after it.
//! Must not: know about the engine, the web or logging — [`Replay::torn`] tells the caller
//! what to warn about.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::engine::FaqEntry;

/// One change to the FAQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Op {
    /// Add the entry, or replace the entry with its id.
    Put {
        /// The entry, in the FAQ JSONL object shape.
        entry: FaqEntry,
    },
    /// Remove the entry with this id.
    Delete {
        /// The id.
        id: String,
    },
}

impl Op {
    /// The id of the entry the operation changes.
    pub fn id(&self) -> &str {
        match self {
            Op::Put { entry } => &entry.id,
            Op::Delete { id } => id,
        }
    }
}

/// What can go wrong with the journal.
#[derive(Debug, Error)]
pub enum JournalError {
    /// The file could not be read, written or synced.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line before the last one is not a valid operation.
    #[error("{path}:{line}: corrupt journal line: {message}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A last line that could not be read and was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// 1-based line.
    pub line: usize,
    /// Its length in bytes.
    pub bytes: usize,
    /// Why it could not be read.
    pub message: String,
}

/// The operations read from a journal, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    /// The operations.
    pub ops: Vec<Op>,
    /// The skipped last line, if the journal ended with a torn write.
    pub torn: Option<Torn>,
}

/// An append-only journal file. Nothing is created on disk before the first append, so
/// reading a journal that does not exist yet has no side effect.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Length of the valid prefix: where the next line goes (a torn tail is overwritten).
    end: u64,
    /// Opened at the first append.
    file: Option<File>,
}

impl Journal {
    /// Reads the journal at `path` (a missing file is an empty journal) and returns it
    /// ready for appending, with the operations it holds.
    pub fn open(path: &Path) -> Result<(Journal, Replay), JournalError> {
        let io = |source| JournalError::Io { path: path.to_owned(), source };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let (replay, end) = parse(path, &bytes)?;
        Ok((Journal { path: path.to_owned(), end, file: None }, replay))
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `op` as one line and syncs it to disk. When this returns `Ok`, the change
    /// survives a crash; when it fails, the journal is as before and the next append
    /// overwrites whatever part of the line reached the file.
    pub fn append(&mut self, op: &Op) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(op).map_err(|e| self.io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let end = self.end;
        let file = self.file()?;
        let written = file
            .seek(SeekFrom::Start(end))
            .and_then(|_| file.write_all(&line))
            // Cut a torn tail that was longer than this line.
            .and_then(|()| file.set_len(end + line.len() as u64))
            .and_then(|()| file.sync_data());
        written.map_err(|e| self.io(e))?;
        self.end += line.len() as u64;
        Ok(())
    }

    fn file(&mut self) -> Result<&mut File, JournalError> {
        if self.file.is_none() {
            let created = !self.path.exists();
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.path)
                .map_err(|e| self.io(e))?;
            if created {
                self.sync_dir()?;
            }
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Makes a newly created file's directory entry durable too.
    fn sync_dir(&self) -> Result<(), JournalError> {
        #[cfg(unix)]
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io { path: self.path.clone(), source }
    }
}

/// Parses the journal; returns the operations and the length of the valid prefix.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Replay, u64), JournalError> {
    let mut replay = Replay::default();
    let mut end = 0;
    let mut start = 0;
    let mut number = 0;
    while start < bytes.len() {
        number += 1;
        let (line, next) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[start..start + i], start + i + 1),
            None => (&bytes[start..], bytes.len()),
        };
        let is_last = bytes[next..].iter().all(u8::is_ascii_whitespace);
        if !line.trim_ascii().is_empty() {
            match parse_line(line) {
                Ok(op) => replay.ops.push(op),
                Err(message) if is_last => {
                    replay.torn = Some(Torn { line: number, bytes: bytes.len() - start, message });
                    return Ok((replay, end as u64));
                }
                Err(message) => {
                    return Err(JournalError::Corrupt { path: path.to_owned(), line: number, message });
                }
            }
        }
        // A last line without its newline was cut short too, even if it parses: the
        // next append must not be glued to it.
        if next == bytes.len() && !bytes.ends_with(b"\n") {
            replay.ops.pop();
            replay.torn = Some(Torn {
                line: number,
                bytes: bytes.len() - start,
                message: "the line has no end (an interrupted write)".to_owned(),
            });
            return Ok((replay, end as u64));
        }
        end = next;
        start = next;
    }
    Ok((replay, end as u64))
}

fn parse_line(line: &[u8]) -> Result<Op, String> {
    let op: Op = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if let Op::Put { entry } = &op {
        entry.validate().map_err(|e| e.to_string())?;
    }
    Ok(op)
}

/// Applies `ops` in order to `entries`, as [`crate::engine::Engine`] applies them live: a
/// put removes the entry with its id, if any, and adds the new one at the end (so a replayed
/// index orders and breaks ties exactly as the live one did); a delete removes it (a delete
/// of an id that is gone is a no-op: the corpus may have dropped it since).
pub fn apply(entries: &mut Vec<FaqEntry>, ops: &[Op]) {
    let mut slots: Vec<Option<FaqEntry>> = entries.drain(..).map(Some).collect();
    let mut position: HashMap<String, usize> =
        slots.iter().enumerate().filter_map(|(i, e)| Some((e.as_ref()?.id.clone(), i))).collect();
    for op in ops {
        if let Some(i) = position.remove(op.id()) {
            slots[i] = None;
        }
        if let Op::Put { entry } = op {
            position.insert(entry.id.clone(), slots.len());
            slots.push(Some(entry.clone()));
        }
    }
    entries.extend(slots.into_iter().flatten());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lang;

    fn entry(id: &str, question: &str) -> FaqEntry {
        FaqEntry::new(id, Lang::En, &[question], "An answer.")
    }

    fn put(id: &str) -> Op {
        Op::Put { entry: entry(id, "A question?") }
    }

    fn delete(id: &str) -> Op {
        Op::Delete { id: id.to_owned() }
    }

    #[test]
    fn operations_have_the_documented_shape() {
        let line = serde_json::to_string(&put("a")).unwrap();
        assert_eq!(
            line,
            r#"{"op":"put","entry":{"id":"a","lang":"en","questions":["A question?"],"answer":"An answer."}}"#
        );
        assert_eq!(serde_json::to_string(&delete("a")).unwrap(), r#"{"op":"delete","id":"a"}"#);
        assert!(serde_json::from_str::<Op>(r#"{"op":"delete","id":"a","extra":1}"#).is_err());
    }

    #[test]
    fn appended_operations_are_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/journal.jsonl");
        let (mut journal, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay, Replay::default());
        assert!(!path.exists(), "reading creates nothing");
        journal.append(&put("a")).unwrap();
        journal.append(&delete("a")).unwrap();
        journal.append(&put("b")).unwrap();
        let (_, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.ops, [put("a"), delete("a"), put("b")]);
        assert_eq!(replay.torn, None);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_overwritten_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(&put("a")).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"op":"put","entry":{"id":"b","lang""#).unwrap();
        drop(file);

        let (mut journal, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.ops, [put("a")]);
        let torn = replay.torn.unwrap();
        assert_eq!(torn.line, 2);
        assert!(torn.message.contains("EOF"), "{}", torn.message);

        journal.append(&put("c")).unwrap();
        let (_, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.ops, [put("a"), put("c")]);
        assert_eq!(replay.torn, None, "{}", std::fs::read_to_string(&path).unwrap());
    }

    #[test]
    fn a_last_line_without_its_newline_is_treated_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let line = serde_json::to_string(&delete("x")).unwrap();
        std::fs::write(&path, &line).unwrap();
        let (mut journal, replay) = Journal::open(&path).unwrap();
        assert!(replay.ops.is_empty());
        assert_eq!(replay.torn.unwrap().line, 1);
        journal.append(&put("a")).unwrap();
        assert_eq!(Journal::open(&path).unwrap().1.ops, [put("a")]);
    }

    #[test]
    fn a_corrupt_line_in_the_middle_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let good = serde_json::to_string(&put("a")).unwrap();
        std::fs::write(&path, format!("{good}\n\n{{oops}}\n{good}\n")).unwrap();
        let err = Journal::open(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:3: corrupt journal line", path.display())), "{err}");
    }

    #[test]
    fn an_invalid_entry_is_corrupt_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let bad = r#"{"op":"put","entry":{"id":"a","lang":"en","questions":[],"answer":"x"}}"#;
        let good = serde_json::to_string(&put("b")).unwrap();
        std::fs::write(&path, format!("{bad}\n{good}\n")).unwrap();
        let err = Journal::open(&path).unwrap_err().to_string();
        assert!(err.contains(":1: ") && err.contains("at least one question"), "{err}");
    }

    #[test]
    fn apply_moves_a_put_entry_to_the_end_and_removes_deleted_ones() {
        let mut entries = vec![entry("a", "first"), entry("b", "second"), entry("c", "third")];
        let changed = entry("b", "second, changed");
        apply(
            &mut entries,
            &[
                Op::Put { entry: changed.clone() },
                put("d"),
                delete("a"),
                delete("nowhere"),
                delete("d"),
                put("d"),
            ],
        );
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "d"]);
        assert_eq!(entries[1], changed);
    }

    #[test]
    fn a_replayed_index_orders_entries_as_the_live_engine_does() {
        use crate::engine::{Engine, Lexicon};
        let corpus = vec![entry("a", "first"), entry("b", "second"), entry("c", "third")];
        let ops = [delete("a"), put("a"), Op::Put { entry: entry("b", "second again") }, put("d")];
        let live = Engine::build(&corpus, &Lexicon::default());
        for op in &ops {
            match op {
                Op::Put { entry } => drop(live.upsert(entry.clone()).unwrap()),
                Op::Delete { id } => drop(live.remove(id)),
            }
        }
        let mut replayed = corpus.clone();
        apply(&mut replayed, &ops);
        let live: Vec<FaqEntry> = live.entries().iter().map(|e| FaqEntry::clone(e)).collect();
        assert_eq!(replayed, live);
    }
}
