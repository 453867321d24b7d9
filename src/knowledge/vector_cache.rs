//! The semantic scorer's entry vectors, remembered on disk: a restart or a corpus reload
//! embeds only the texts it has never seen, and an admin change embeds only its entry.
//!
//! One append-only file (`embeddings.bin` in the data directory). A record is the first 16
//! bytes of `SHA-256(model id, role, text)`, the vector's dimension (`u16`, little-endian)
//! and its `f32`s. At open the file is scanned and each key's offset kept in memory (24
//! bytes a vector, not the vector); a read is one positioned read. A record cut short by a
//! crash is dropped and overwritten. Losing the file costs time, never answers: it is a
//! cache, so nothing here is synced.
//!
//! One process writes the file at a time: the first to open it holds an exclusive lock on
//! it (`flock`) while the cache is open; another process on the same data directory (a
//! `wabot ask` beside `wabot serve`) reads the records that were there when it opened the
//! file and adds none. A read checks the record's key, so it never returns another text's
//! vector.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::engine::hybrid::VectorCache;
use crate::engine::semantic::Role;

/// The cache file's name in the data directory.
pub const FILE_NAME: &str = "embeddings.bin";

const KEY: usize = 16;
const HEADER: usize = KEY + 2;

/// What opening the cache can fail with.
#[derive(Debug, Error)]
#[error("cannot open the embedding cache {path}: {source}")]
pub struct CacheError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The on-disk cache of entry vectors.
#[derive(Debug)]
pub struct DiskCache {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Key → (offset of the vector's first float, dimension).
    offsets: HashMap<[u8; KEY], (u64, u16)>,
    end: u64,
    hits: u64,
    misses: u64,
    /// Another process holds the file: read what was there, write nothing.
    read_only: bool,
}

impl DiskCache {
    /// Opens (or creates) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<DiskCache, CacheError> {
        let path = dir.join(FILE_NAME);
        let fail = |source| CacheError { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fail)?;
        let read_only = match file.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(e)) => return Err(fail(e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(fail)?;
        let mut offsets = HashMap::new();
        let mut at = 0usize;
        while at + HEADER <= bytes.len() {
            let mut key = [0u8; KEY];
            key.copy_from_slice(&bytes[at..at + KEY]);
            let dim = u16::from_le_bytes([bytes[at + KEY], bytes[at + KEY + 1]]);
            let next = at + HEADER + 4 * usize::from(dim);
            if next > bytes.len() {
                break;
            }
            offsets.insert(key, ((at + HEADER) as u64, dim));
            at = next;
        }
        if !read_only {
            // A torn last record is overwritten by the next one.
            file.set_len(at as u64).map_err(fail)?;
            file.seek(SeekFrom::Start(at as u64)).map_err(fail)?;
        }
        let inner = Inner { file, offsets, end: at as u64, hits: 0, misses: 0, read_only };
        Ok(DiskCache { path, inner: Mutex::new(inner) })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when another process holds the file: this cache reads it and adds nothing.
    pub fn is_read_only(&self) -> bool {
        self.lock().read_only
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.lock().offsets.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from the file and lookups that were not, since it was opened.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.hits, inner.misses)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock left at worst an unindexed record.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(model: &str, role: Role, text: &str) -> [u8; KEY] {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update([0, role as u8, 0]);
    h.update(text.as_bytes());
    let digest = h.finalize();
    let mut k = [0u8; KEY];
    k.copy_from_slice(&digest[..KEY]);
    k
}

impl VectorCache for DiskCache {
    fn get(&self, model: &str, role: Role, text: &str) -> Option<Vec<f32>> {
        let k = key(model, role, text);
        let mut inner = self.lock();
        let Some(&(offset, dim)) = inner.offsets.get(&k) else {
            inner.misses += 1;
            return None;
        };
        let mut bytes = vec![0u8; HEADER + 4 * usize::from(dim)];
        let header_at = offset - HEADER as u64;
        // The record must still be this key's: a vector is never taken from another text.
        if inner.file.read_exact_at(&mut bytes, header_at).is_err()
            || bytes[..KEY] != k
            || bytes[KEY..HEADER] != dim.to_le_bytes()
        {
            inner.misses += 1;
            return None;
        }
        inner.hits += 1;
        Some(bytes[HEADER..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn put(&self, model: &str, role: Role, text: &str, vector: &[f32]) {
        let Ok(dim) = u16::try_from(vector.len()) else { return };
        let k = key(model, role, text);
        let mut record = Vec::with_capacity(HEADER + 4 * vector.len());
        record.extend_from_slice(&k);
        record.extend_from_slice(&dim.to_le_bytes());
        for x in vector {
            record.extend_from_slice(&x.to_le_bytes());
        }
        let mut inner = self.lock();
        if inner.read_only || inner.offsets.contains_key(&k) {
            return;
        }
        let at = inner.end;
        if inner.file.write_all(&record).is_ok() {
            inner.end += record.len() as u64;
            inner.offsets.insert(k, (at + HEADER as u64, dim));
        } else {
            // A failed write may have left part of a record: the next one goes where it began.
            let _ = inner.file.set_len(at);
            let _ = inner.file.seek(SeekFrom::Start(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_put_are_found_after_a_reopen_and_a_torn_last_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path()).unwrap();
        assert!(cache.get("m", Role::Query, "hello").is_none());
        cache.put("m", Role::Query, "hello", &[0.5, -0.25]);
        cache.put("m", Role::Passage, "hello", &[1.0, 0.0]);
        assert_eq!(cache.get("m", Role::Query, "hello"), Some(vec![0.5, -0.25]));
        drop(cache);

        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[7u8; 20]);
        std::fs::write(&path, &bytes).unwrap();

        let cache = DiskCache::open(dir.path()).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("m", Role::Query, "hello"), Some(vec![0.5, -0.25]));
        assert_eq!(cache.get("m", Role::Passage, "hello"), Some(vec![1.0, 0.0]));
        assert!(cache.get("other-model", Role::Query, "hello").is_none());
        cache.put("m", Role::Query, "again", &[0.1]);
        drop(cache);
        let cache = DiskCache::open(dir.path()).unwrap();
        assert_eq!(cache.get("m", Role::Query, "again"), Some(vec![0.1]));
        assert_eq!(cache.hits_and_misses(), (1, 0));
    }

    #[test]
    fn a_second_opener_reads_what_was_there_and_never_writes_over_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = DiskCache::open(dir.path()).unwrap();
        first.put("m", Role::Query, "before", &[1.0, 2.0]);
        let second = DiskCache::open(dir.path()).unwrap();
        assert!(!first.is_read_only() && second.is_read_only());
        assert_eq!(second.get("m", Role::Query, "before"), Some(vec![1.0, 2.0]));

        // Both put vectors for different texts: only the first's reach the file.
        second.put("m", Role::Query, "second's", &[9.0, 9.0]);
        first.put("m", Role::Query, "first's", &[3.0, 4.0]);
        assert_eq!(first.get("m", Role::Query, "first's"), Some(vec![3.0, 4.0]));
        assert!(first.get("m", Role::Query, "second's").is_none());
        assert!(second.get("m", Role::Query, "second's").is_none());
        drop((first, second));

        let reopened = DiskCache::open(dir.path()).unwrap();
        assert!(!reopened.is_read_only(), "the lock went with its holder");
        assert_eq!(reopened.len(), 2);
        assert_eq!(reopened.get("m", Role::Query, "first's"), Some(vec![3.0, 4.0]));
    }

    #[test]
    fn a_record_overwritten_behind_the_index_is_a_miss_not_another_texts_vector() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path()).unwrap();
        cache.put("m", Role::Query, "hello", &[0.5, -0.25]);
        // Something else rewrote the record in place (a process that ignored the lock).
        let file = OpenOptions::new().write(true).open(dir.path().join(FILE_NAME)).unwrap();
        file.write_all_at(&key("m", Role::Query, "other")[..], 0).unwrap();
        assert!(cache.get("m", Role::Query, "hello").is_none());
    }
}
