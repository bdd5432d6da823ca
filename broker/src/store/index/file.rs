//! One index file: a 40-byte header, `slots` hash-slot heads and `entries` 20-byte entries,
//! mapped with [`MmapRaw`] and read with every position bounds-checked.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::MmapRaw;
use rmq_remoting::util::java_hash_code;

use super::name::parse_file_name;

pub(super) const HEADER_SIZE: usize = 40;
pub(super) const SLOT_SIZE: usize = 4;
pub(super) const ENTRY_SIZE: usize = 20;

pub(super) const BEGIN_TIMESTAMP_POS: usize = 0;
pub(super) const END_TIMESTAMP_POS: usize = 8;
pub(super) const BEGIN_PHY_OFFSET_POS: usize = 16;
pub(super) const END_PHY_OFFSET_POS: usize = 24;
pub(super) const HASH_SLOT_COUNT_POS: usize = 32;
pub(super) const INDEX_COUNT_POS: usize = 36;

/// Entry number 0 is never written; it marks an empty slot and the end of a chain.
pub(super) const INVALID_INDEX: i32 = 0;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Header {
    pub(super) begin_timestamp: i64,
    pub(super) end_timestamp: i64,
    pub(super) begin_phy_offset: i64,
    pub(super) end_phy_offset: i64,
    pub(super) hash_slot_count: i32,
    /// Raw on-disk value; Java treats `<= 0` as 1 (a header that was never flushed).
    pub(super) index_count: i32,
}

impl Header {
    pub(super) fn index_count(&self) -> i32 {
        self.index_count.max(1)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.index_count() <= 1
    }
}

/// RocketMQ's key hash: `abs(String.hashCode())`, with the overflowing `i32::MIN` mapped to 0.
pub(super) fn key_hash(key: &str) -> i32 {
    java_hash_code(key).checked_abs().unwrap_or(0)
}

pub(super) fn build_key(topic: &str, key: &str) -> String {
    let mut s = String::with_capacity(topic.len() + 1 + key.len());
    s.push_str(topic);
    s.push('#');
    s.push_str(key);
    s
}

pub(super) fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

pub(super) fn file_size(slots: u32, entries: u32) -> u64 {
    HEADER_SIZE as u64
        + u64::from(slots) * SLOT_SIZE as u64
        + u64::from(entries) * ENTRY_SIZE as u64
}
pub(super) struct IndexFile {
    pub(super) path: PathBuf,
    /// Creation time encoded in the name, used to keep new names sorting after old ones.
    pub(super) name_millis: Option<i64>,
    pub(super) map: MmapRaw,
    pub(super) slots: u32,
    pub(super) entries: u32,
    pub(super) dirty: AtomicBool,
}

impl IndexFile {
    /// An index file over `map`, named by its path; `dirty`: not yet flushed.
    fn mapped(path: &Path, map: MmapRaw, slots: u32, entries: u32, dirty: bool) -> IndexFile {
        IndexFile {
            path: path.to_path_buf(),
            name_millis: path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_file_name),
            map,
            slots,
            entries,
            dirty: AtomicBool::new(dirty),
        }
    }

    pub(super) fn create(
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
        let f = IndexFile::mapped(path, map, slots, entries, true);
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
    pub(super) fn open(
        path: &Path,
        slots: u32,
        entries: u32,
    ) -> io::Result<Result<IndexFile, String>> {
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
        let f = IndexFile::mapped(path, map, slots, entries, false);
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

    pub(super) fn read<const N: usize>(&self, pos: usize) -> Option<[u8; N]> {
        if pos.checked_add(N)? > self.map.len() {
            return None;
        }
        let mut buf = [0u8; N];
        // SAFETY: in bounds; the caller holds the service lock, so no write is in progress.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(pos), buf.as_mut_ptr(), N) };
        Some(buf)
    }

    pub(super) fn read_i32(&self, pos: usize) -> Option<i32> {
        self.read::<4>(pos).map(i32::from_be_bytes)
    }

    pub(super) fn read_i64(&self, pos: usize) -> Option<i64> {
        self.read::<8>(pos).map(i64::from_be_bytes)
    }

    /// # Safety
    /// The caller holds the service's write lock (or the file is not shared yet).
    pub(super) unsafe fn write(&self, pos: usize, bytes: &[u8]) -> bool {
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

    pub(super) fn header(&self) -> Header {
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
    pub(super) unsafe fn write_header(&self, h: &Header) {
        let mut buf = [0u8; HEADER_SIZE];
        buf[BEGIN_TIMESTAMP_POS..][..8].copy_from_slice(&h.begin_timestamp.to_be_bytes());
        buf[END_TIMESTAMP_POS..][..8].copy_from_slice(&h.end_timestamp.to_be_bytes());
        buf[BEGIN_PHY_OFFSET_POS..][..8].copy_from_slice(&h.begin_phy_offset.to_be_bytes());
        buf[END_PHY_OFFSET_POS..][..8].copy_from_slice(&h.end_phy_offset.to_be_bytes());
        buf[HASH_SLOT_COUNT_POS..][..4].copy_from_slice(&h.hash_slot_count.to_be_bytes());
        buf[INDEX_COUNT_POS..][..4].copy_from_slice(&h.index_count.to_be_bytes());
        self.write(0, &buf);
    }

    pub(super) fn slot_pos(&self, hash: i32) -> usize {
        // `hash` is non-negative and `slots` > 0 (checked by the service).
        HEADER_SIZE + (hash as u32 % self.slots) as usize * SLOT_SIZE
    }

    pub(super) fn entry_pos(&self, index: i32) -> usize {
        HEADER_SIZE + self.slots as usize * SLOT_SIZE + index.max(0) as usize * ENTRY_SIZE
    }

    pub(super) fn is_full(&self) -> bool {
        i64::from(self.header().index_count()) >= i64::from(self.entries)
    }

    /// Appends one entry; `false` if the file is full.
    ///
    /// # Safety
    /// As for [`IndexFile::write`].
    pub(super) unsafe fn put_key(&self, hash: i32, phy_offset: i64, store_timestamp: i64) -> bool {
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
    pub(super) fn select_phy_offsets(
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

    pub(super) fn flush(&self) -> io::Result<()> {
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
pub(super) fn preallocate(file: &File, len: u64) -> io::Result<()> {
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
pub(super) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}
