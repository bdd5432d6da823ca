//! Message-key index: RocketMQ's `IndexFile` / `IndexService`, byte-compatible with the Java
//! layout so that a store directory can be moved between the two implementations.
//!
//! Each file is a fixed-size hash table with chaining, written append-only: a 40-byte header,
//! `slots` i32 heads (the newest entry number of each slot) and `entries` 20-byte entries, each
//! pointing to the previous entry of its slot. Lookups walk a chain newest first, so a time range
//! lets them stop early. Only key hashes are stored: results can contain false positives, which
//! the caller removes by checking the key on the message it reads.
//!
//! Files are memory-mapped with [`MmapRaw`] and written through raw pointers. Soundness rests on
//! the service's `RwLock`: every write to a mapping happens under the write guard, every read of
//! a mapping under a read or write guard, so plain and mapped accesses never race. `msync` only
//! needs the mapping to stay alive (an `Arc`), so flushing runs outside the lock and never stalls
//! puts. Files are preallocated with `posix_fallocate`, so a full disk fails file creation with
//! an error instead of a SIGBUS on a later write through the mapping.
//!
//! Files found on disk are not trusted: every position read is bounds-checked and chain walks
//! always terminate, so a corrupt file yields wrong (or no) results but never a panic.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memmap2::MmapRaw;
use parking_lot::RwLock;
use rmq_remoting::util::{java_hash_code, now_millis};
use tracing::{debug, info, warn};

const HEADER_SIZE: usize = 40;
const SLOT_SIZE: usize = 4;
const ENTRY_SIZE: usize = 20;

const BEGIN_TIMESTAMP_POS: usize = 0;
const END_TIMESTAMP_POS: usize = 8;
const BEGIN_PHY_OFFSET_POS: usize = 16;
const END_PHY_OFFSET_POS: usize = 24;
const HASH_SLOT_COUNT_POS: usize = 32;
const INDEX_COUNT_POS: usize = 36;

/// Entry number 0 is never written; it marks an empty slot and the end of a chain.
const INVALID_INDEX: i32 = 0;

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

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Header {
    begin_timestamp: i64,
    end_timestamp: i64,
    begin_phy_offset: i64,
    end_phy_offset: i64,
    hash_slot_count: i32,
    /// Raw on-disk value; Java treats `<= 0` as 1 (a header that was never flushed).
    index_count: i32,
}

impl Header {
    fn index_count(&self) -> i32 {
        self.index_count.max(1)
    }

    fn is_empty(&self) -> bool {
        self.index_count() <= 1
    }
}

/// RocketMQ's key hash: `abs(String.hashCode())`, with the overflowing `i32::MIN` mapped to 0.
fn key_hash(key: &str) -> i32 {
    java_hash_code(key).checked_abs().unwrap_or(0)
}

fn build_key(topic: &str, key: &str) -> String {
    let mut s = String::with_capacity(topic.len() + 1 + key.len());
    s.push_str(topic);
    s.push('#');
    s.push_str(key);
    s
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn file_size(slots: u32, entries: u32) -> u64 {
    HEADER_SIZE as u64
        + u64::from(slots) * SLOT_SIZE as u64
        + u64::from(entries) * ENTRY_SIZE as u64
}

struct IndexFile {
    path: PathBuf,
    /// Creation time encoded in the name, used to keep new names sorting after old ones.
    name_millis: Option<i64>,
    map: MmapRaw,
    slots: u32,
    entries: u32,
    dirty: AtomicBool,
}

impl IndexFile {
    fn create(
        path: &Path,
        slots: u32,
        entries: u32,
        carry_end_phy_offset: i64,
        carry_end_timestamp: i64,
    ) -> io::Result<IndexFile> {
        let size = file_size(slots, entries);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| with_path(e, "cannot create index file", path))?;
        let mapped = preallocate(&file, size)
            .map_err(|e| with_path(e, "cannot preallocate index file", path))
            .and_then(|()| {
                MmapRaw::map_raw(&file).map_err(|e| with_path(e, "cannot map index file", path))
            });
        let map = match mapped {
            Ok(map) => map,
            Err(e) => {
                let _ = fs::remove_file(path);
                return Err(e);
            }
        };
        let f = IndexFile {
            path: path.to_path_buf(),
            name_millis: path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_file_name),
            map,
            slots,
            entries,
            dirty: AtomicBool::new(true),
        };
        // A new file continues where the previous one ended, so that the idempotence check and
        // the last-update values survive a rollover (as in Java).
        let mut h = Header {
            index_count: 1,
            ..Header::default()
        };
        if carry_end_phy_offset > 0 {
            h.begin_phy_offset = carry_end_phy_offset;
            h.end_phy_offset = carry_end_phy_offset;
        }
        if carry_end_timestamp > 0 {
            h.begin_timestamp = carry_end_timestamp;
            h.end_timestamp = carry_end_timestamp;
        }
        // SAFETY: nobody else can see this file yet.
        unsafe { f.write_header(&h) };
        Ok(f)
    }

    /// Opens an existing file; `Ok(Err(reason))` means it is unusable and should be skipped.
    fn open(path: &Path, slots: u32, entries: u32) -> io::Result<Result<IndexFile, String>> {
        let expected = file_size(slots, entries);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| with_path(e, "cannot open index file", path))?;
        let len = file
            .metadata()
            .map_err(|e| with_path(e, "cannot stat index file", path))?
            .len();
        if len != expected {
            return Ok(Err(format!("size {len}, expected {expected}")));
        }
        // Accessing the mapping is sound only while nobody else truncates the file.
        let map =
            MmapRaw::map_raw(&file).map_err(|e| with_path(e, "cannot map index file", path))?;
        if map.len() as u64 != expected {
            return Ok(Err(format!(
                "mapped {} bytes, expected {expected}",
                map.len()
            )));
        }
        let f = IndexFile {
            path: path.to_path_buf(),
            name_millis: path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_file_name),
            map,
            slots,
            entries,
            dirty: AtomicBool::new(false),
        };
        let h = f.header();
        let plausible = (0..=entries as i64).contains(&i64::from(h.index_count))
            && (0..=slots as i64).contains(&i64::from(h.hash_slot_count))
            && h.begin_phy_offset >= 0
            && h.end_phy_offset >= 0
            && h.begin_timestamp >= 0
            && h.end_timestamp >= 0
            && (h.is_empty() || h.begin_phy_offset <= h.end_phy_offset);
        if !plausible {
            return Ok(Err(format!("implausible header {h:?}")));
        }
        Ok(Ok(f))
    }

    fn read<const N: usize>(&self, pos: usize) -> Option<[u8; N]> {
        if pos.checked_add(N)? > self.map.len() {
            return None;
        }
        let mut buf = [0u8; N];
        // SAFETY: in bounds; the caller holds the service lock, so no write is in progress.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(pos), buf.as_mut_ptr(), N) };
        Some(buf)
    }

    fn read_i32(&self, pos: usize) -> Option<i32> {
        self.read::<4>(pos).map(i32::from_be_bytes)
    }

    fn read_i64(&self, pos: usize) -> Option<i64> {
        self.read::<8>(pos).map(i64::from_be_bytes)
    }

    /// # Safety
    /// The caller holds the service's write lock (or the file is not shared yet).
    unsafe fn write(&self, pos: usize, bytes: &[u8]) -> bool {
        match pos.checked_add(bytes.len()) {
            Some(end) if end <= self.map.len() => {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.map.as_mut_ptr().add(pos),
                    bytes.len(),
                );
                self.dirty.store(true, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    fn header(&self) -> Header {
        Header {
            begin_timestamp: self.read_i64(BEGIN_TIMESTAMP_POS).unwrap_or(0),
            end_timestamp: self.read_i64(END_TIMESTAMP_POS).unwrap_or(0),
            begin_phy_offset: self.read_i64(BEGIN_PHY_OFFSET_POS).unwrap_or(0),
            end_phy_offset: self.read_i64(END_PHY_OFFSET_POS).unwrap_or(0),
            hash_slot_count: self.read_i32(HASH_SLOT_COUNT_POS).unwrap_or(0),
            index_count: self.read_i32(INDEX_COUNT_POS).unwrap_or(0),
        }
    }

    /// # Safety
    /// As for [`IndexFile::write`].
    unsafe fn write_header(&self, h: &Header) {
        let mut buf = [0u8; HEADER_SIZE];
        buf[BEGIN_TIMESTAMP_POS..][..8].copy_from_slice(&h.begin_timestamp.to_be_bytes());
        buf[END_TIMESTAMP_POS..][..8].copy_from_slice(&h.end_timestamp.to_be_bytes());
        buf[BEGIN_PHY_OFFSET_POS..][..8].copy_from_slice(&h.begin_phy_offset.to_be_bytes());
        buf[END_PHY_OFFSET_POS..][..8].copy_from_slice(&h.end_phy_offset.to_be_bytes());
        buf[HASH_SLOT_COUNT_POS..][..4].copy_from_slice(&h.hash_slot_count.to_be_bytes());
        buf[INDEX_COUNT_POS..][..4].copy_from_slice(&h.index_count.to_be_bytes());
        self.write(0, &buf);
    }

    fn slot_pos(&self, hash: i32) -> usize {
        // `hash` is non-negative and `slots` > 0 (checked by the service).
        HEADER_SIZE + (hash as u32 % self.slots) as usize * SLOT_SIZE
    }

    fn entry_pos(&self, index: i32) -> usize {
        HEADER_SIZE + self.slots as usize * SLOT_SIZE + index.max(0) as usize * ENTRY_SIZE
    }

    fn is_full(&self) -> bool {
        i64::from(self.header().index_count()) >= i64::from(self.entries)
    }

    /// Appends one entry; `false` if the file is full.
    ///
    /// # Safety
    /// As for [`IndexFile::write`].
    unsafe fn put_key(&self, hash: i32, phy_offset: i64, store_timestamp: i64) -> bool {
        let mut h = self.header();
        let count = h.index_count();
        if i64::from(count) >= i64::from(self.entries) {
            return false;
        }
        let slot_pos = self.slot_pos(hash);
        let mut slot_value = self.read_i32(slot_pos).unwrap_or(INVALID_INDEX);
        if slot_value <= INVALID_INDEX || slot_value > count {
            slot_value = INVALID_INDEX;
        }
        // The first entry defines beginTimestamp, so its diff is 0. (Java computes it against
        // the header carried over from the previous file, which shifts that entry's time.)
        let time_diff = if count <= 1 || h.begin_timestamp <= 0 {
            0
        } else {
            (store_timestamp.saturating_sub(h.begin_timestamp) / 1000).clamp(0, i32::MAX as i64)
                as i32
        };
        let mut entry = [0u8; ENTRY_SIZE];
        entry[0..4].copy_from_slice(&hash.to_be_bytes());
        entry[4..12].copy_from_slice(&phy_offset.to_be_bytes());
        entry[12..16].copy_from_slice(&time_diff.to_be_bytes());
        entry[16..20].copy_from_slice(&slot_value.to_be_bytes());
        if !self.write(self.entry_pos(count), &entry) || !self.write(slot_pos, &count.to_be_bytes())
        {
            return false;
        }
        if count <= 1 {
            h.begin_phy_offset = phy_offset;
            h.begin_timestamp = store_timestamp;
        }
        if slot_value == INVALID_INDEX {
            h.hash_slot_count = h.hash_slot_count.saturating_add(1);
        }
        h.index_count = count + 1;
        h.end_phy_offset = phy_offset;
        h.end_timestamp = store_timestamp;
        self.write_header(&h);
        true
    }

    /// Appends to `out` (up to `max_num` in total) the offsets of entries for `hash` stored
    /// within `[begin, end]`, newest first.
    fn select_phy_offsets(
        &self,
        hash: i32,
        max_num: usize,
        begin: i64,
        end: i64,
        out: &mut Vec<i64>,
    ) {
        let h = self.header();
        let count = h.index_count();
        if count <= 1 {
            return;
        }
        let Some(mut current) = self.read_i32(self.slot_pos(hash)) else {
            return;
        };
        if current <= INVALID_INDEX || current > count {
            return;
        }
        while out.len() < max_num {
            let pos = self.entry_pos(current);
            let Some(entry) = self.read::<ENTRY_SIZE>(pos) else {
                return;
            };
            let hash_read = i32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let mut phy = [0u8; 8];
            phy.copy_from_slice(&entry[4..12]);
            let phy_offset = i64::from_be_bytes(phy);
            let time_diff = i32::from_be_bytes([entry[12], entry[13], entry[14], entry[15]]);
            let prev = i32::from_be_bytes([entry[16], entry[17], entry[18], entry[19]]);
            if time_diff < 0 {
                return;
            }
            let time = h
                .begin_timestamp
                .saturating_add(i64::from(time_diff) * 1000);
            if hash_read == hash && (begin..=end).contains(&time) {
                out.push(phy_offset);
            }
            // Valid chains strictly descend; requiring that guarantees termination on garbage.
            if prev <= INVALID_INDEX || prev > count || prev >= current || time < begin {
                return;
            }
            current = prev;
        }
    }

    fn flush(&self) -> io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.map.flush() {
                self.dirty.store(true, Ordering::Release);
                return Err(with_path(e, "cannot flush index file", &self.path));
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "index file too large"))?;
    loop {
        // SAFETY: a valid open descriptor; posix_fallocate returns the error number directly.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

/// `yyyyMMddHHmmssSSS` in UTC.
fn file_name_for(millis: i64) -> String {
    let ms = millis.rem_euclid(1000);
    let secs = millis.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}{mo:02}{d:02}{:02}{:02}{:02}{ms:03}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn parse_file_name(name: &str) -> Option<i64> {
    if name.len() != 17 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| name[r].parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, s, ms) = (n(8..10)?, n(10..12)?, n(12..14)?, n(14..17)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms)
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The set of index files of a store, oldest first; the last one is the one being written.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000;

    fn config(dir: &Path, slots: u32, entries: u32) -> IndexConfig {
        IndexConfig {
            dir: dir.join("index"),
            max_hash_slot_num: slots,
            max_index_num: entries,
        }
    }

    fn small(dir: &Path) -> IndexService {
        IndexService::open(config(dir, 16, 50)).unwrap()
    }

    fn req<'a>(
        topic: &'a str,
        keys: &'a str,
        uniq: Option<&'a str>,
        off: i64,
        ts: i64,
    ) -> IndexRequest<'a> {
        IndexRequest {
            topic,
            keys,
            uniq_key: uniq,
            commit_log_offset: off,
            store_timestamp: ts,
        }
    }

    fn all(svc: &IndexService, topic: &str, key: &str) -> Vec<i64> {
        svc.query(topic, key, usize::MAX, 0, i64::MAX).phy_offsets
    }

    /// Puts message i (offset 100*i, time T0 + 1000*i) with keys "k{i%7}" and "u{i}".
    fn fill(svc: &IndexService, n: i64) {
        for i in 0..n {
            let keys = format!("k{} ", i % 7);
            let uniq = format!("u{i}");
            svc.put(&req("T", &keys, Some(&uniq), 100 * i, T0 + 1000 * i))
                .unwrap();
        }
    }

    fn check_filled(svc: &IndexService, n: i64) {
        for k in 0..7 {
            let expected: Vec<i64> = (0..n)
                .rev()
                .filter(|i| i % 7 == k)
                .map(|i| 100 * i)
                .collect();
            assert_eq!(all(svc, "T", &format!("k{k}")), expected, "k{k}");
        }
        for i in 0..n {
            assert_eq!(all(svc, "T", &format!("u{i}")), vec![100 * i]);
        }
    }

    #[test]
    fn file_names_are_utc_and_parse_back() {
        for (ms, name) in [
            (0, "19700101000000000"),
            (1_700_000_000_000, "20231114221320000"),
            (951_786_123_456, "20000229010203456"),
        ] {
            assert_eq!(file_name_for(ms), name);
            assert_eq!(parse_file_name(name), Some(ms));
        }
        assert_eq!(parse_file_name("abc"), None);
    }

    #[test]
    fn key_hash_matches_java() {
        assert_eq!(key_hash("TopicA#k1"), 1_903_240_649);
        assert_eq!(key_hash("TopicA#uniq"), 642_164_306);
        assert_eq!(key_hash("polygenelubricants"), 0);
    }

    #[test]
    fn put_query_round_trip_with_collisions() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        // 20 messages × 2 keys = 40 entries in 16 slots: one file, colliding chains.
        fill(&svc, 20);
        assert_eq!(svc.file_count(), 1);
        check_filled(&svc, 20);
        assert!(all(&svc, "T", "missing").is_empty());
        assert!(all(&svc, "Other", "k1").is_empty());
        let r = svc.query("T", "k1", 10, 0, i64::MAX);
        assert_eq!(r.index_last_update_phyoffset, 1900);
        assert_eq!(r.index_last_update_timestamp, T0 + 19_000);
        assert_eq!(svc.end_phy_offset(), 1900);
        assert_eq!(svc.last_update_timestamp(), T0 + 19_000);
    }

    #[test]
    fn empty_keys_and_uniq_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        svc.put(&req("T", "", None, 0, T0)).unwrap();
        svc.put(&req("T", "  ", Some(""), 10, T0)).unwrap();
        assert_eq!(svc.file_count(), 0);
        svc.put(&req("T", " a  b ", None, 20, T0)).unwrap();
        assert_eq!(all(&svc, "T", "a"), vec![20]);
        assert_eq!(all(&svc, "T", "b"), vec![20]);
        assert!(all(&svc, "T", "").is_empty());
    }

    #[test]
    fn max_num_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        fill(&svc, 120); // spans several files
        assert!(svc.file_count() > 3);
        let r = svc.query("T", "k3", 4, 0, i64::MAX);
        assert_eq!(r.phy_offsets, vec![11_500, 10_800, 10_100, 9_400]);
        assert!(svc.query("T", "k3", 0, 0, i64::MAX).phy_offsets.is_empty());
    }

    #[test]
    fn time_range_filtering() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        fill(&svc, 120);
        // k0: messages 0, 7, 14, ...; pick those stored in [T0+20s, T0+60s].
        let r = svc.query("T", "k0", usize::MAX, T0 + 20_000, T0 + 60_000);
        assert_eq!(r.phy_offsets, vec![5600, 4900, 4200, 3500, 2800, 2100]);
        let r = svc.query("T", "u50", usize::MAX, T0 + 50_000, T0 + 50_000);
        assert_eq!(r.phy_offsets, vec![5000]);
        assert!(svc
            .query("T", "u50", 10, T0 + 51_000, T0 + 99_000)
            .phy_offsets
            .is_empty());
        assert!(svc.query("T", "u50", 10, 0, T0 - 1).phy_offsets.is_empty());
        assert!(svc
            .query("T", "u50", 10, T0 + 200_000, i64::MAX)
            .phy_offsets
            .is_empty());
    }

    #[test]
    fn rollover_and_queries_span_files() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        fill(&svc, 120); // 240 entries, 49 per file
        assert_eq!(svc.file_count(), 5);
        check_filled(&svc, 120);
        let mut names: Vec<_> = fs::read_dir(dir.path().join("index"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 5);
        assert!(names.iter().all(|n| parse_file_name(n).is_some()));
        for e in fs::read_dir(dir.path().join("index")).unwrap() {
            assert_eq!(e.unwrap().metadata().unwrap().len(), file_size(16, 50));
        }
    }

    #[test]
    fn reopen_preserves_everything() {
        let dir = tempfile::tempdir().unwrap();
        {
            let svc = small(dir.path());
            fill(&svc, 70);
            svc.flush().unwrap();
        }
        let svc = small(dir.path());
        assert_eq!(svc.file_count(), 3);
        check_filled(&svc, 70);
        assert_eq!(svc.end_phy_offset(), 6900);
        // Continues where it left off.
        for i in 70..120 {
            let keys = format!("k{}", i % 7);
            let uniq = format!("u{i}");
            svc.put(&req("T", &keys, Some(&uniq), 100 * i, T0 + 1000 * i))
                .unwrap();
        }
        drop(svc);
        let svc = small(dir.path());
        check_filled(&svc, 120);
    }

    #[test]
    fn reput_of_older_offset_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        fill(&svc, 30);
        fill(&svc, 30); // full re-dispatch: nothing is indexed twice, the last message included
        let mut k1: Vec<i64> = (0..30)
            .rev()
            .filter(|i| i % 7 == 1)
            .map(|i| 100 * i)
            .collect();
        assert_eq!(all(&svc, "T", "k1"), k1);
        assert_eq!(all(&svc, "T", "u28"), vec![2800]);
        assert_eq!(all(&svc, "T", "u29"), vec![2900]);
        svc.put(&req("T", "k1", None, 3000, T0 + 30_000)).unwrap();
        k1.insert(0, 3000);
        assert_eq!(all(&svc, "T", "k1"), k1);
        // Idempotence across a rollover.
        let svc2_dir = tempfile::tempdir().unwrap();
        let svc2 = IndexService::open(config(svc2_dir.path(), 4, 3)).unwrap();
        svc2.put(&req("T", "a b", None, 500, T0)).unwrap();
        svc2.put(&req("T", "c", None, 600, T0)).unwrap();
        assert_eq!(svc2.file_count(), 2);
        svc2.put(&req("T", "d", None, 400, T0)).unwrap();
        assert!(all(&svc2, "T", "d").is_empty());
    }

    #[test]
    fn truncate_after_then_reput() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        fill(&svc, 120); // files hold messages 0..=24, 24..=48, 49..=73, 73..=97, 98..=119
        assert_eq!(svc.file_count(), 5);
        svc.truncate_after(6000); // cut before message 60
        assert_eq!(svc.file_count(), 3);
        assert_eq!(svc.end_phy_offset(), 5999);
        // Re-dispatch from the cut with different keys.
        for i in 60..120 {
            let keys = format!("n{}", i % 5);
            svc.put(&req("T", &keys, None, 100 * i, T0 + 1000 * i))
                .unwrap();
        }
        assert_eq!(all(&svc, "T", "u100"), Vec::<i64>::new());
        // Stale entries of the last kept file (messages 60..=73) remain; the caller filters them.
        assert_eq!(all(&svc, "T", "u65"), vec![6500]);
        assert_eq!(all(&svc, "T", "u59"), vec![5900]);
        let n0: Vec<i64> = (60..120)
            .rev()
            .filter(|i| i % 5 == 0)
            .map(|i| 100 * i)
            .collect();
        assert_eq!(all(&svc, "T", "n0"), n0);
        drop(svc);
        let svc = small(dir.path());
        assert_eq!(all(&svc, "T", "n0"), n0);
        svc.truncate_after(0);
        assert_eq!(svc.file_count(), 0);
        assert_eq!(fs::read_dir(dir.path().join("index")).unwrap().count(), 0);
    }

    #[test]
    fn delete_files_before_keeps_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        fill(&svc, 120);
        assert_eq!(svc.file_count(), 5);
        assert_eq!(svc.delete_files_before(0), 0);
        assert_eq!(svc.delete_files_before(4800), 1); // ends: 2400, 4800, 7300, 9700, 11900
        assert_eq!(svc.file_count(), 4);
        assert_eq!(all(&svc, "T", "u10"), Vec::<i64>::new());
        assert_eq!(all(&svc, "T", "u30"), vec![3000]);
        assert_eq!(svc.delete_files_before(i64::MAX), 3);
        assert_eq!(svc.file_count(), 1);
        assert_eq!(fs::read_dir(dir.path().join("index")).unwrap().count(), 1);
        assert_eq!(all(&svc, "T", "u119"), vec![11_900]);
        drop(svc);
        assert_eq!(small(dir.path()).file_count(), 1);
    }

    #[test]
    fn flush_tracks_dirty_files() {
        let dir = tempfile::tempdir().unwrap();
        let svc = small(dir.path());
        fill(&svc, 60);
        let dirty = |svc: &IndexService| {
            svc.files
                .read()
                .iter()
                .filter(|f| f.dirty.load(Ordering::Acquire))
                .count()
        };
        assert_eq!(dirty(&svc), 3);
        svc.flush().unwrap();
        assert_eq!(dirty(&svc), 0);
        svc.put(&req("T", "x", None, 10_000, T0 + 100_000)).unwrap();
        assert_eq!(dirty(&svc), 1);
        svc.flush().unwrap();
        assert_eq!(dirty(&svc), 0);
    }

    /// Hand-computed example: slots 4, entries 5.
    #[test]
    fn on_disk_layout_matches_java() {
        let dir = tempfile::tempdir().unwrap();
        let svc = IndexService::open(config(dir.path(), 4, 5)).unwrap();
        // hashCode: TopicA#uniq = 642164306 (slot 2), TopicA#k1 = -1903240649 (abs, slot 1),
        // TopicA#k2 = -1903240648 (abs, slot 0).
        svc.put(&req("TopicA", "k1 k2", Some("uniq"), 1000, T0))
            .unwrap();
        svc.put(&req("TopicA", "k1", None, 2000, T0 + 3500))
            .unwrap();
        svc.flush().unwrap();
        let path = svc.files.read()[0].path.clone();
        let b = fs::read(&path).unwrap();
        assert_eq!(b.len(), 40 + 4 * 4 + 5 * 20);
        let i64_at = |p: usize| i64::from_be_bytes(b[p..p + 8].try_into().unwrap());
        let i32_at = |p: usize| i32::from_be_bytes(b[p..p + 4].try_into().unwrap());
        assert_eq!(i64_at(0), T0);
        assert_eq!(i64_at(8), T0 + 3500);
        assert_eq!(i64_at(16), 1000);
        assert_eq!(i64_at(24), 2000);
        assert_eq!(i32_at(32), 3);
        assert_eq!(i32_at(36), 5);
        assert_eq!(
            [i32_at(40), i32_at(44), i32_at(48), i32_at(52)],
            [3, 4, 1, 0]
        );
        // Entry 0 unused.
        assert_eq!(&b[56..76], &[0u8; 20]);
        // Entry 1: uniq.
        assert_eq!(&b[76..80], &642_164_306i32.to_be_bytes());
        assert_eq!(i64_at(80), 1000);
        assert_eq!((i32_at(88), i32_at(92)), (0, 0));
        // Entry 4 at 40 + 16 + 4*20 = 136: k1 again, 3 s later, chained to entry 2.
        let expected: Vec<u8> = [
            &1_903_240_649i32.to_be_bytes()[..],
            &2000i64.to_be_bytes(),
            &3i32.to_be_bytes(),
            &2i32.to_be_bytes(),
        ]
        .concat();
        assert_eq!(&b[136..156], &expected[..]);
        // Full: the next key goes to a new file that carries the end values over.
        svc.put(&req("TopicA", "k3", None, 3000, T0 + 5000))
            .unwrap();
        assert_eq!(svc.file_count(), 2);
        assert_eq!(all(&svc, "TopicA", "k1"), vec![2000, 1000]);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 17);
    }

    #[test]
    fn new_file_names_sort_after_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("index");
        fs::create_dir_all(&idx).unwrap();
        // A file from the "future": new names must still sort after it.
        let future = "29991231235959999";
        {
            let svc = IndexService::open(config(dir.path(), 4, 3)).unwrap();
            svc.put(&req("T", "a", None, 1, T0)).unwrap();
            let old = svc.files.read()[0].path.clone();
            drop(svc);
            fs::rename(old, idx.join(future)).unwrap();
        }
        let svc = IndexService::open(config(dir.path(), 4, 3)).unwrap();
        svc.put(&req("T", "b c", None, 2, T0)).unwrap();
        let names: Vec<String> = svc
            .files
            .read()
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names[0], future);
        assert!(names[1].as_str() > future, "{names:?}");
        assert_eq!(all(&svc, "T", "c"), vec![2]);
    }

    #[test]
    fn unusable_files_are_skipped_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("index");
        fs::create_dir_all(&idx).unwrap();
        fs::write(idx.join("20200101000000000"), b"short").unwrap();
        let mut bad = vec![0u8; file_size(16, 50) as usize];
        bad[36..40].copy_from_slice(&51i32.to_be_bytes()); // indexCount > max
        fs::write(idx.join("20200101000000001"), &bad).unwrap();
        assert!(IndexService::open(config(dir.path(), 0, 50)).is_err());
        assert!(IndexService::open(config(dir.path(), 16, 1)).is_err());
        let svc = small(dir.path());
        assert_eq!(svc.file_count(), 0);
        svc.put(&req("T", "a", None, 1, T0)).unwrap();
        assert_eq!(svc.file_count(), 1);
        assert_eq!(fs::read_dir(&idx).unwrap().count(), 3);
    }

    #[test]
    fn concurrent_queries_during_puts() {
        let dir = tempfile::tempdir().unwrap();
        let svc = Arc::new(small(dir.path()));
        let writer = {
            let svc = Arc::clone(&svc);
            std::thread::spawn(move || fill(&svc, 300))
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let svc = Arc::clone(&svc);
                std::thread::spawn(move || {
                    for i in 0..300 {
                        let r = svc.query("T", &format!("k{}", i % 7), 5, 0, i64::MAX);
                        assert!(r.phy_offsets.len() <= 5);
                        assert!(r.phy_offsets.windows(2).all(|w| w[0] > w[1]));
                        let _ = svc.flush();
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        check_filled(&svc, 300);
    }

    #[derive(Debug, Clone)]
    struct Corrupt {
        bytes: Vec<u8>,
        resize: Option<usize>,
    }

    fn corrupt_file() -> impl Strategy<Value = Corrupt> {
        let size = file_size(16, 50) as usize;
        (
            proptest::collection::vec(any::<u8>(), size),
            proptest::option::weighted(
                0.8,
                (
                    -2i32..=52,
                    -2i32..=18,
                    0i64..5000,
                    0i64..5000,
                    0i64..=T0 + 100_000,
                    0i64..=T0 + 100_000,
                ),
            ),
            proptest::option::weighted(0.1, 0usize..2 * size),
        )
            .prop_map(|(mut bytes, header, resize)| {
                if let Some((count, slots, bp, ep, bt, et)) = header {
                    bytes[0..8].copy_from_slice(&bt.to_be_bytes());
                    bytes[8..16].copy_from_slice(&et.to_be_bytes());
                    bytes[16..24].copy_from_slice(&bp.to_be_bytes());
                    bytes[24..32].copy_from_slice(&ep.to_be_bytes());
                    bytes[32..36].copy_from_slice(&slots.to_be_bytes());
                    bytes[36..40].copy_from_slice(&count.to_be_bytes());
                    // Make slot heads and prev pointers mostly small so that chains get walked.
                    for p in (40..104).step_by(4) {
                        let v = i32::from(bytes[p]) % 56 - 3;
                        bytes[p..p + 4].copy_from_slice(&v.to_be_bytes());
                    }
                    for e in 0..50 {
                        let p = 104 + e * 20 + 16;
                        let v = i32::from(bytes[p]) % 56 - 3;
                        bytes[p..p + 4].copy_from_slice(&v.to_be_bytes());
                    }
                }
                Corrupt { bytes, resize }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn corrupt_files_never_panic(c in corrupt_file(), begin in 0i64..=T0 + 100_000, span in 0i64..200_000) {
            let dir = tempfile::tempdir().unwrap();
            let idx = dir.path().join("index");
            fs::create_dir_all(&idx).unwrap();
            let mut bytes = c.bytes.clone();
            if let Some(len) = c.resize {
                bytes.resize(len, 7);
            }
            fs::write(idx.join("20200101000000000"), &bytes).unwrap();
            let svc = small(dir.path());
            let keys = ["k0", "k1", "k2", "u1", "zz"];
            for k in keys {
                let r = svc.query("T", k, 100, begin, begin.saturating_add(span));
                prop_assert!(r.phy_offsets.len() <= 100);
                let _ = svc.query("T", k, usize::MAX, i64::MIN, i64::MAX);
            }
            let end = svc.end_phy_offset();
            for (i, k) in keys.iter().enumerate() {
                svc.put(&req("T", k, Some("u1"), end + 1 + i as i64, T0 + 200_000)).unwrap();
            }
            for k in keys {
                prop_assert!(all(&svc, "T", k).contains(&(end + 1 + keys.iter().position(|x| *x == k).unwrap() as i64)));
            }
            svc.truncate_after(end);
            svc.delete_files_before(end);
            svc.flush().unwrap();
            drop(svc);
            let svc = small(dir.path());
            let _ = svc.query("T", "k0", usize::MAX, i64::MIN, i64::MAX);
        }
    }
}
