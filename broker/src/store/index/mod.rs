//! Message-key index: RocketMQ's `IndexFile` / `IndexService`, byte-compatible with the Java
//! layout so that a store directory can be moved between the two implementations.
//!
//! Each file is a fixed-size hash table with chaining, written append-only: a 40-byte header,
//! `slots` i32 heads (the newest entry number of each slot) and `entries` 20-byte entries, each
//! pointing to the previous entry of its slot. Lookups walk a chain newest first, so a time range
//! lets them stop early. Only key hashes are stored: results can contain false positives, which
//! the caller removes by checking the key on the message it reads.
//!
//! Files are memory-mapped with `memmap2::MmapRaw` and written through raw pointers. Soundness rests on
//! the service's `RwLock`: every write to a mapping happens under the write guard, every read of
//! a mapping under a read or write guard, so plain and mapped accesses never race. `msync` only
//! needs the mapping to stay alive (an `Arc`), so flushing runs outside the lock and never stalls
//! puts. Files are preallocated with `posix_fallocate`, so a full disk fails file creation with
//! an error instead of a SIGBUS on a later write through the mapping.
//!
//! Files found on disk are not trusted: every position read is bounds-checked and chain walks
//! always terminate, so a corrupt file yields wrong (or no) results but never a panic.

mod file;
mod name;
#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;
use rmq_remoting::util::now_millis;
use tracing::{debug, info, warn};

use self::file::*;
use self::name::*;

/// Where and how large the index files are (Java: `storePathRootDir/index`, `maxHashSlotNum`,
/// `maxIndexNum`).
#[derive(Debug, Clone)]
pub struct IndexConfig {
    pub dir: PathBuf,
    pub max_hash_slot_num: u32,
    pub max_index_num: u32,
}

/// The index-relevant part of a dispatched message.
#[derive(Debug, Clone, Copy)]
pub struct IndexRequest<'a> {
    pub topic: &'a str,
    /// The KEYS property: space-separated keys, may be empty.
    pub keys: &'a str,
    /// The UNIQ_KEY property.
    pub uniq_key: Option<&'a str>,
    pub commit_log_offset: i64,
    pub store_timestamp: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOffsetResult {
    pub phy_offsets: Vec<i64>,
    pub index_last_update_timestamp: i64,
    pub index_last_update_phyoffset: i64,
}

pub struct IndexService {
    dir: PathBuf,
    slots: u32,
    entries: u32,
    files: RwLock<Vec<Arc<IndexFile>>>,
}

impl IndexService {
    /// Creates the directory if needed and loads the files in it, skipping unusable ones.
    pub fn open(config: IndexConfig) -> io::Result<IndexService> {
        let invalid = |msg: &str| io::Error::new(io::ErrorKind::InvalidInput, msg.to_string());
        // Java stores these as ints; a file must hold at least one entry besides entry 0.
        if config.max_hash_slot_num == 0 || config.max_hash_slot_num > i32::MAX as u32 {
            return Err(invalid("max_hash_slot_num must be in 1..=i32::MAX"));
        }
        if config.max_index_num < 2 || config.max_index_num > i32::MAX as u32 {
            return Err(invalid("max_index_num must be in 2..=i32::MAX"));
        }
        if usize::try_from(file_size(config.max_hash_slot_num, config.max_index_num)).is_err() {
            return Err(invalid("index file size exceeds the address space"));
        }
        let dir = config.dir;
        fs::create_dir_all(&dir).map_err(|e| with_path(e, "cannot create index dir", &dir))?;
        let mut paths = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| with_path(e, "cannot list index dir", &dir))? {
            let entry = entry.map_err(|e| with_path(e, "cannot list index dir", &dir))?;
            let is_file = entry
                .file_type()
                .map_err(|e| with_path(e, "cannot stat", &entry.path()))?
                .is_file();
            if is_file {
                paths.push(entry.path());
            }
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            match IndexFile::open(&path, config.max_hash_slot_num, config.max_index_num)? {
                Ok(f) => {
                    debug!(path = %path.display(), header = ?f.header(), "loaded index file");
                    files.push(Arc::new(f));
                }
                Err(reason) => {
                    warn!(path = %path.display(), %reason, "skipping unusable index file")
                }
            }
        }
        info!(dir = %dir.display(), files = files.len(), "index service opened");
        Ok(IndexService {
            dir,
            slots: config.max_hash_slot_num,
            entries: config.max_index_num,
            files: RwLock::new(files),
        })
    }

    /// Indexes `topic#uniq_key` and `topic#key` for every key of the message. A message below
    /// the last indexed offset is ignored, which makes re-dispatch after recovery idempotent.
    pub fn put(&self, req: &IndexRequest) -> io::Result<()> {
        let uniq = req.uniq_key.filter(|k| !k.is_empty());
        let mut keys = uniq
            .into_iter()
            .chain(req.keys.split(' ').filter(|k| !k.is_empty()))
            .peekable();
        if keys.peek().is_none() {
            return Ok(());
        }
        let mut files = self.files.write();
        if let Some(last) = files.last() {
            let h = last.header();
            let end = h.end_phy_offset;
            // `end` is the offset of the last indexed record (or, in a fresh file, the one
            // carried over from the previous file), so it is skipped too on re-dispatch.
            let holds_end = !h.is_empty() || end > 0;
            if req.commit_log_offset < end || (req.commit_log_offset == end && holds_end) {
                debug!(
                    offset = req.commit_log_offset,
                    end, "already indexed; skipping"
                );
                return Ok(());
            }
        }
        for key in keys {
            let hash = key_hash(&build_key(req.topic, key));
            let file = match files.last() {
                Some(f) if !f.is_full() => Arc::clone(f),
                _ => {
                    let f = Arc::new(self.create_file(files.last().map(|f| &**f))?);
                    files.push(Arc::clone(&f));
                    f
                }
            };
            // SAFETY: we hold the write guard.
            if !unsafe { file.put_key(hash, req.commit_log_offset, req.store_timestamp) } {
                return Err(io::Error::other(format!(
                    "index file {} rejected a key",
                    file.path.display()
                )));
            }
        }
        Ok(())
    }

    fn create_file(&self, last: Option<&IndexFile>) -> io::Result<IndexFile> {
        let (carry_phy, carry_ts) = match last {
            Some(f) => {
                info!(path = %f.path.display(), "index file full; creating another");
                let h = f.header();
                (h.end_phy_offset, h.end_timestamp)
            }
            None => (0, 0),
        };
        // Names must sort after the last file's even if the clock went back.
        let mut millis = now_millis();
        if let Some(prev) = last.and_then(|f| f.name_millis) {
            millis = millis.max(prev + 1);
        }
        for _ in 0..1000 {
            let path = self.dir.join(file_name_for(millis));
            if !path.exists() {
                match IndexFile::create(&path, self.slots, self.entries, carry_phy, carry_ts) {
                    Ok(f) => {
                        info!(path = %path.display(), "created index file");
                        return Ok(f);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            millis += 1;
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("no free index file name in {}", self.dir.display()),
        ))
    }

    /// Offsets of messages whose `topic#key` was indexed with a store time in `[begin, end]`,
    /// newest first (may contain hash collisions).
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin: i64,
        end: i64,
    ) -> QueryOffsetResult {
        let hash = key_hash(&build_key(topic, key));
        let files = self.files.read();
        let mut result = QueryOffsetResult::default();
        if let Some(last) = files.last() {
            let h = last.header();
            result.index_last_update_timestamp = h.end_timestamp;
            result.index_last_update_phyoffset = h.end_phy_offset;
        }
        for f in files.iter().rev() {
            if result.phy_offsets.len() >= max_num {
                break;
            }
            let h = f.header();
            if h.is_empty() {
                continue;
            }
            if h.begin_timestamp <= end && h.end_timestamp >= begin {
                f.select_phy_offsets(hash, max_num, begin, end, &mut result.phy_offsets);
            }
            if h.begin_timestamp < begin {
                break;
            }
        }
        result
    }

    /// Syncs every file written since its last flush.
    pub fn flush(&self) -> io::Result<()> {
        let dirty: Vec<Arc<IndexFile>> = self
            .files
            .read()
            .iter()
            .filter(|f| f.dirty.load(Ordering::Acquire))
            .cloned()
            .collect();
        let mut first_err = None;
        for f in dirty {
            if let Err(e) = f.flush() {
                warn!(error = %e, "index flush failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The last file's endTimestamp (0 if none).
    pub fn last_update_timestamp(&self) -> i64 {
        self.files
            .read()
            .last()
            .map_or(0, |f| f.header().end_timestamp)
    }

    /// The last file's endPhyOffset (0 if none).
    pub fn end_phy_offset(&self) -> i64 {
        self.files
            .read()
            .last()
            .map_or(0, |f| f.header().end_phy_offset)
    }

    /// Retention: deletes (unmaps and removes from disk) every file except the last whose
    /// endPhyOffset < min_commit_log_offset; returns how many.
    pub fn delete_files_before(&self, min_commit_log_offset: i64) -> usize {
        let mut files = self.files.write();
        let last = files.len().saturating_sub(1);
        let mut deleted = 0;
        let mut i = 0;
        files.retain(|f| {
            let keep = i >= last
                || f.header().end_phy_offset >= min_commit_log_offset
                || !remove_from_disk(f);
            i += 1;
            if !keep {
                deleted += 1;
            }
            keep
        });
        deleted
    }

    /// Recovery after the commit log was cut at `phys_offset`: deletes files whose entries all
    /// lie past the cut and rewinds the last file's endPhyOffset below it, so that re-dispatch
    /// from `phys_offset` is indexed again. Stale entries past the cut stay in the last file;
    /// the caller filters them when it reads the messages.
    pub fn truncate_after(&self, phys_offset: i64) {
        let mut files = self.files.write();
        // An empty file's beginPhyOffset is the value carried over from its predecessor.
        files.retain(|f| f.header().begin_phy_offset < phys_offset || !remove_from_disk(f));
        if let Some(last) = files.last() {
            let mut h = last.header();
            if h.end_phy_offset >= phys_offset {
                info!(path = %last.path.display(), from = h.end_phy_offset, to = phys_offset - 1,
                    "rewinding index file end offset");
                h.end_phy_offset = (phys_offset - 1).max(0);
                // SAFETY: we hold the write guard.
                unsafe { last.write_header(&h) };
            }
        }
    }

    /// Recovery after a crash: entries may be in the page cache only; the next flush writes
    /// every file again before the checkpoint vouches for them.
    pub fn mark_dirty(&self) {
        for f in self.files.read().iter() {
            f.dirty.store(true, Ordering::Release);
        }
    }

    pub fn file_count(&self) -> usize {
        self.files.read().len()
    }
}

/// Unlinks a file being dropped from the list (its mapping goes when the last `Arc` does).
fn remove_from_disk(f: &IndexFile) -> bool {
    match fs::remove_file(&f.path) {
        Ok(()) => {
            info!(path = %f.path.display(), "deleted index file");
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            warn!(path = %f.path.display(), error = %e, "cannot delete index file");
            false
        }
    }
}
