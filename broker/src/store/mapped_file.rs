//! One memory-mapped, preallocated file of the commit log or a consume queue.
//!
//! A single writer appends at `wrote`; readers only see bytes below it, so a published range
//! is never written again and can be handed out as `Bytes` that keep the mapping alive (zero
//! copy, even after the file is deleted). Files are preallocated with `posix_fallocate`:
//! running out of disk fails file creation cleanly instead of raising SIGBUS on a write.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

/// A file name of 20 digits: the offset of the file's first byte in its log.
pub fn offset_to_file_name(offset: u64) -> String {
    format!("{offset:020}")
}

pub struct MappedFile {
    path: PathBuf,
    from_offset: u64,
    size: usize,
    map: Arc<MmapRaw>,
    file: File,
    wrote: AtomicUsize,
    flushed: AtomicUsize,
    /// Below this, the pages have been write-faulted ahead of the writer (see `prefault`).
    prefaulted: AtomicUsize,
    deleted: AtomicBool,
}

/// Granularity of prefaulting: a multiple of every page size.
const PREFAULT_CHUNK: usize = 1 << 20;

/// Keeps a mapping alive for as long as a slice of it is in use.
struct MapSlice {
    map: Arc<MmapRaw>,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range lies inside the mapping (checked when the slice was made) and below
        // the file's write position, which the single writer never rewrites while readers run.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.offset), self.len) }
    }
}

impl MappedFile {
    /// Creates `dir/<from_offset>` of `size` bytes, preallocated, and maps it.
    pub fn create(dir: &Path, from_offset: u64, size: usize, warm: bool) -> io::Result<MappedFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(offset_to_file_name(from_offset));
        let file = Self::allocate(&path, size, warm, &[])?;
        Self::map(path, file, from_offset, size, 0)
    }

    /// A new file at `path` of `size` bytes starting with `prefix`, zeroes after it.
    fn allocate(path: &Path, size: usize, warm: bool, prefix: &[u8]) -> io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", path.display())))?;
        // SAFETY: plain syscall on a file we own.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
        if rc != 0 {
            let _ = std::fs::remove_file(path);
            return Err(io::Error::new(
                io::Error::from_raw_os_error(rc).kind(),
                format!(
                    "cannot allocate {size} bytes for {}: {}",
                    path.display(),
                    io::Error::from_raw_os_error(rc)
                ),
            ));
        }
        use std::os::unix::fs::FileExt;
        let written = (|| -> io::Result<()> {
            file.write_all_at(prefix, 0)?;
            if warm {
                // Write real zeroes: the extents become "written", so a later flush of data
                // written through the mapping has no metadata to commit, and the pages are in
                // the page cache already.
                let zeros = vec![0u8; 1 << 20];
                let mut off = prefix.len();
                while off < size {
                    let n = zeros.len().min(size - off);
                    file.write_all_at(&zeros[..n], off as u64)?;
                    off += n;
                }
            }
            if warm || !prefix.is_empty() {
                file.sync_data()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(path);
            return Err(io::Error::new(
                e.kind(),
                format!("write {}: {e}", path.display()),
            ));
        }
        Ok(file)
    }

    fn map(
        path: PathBuf,
        file: File,
        from_offset: u64,
        size: usize,
        pos: usize,
    ) -> io::Result<MappedFile> {
        let map = MmapOptions::new().len(size).map_raw(&file)?;
        Ok(MappedFile {
            path,
            from_offset,
            size,
            map: Arc::new(map),
            file,
            wrote: AtomicUsize::new(pos),
            flushed: AtomicUsize::new(pos),
            prefaulted: AtomicUsize::new(0),
            deleted: AtomicBool::new(false),
        })
    }

    /// A running cut at `pos`: a new file at the same path with the bytes below `pos` and
    /// zeroes above, replacing this one on disk. Published bytes are never rewritten, so
    /// readers holding slices of this file keep seeing what they were given; the caller
    /// swaps the new file in for new readers. This file is left retired (its `destroy` does
    /// nothing: the path belongs to the new one).
    pub fn cut_copy(&self, pos: usize) -> io::Result<MappedFile> {
        let pos = pos.min(self.wrote());
        let tmp = self.path.with_extension("cut");
        let _ = std::fs::remove_file(&tmp);
        // SAFETY: below `wrote`, published and never rewritten.
        let prefix = unsafe { std::slice::from_raw_parts(self.map.as_ptr(), pos) };
        let file = Self::allocate(&tmp, self.size, true, prefix)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            io::Error::new(e.kind(), format!("replace {}: {e}", self.path.display()))
        })?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.deleted.store(true, Ordering::Release);
        Self::map(self.path.clone(), file, self.from_offset, self.size, pos)
    }

    /// Maps an existing file. Its write position starts at the end; recovery moves it back.
    pub fn open(path: &Path, size: usize) -> io::Result<MappedFile> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let from_offset: u64 = name.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not named by an offset", path.display()),
            )
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
        let len = file.metadata()?.len() as usize;
        if len != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has {len} bytes, expected {size}", path.display()),
            ));
        }
        let map = MmapOptions::new().len(size).map_raw(&file)?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            from_offset,
            size,
            map: Arc::new(map),
            file,
            wrote: AtomicUsize::new(size),
            flushed: AtomicUsize::new(size),
            prefaulted: AtomicUsize::new(0),
            deleted: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn from_offset(&self) -> u64 {
        self.from_offset
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn wrote(&self) -> usize {
        self.wrote.load(Ordering::Acquire)
    }

    pub fn flushed(&self) -> usize {
        self.flushed.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        self.wrote() >= self.size
    }

    pub fn remaining(&self) -> usize {
        self.size - self.wrote()
    }

    /// Copies `data` to `pos` without publishing it. Only the single writer calls this, and
    /// only at or above the write position.
    pub fn write_at(&self, pos: usize, data: &[u8]) {
        assert!(
            pos + data.len() <= self.size,
            "write past the end of {}",
            self.path.display()
        );
        debug_assert!(pos >= self.wrote() || self.wrote() == self.size);
        // SAFETY: in bounds (asserted), and no reader looks at bytes at or above `wrote`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(pos),
                data.len(),
            );
        }
    }

    /// Makes everything below `pos` visible to readers.
    pub fn publish(&self, pos: usize) {
        self.wrote.store(pos.min(self.size), Ordering::Release);
    }

    /// A zero-copy slice of published bytes.
    pub fn slice(&self, pos: usize, len: usize) -> Option<Bytes> {
        if pos.checked_add(len)? > self.wrote() {
            return None;
        }
        Some(Bytes::from_owner(MapSlice {
            map: self.map.clone(),
            offset: pos,
            len,
        }))
    }

    /// Reads bytes at any position (recovery and tests; not for data being written).
    pub fn read_raw(&self, pos: usize, out: &mut [u8]) -> bool {
        if pos
            .checked_add(out.len())
            .map(|e| e > self.size)
            .unwrap_or(true)
        {
            return false;
        }
        // SAFETY: in bounds; used when no writer runs (recovery) or below `wrote`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.as_ptr().add(pos), out.as_mut_ptr(), out.len())
        };
        true
    }

    pub fn read_i32(&self, pos: usize) -> Option<i32> {
        let mut b = [0u8; 4];
        self.read_raw(pos, &mut b).then(|| i32::from_be_bytes(b))
    }

    pub fn read_i64(&self, pos: usize) -> Option<i64> {
        let mut b = [0u8; 8];
        self.read_raw(pos, &mut b).then(|| i64::from_be_bytes(b))
    }

    /// Dirty pages between the flushed and written positions.
    pub fn dirty_pages(&self) -> usize {
        let (w, f) = (self.wrote(), self.flushed());
        w.saturating_sub(f).div_ceil(4096)
    }

    /// Takes the write faults of the pages up to `ahead` bytes past the write position now,
    /// on the calling thread, so that the writer finds them mapped writable. On ext4 the first
    /// write to a page of a preallocated file allocates and zeroes a page-cache page and opens
    /// a journal handle, which waits while the journal commits (every flush's fsync): that
    /// cost a p999 of ~24 ms on 1 KiB sends, and a p99 of 3 ms, when it ran on the send path.
    /// `MADV_POPULATE_WRITE` (Linux 5.14) only maps the pages; it writes nothing, so it never
    /// races with the writer. Returns whether anything was done; `Unsupported` on older kernels.
    pub fn prefault(&self, ahead: usize) -> io::Result<bool> {
        let wrote = self.wrote();
        let upto = wrote
            .saturating_add(ahead)
            .min(self.size)
            .next_multiple_of(PREFAULT_CHUNK)
            .min(self.size);
        let mut from = self
            .prefaulted
            .load(Ordering::Acquire)
            .max(wrote - wrote % PREFAULT_CHUNK);
        if from >= upto {
            return Ok(false);
        }
        while from < upto {
            let len = PREFAULT_CHUNK.min(upto - from);
            if let Err(e) = self
                .map
                .advise_range(memmap2::Advice::PopulateWrite, from, len)
            {
                return Err(if e.raw_os_error() == Some(libc::EINVAL) {
                    io::Error::new(io::ErrorKind::Unsupported, e)
                } else {
                    io::Error::new(e.kind(), format!("prefault {}: {e}", self.path.display()))
                });
            }
            from += len;
            self.prefaulted.store(from, Ordering::Release);
        }
        Ok(true)
    }

    /// `msync`s everything written and not yet flushed, if at least `least_pages` are dirty
    /// (0: any). Returns the flushed position.
    ///
    /// With `least_pages` > 0 (the periodic flush of ASYNC_FLUSH) the page the writer is in is
    /// left for later: writing back a page write-protects it, and the writer's next record in
    /// it would take the fault `prefault` keeps off the send path.
    pub fn flush(&self, least_pages: usize) -> io::Result<usize> {
        let (mut w, f) = (self.wrote(), self.flushed());
        if least_pages > 0 && w < self.size {
            w -= w % 4096;
        }
        if w <= f || (least_pages > 0 && self.dirty_pages() < least_pages && w < self.size) {
            return Ok(f);
        }
        self.map
            .flush_range(f, w - f)
            .map_err(|e| io::Error::new(e.kind(), format!("msync {}: {e}", self.path.display())))?;
        self.flushed.fetch_max(w, Ordering::AcqRel);
        Ok(w)
    }

    /// Recovery: sets the write position, zeroes everything after it (a torn tail) and
    /// makes the zeroes durable. In place: only while no reader runs (a running store cuts
    /// with [`MappedFile::cut_copy`]).
    pub fn truncate_to(&self, pos: usize) -> io::Result<()> {
        let pos = pos.min(self.size);
        let old = self.wrote.load(Ordering::Acquire).max(pos);
        if old > pos {
            self.zero_from(pos)?;
        }
        self.wrote.store(pos, Ordering::Release);
        self.flushed.store(pos, Ordering::Release);
        Ok(())
    }

    /// Zeroes everything from `pos` to the end, durably. The whole pages are handed to the
    /// file system (`FALLOC_FL_ZERO_RANGE`: the blocks stay allocated, only marked unwritten,
    /// and the mapping reads zeroes), which costs the same for a megabyte or a gigabyte;
    /// writing zeroes through the mapping would dirty and write back every page up to the end
    /// of the file. Where the file system cannot (tmpfs, FUSE), the zeroes are written.
    fn zero_from(&self, pos: usize) -> io::Result<()> {
        const PAGE: usize = 4096;
        let aligned = pos.next_multiple_of(PAGE).min(self.size);
        if aligned > pos {
            // SAFETY: in bounds; no reader or writer runs during recovery.
            unsafe { std::ptr::write_bytes(self.map.as_mut_ptr().add(pos), 0, aligned - pos) };
            self.map.flush_range(pos, aligned - pos)?;
        }
        if aligned == self.size {
            return Ok(());
        }
        let len = self.size - aligned;
        // SAFETY: plain syscall on a file we own.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                aligned as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc == 0 {
            return self.file.sync_all().map_err(|e| {
                io::Error::new(e.kind(), format!("fsync {}: {e}", self.path.display()))
            });
        }
        // SAFETY: in bounds; no reader or writer runs during recovery.
        unsafe { std::ptr::write_bytes(self.map.as_mut_ptr().add(aligned), 0, len) };
        self.map.flush_range(aligned, len)
    }

    /// Recovery: bytes from `pos` on may not be on disk yet (they were found in the page
    /// cache after a crash), so the next flush writes them again.
    pub fn mark_unflushed_from(&self, pos: usize) {
        self.flushed.fetch_min(pos, Ordering::AcqRel);
    }

    /// Recovery: the write position found by scanning, without touching bytes.
    pub fn set_positions(&self, pos: usize) {
        self.wrote.store(pos.min(self.size), Ordering::Release);
        self.flushed.store(pos.min(self.size), Ordering::Release);
    }

    /// Seconds-resolution time of the last write, from the file system.
    pub fn last_modified_ms(&self) -> i64 {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Removes the file from disk; readers holding slices keep the mapping until they drop.
    pub fn destroy(&self) -> io::Result<()> {
        if self.deleted.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        std::fs::remove_file(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("delete {}: {e}", self.path.display())))
    }
}

/// Maps every file of `dir` named by an offset, sorted; files of the wrong size are errors.
pub fn load_dir(dir: &Path, size: usize) -> io::Result<Vec<Arc<MappedFile>>> {
    load_dir_checked(dir, size).map(|(files, _)| files)
}

/// [`load_dir`], and whether the last file was short (cut by hand, or torn at the file-system
/// level) and had to be extended with zeroes.
pub fn load_dir_checked(dir: &Path, size: usize) -> io::Result<(Vec<Arc<MappedFile>>, bool)> {
    let mut files = Vec::new();
    let mut extended = false;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((files, extended)),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("read {}: {e}", dir.display()),
            ))
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .unwrap_or(false)
        })
        .collect();
    paths.sort();
    // The last file may have been cut short (a torn write at the file-system level, or by
    // hand): grow it back with zeroes so recovery finds the end of its valid records.
    if let Some(last) = paths.last() {
        let len = std::fs::metadata(last)?.len();
        if len > 0 && len < size as u64 {
            tracing::warn!(file = %last.display(), len, expected = size, "last file is short: extending it; recovery cuts at its last valid entry");
            extended = true;
            let f = OpenOptions::new().write(true).open(last)?;
            f.set_len(size as u64)?;
            // SAFETY: plain syscall on a file we own.
            let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, size as libc::off_t) };
            if rc != 0 {
                return Err(io::Error::new(
                    io::Error::from_raw_os_error(rc).kind(),
                    format!(
                        "cannot extend {}: {}",
                        last.display(),
                        io::Error::from_raw_os_error(rc)
                    ),
                ));
            }
        }
    }
    for p in paths {
        // A crash between creating a file and allocating it leaves it empty: drop it.
        if std::fs::metadata(&p).map(|m| m.len() == 0).unwrap_or(false) {
            tracing::warn!(file = %p.display(), "removing an empty file left by an interrupted creation");
            std::fs::remove_file(&p)?;
            continue;
        }
        files.push(Arc::new(MappedFile::open(&p, size)?));
    }
    Ok((files, extended))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefault_maps_ahead_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let f = MappedFile::create(dir.path(), 0, 4 * PREFAULT_CHUNK, false).unwrap();
        f.write_at(0, b"record");
        f.publish(6);
        match f.prefault(PREFAULT_CHUNK) {
            // Up to the chunk after the one holding the write position, never past the file.
            Ok(did) => {
                assert!(did);
                assert_eq!(f.prefaulted.load(Ordering::Acquire), 2 * PREFAULT_CHUNK);
                assert!(!f.prefault(PREFAULT_CHUNK).unwrap(), "nothing new to map");
                assert!(f.prefault(usize::MAX).unwrap());
                assert_eq!(f.prefaulted.load(Ordering::Acquire), 4 * PREFAULT_CHUNK);
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}"),
        }
        // Mapping pages wrote nothing: published bytes intact, the rest still zero.
        assert_eq!(&f.slice(0, 6).unwrap()[..], b"record");
        let all = unsafe { std::slice::from_raw_parts(f.map.as_ptr(), f.size) };
        assert!(all[6..].iter().all(|&b| b == 0));
    }

    #[test]
    fn periodic_flush_leaves_the_page_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let f = MappedFile::create(dir.path(), 0, 1 << 20, false).unwrap();
        f.write_at(0, &[7u8; 10_000]);
        f.publish(10_000);
        // Periodic (least pages > 0): whole pages only.
        assert_eq!(f.flush(1).unwrap(), 8192);
        // A full flush (SYNC_FLUSH, shutdown, the thorough pass) takes everything.
        assert_eq!(f.flush(0).unwrap(), 10_000);
    }
}
