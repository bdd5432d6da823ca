//! The commit log: every message of every topic, appended to a sequence of mapped files.
//!
//! Offsets are global byte positions. A record that does not fit in the rest of a file is
//! preceded by an end-of-file blank (`[remaining][BLANK_MAGIC_CODE]`) and goes to the next
//! file, which an allocator thread has usually created already, off the append path.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};
use rmq_remoting::message::{
    MessageExt, BLANK_MAGIC_CODE, MESSAGE_MAGIC_CODE_V1, MESSAGE_MAGIC_CODE_V2,
};

use super::mapped_file::{load_dir_checked, MappedFile};

/// How far ahead of the writer pages are mapped, and how often the allocator thread looks:
/// 16 MiB every 20 ms stays ahead of 800 MB/s.
const PREFAULT_AHEAD: usize = 16 << 20;
const PREFAULT_PERIOD: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether mapping pages ahead helps on the filesystem of `dir`: on a local disk it moves the
/// faults off the send path. On FUSE or NFS every page dirtied ahead is one more the daemon or
/// server must take back at unmap (which holds the process's memory-map lock: a FUSE daemon in
/// the same process, as in the fault-injection tests, then deadlocks), for no gain.
fn prefault_pays(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    const NFS_SUPER_MAGIC: i64 = 0x6969;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path and a zeroed struct the call fills in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    let kind = st.f_type as i64;
    !matches!(kind, FUSE_SUPER_MAGIC | NFS_SUPER_MAGIC)
}

/// Space always left for the end-of-file blank.
pub const END_FILE_MIN_BLANK_LENGTH: usize = 8;

pub struct CommitLog {
    dir: PathBuf,
    file_size: usize,
    warm: bool,
    files: RwLock<Vec<Arc<MappedFile>>>,
    /// The next file, created ahead of need by the allocator thread.
    spare: Mutex<Option<Arc<MappedFile>>>,
    alloc_tx: Mutex<Option<Sender<u64>>>,
    max_offset: AtomicU64,
    flushed_offset: AtomicU64,
    /// Store timestamp of the last appended record (for the checkpoint).
    last_store_timestamp: AtomicI64,
    /// Held by a flush and by a cut: a flush that began before a cut cannot move the flushed
    /// offset past it afterwards.
    flush_lock: Mutex<()>,
    /// The last file was short on disk and was extended with zeroes at load.
    extended_on_load: bool,
}

/// What recovery learned from one valid record.
#[derive(Debug, Clone)]
pub struct RecoveredRecord {
    pub offset: u64,
    pub size: usize,
    pub msg: MessageExt,
}

/// Where the writer appends next.
pub struct WriteCursor {
    file: Option<Arc<MappedFile>>,
    pos: usize,
}

impl CommitLog {
    /// Maps the existing files of `dir` (no recovery yet).
    pub fn load(dir: &Path, file_size: usize, warm: bool) -> io::Result<CommitLog> {
        let (files, extended_on_load) = load_dir_checked(dir, file_size)?;
        let max = files
            .last()
            .map(|f| f.from_offset() + f.size() as u64)
            .unwrap_or(0);
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            file_size,
            warm,
            files: RwLock::new(files),
            spare: Mutex::new(None),
            alloc_tx: Mutex::new(None),
            max_offset: AtomicU64::new(max),
            flushed_offset: AtomicU64::new(max),
            last_store_timestamp: AtomicI64::new(0),
            flush_lock: Mutex::new(()),
            extended_on_load,
        })
    }

    /// Whether the last file was short on disk (cut by hand or torn) and extended at load.
    pub fn extended_on_load(&self) -> bool {
        self.extended_on_load
    }

    pub fn file_size(&self) -> usize {
        self.file_size
    }

    pub fn files(&self) -> Vec<Arc<MappedFile>> {
        self.files.read().clone()
    }

    /// First offset still stored.
    pub fn min_offset(&self) -> u64 {
        self.files
            .read()
            .first()
            .map(|f| f.from_offset())
            .unwrap_or(0)
    }

    /// End of the appended data.
    pub fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }

    /// End of the data known to be on disk.
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset.load(Ordering::Acquire)
    }

    pub fn last_store_timestamp(&self) -> i64 {
        self.last_store_timestamp.load(Ordering::Acquire)
    }

    /// Recovery: the store timestamp of the last record found.
    pub fn set_last_store_timestamp(&self, ts: i64) {
        self.last_store_timestamp.fetch_max(ts, Ordering::AcqRel);
    }

    /// The file holding `offset`.
    pub fn file_for(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let files = self.files.read();
        let first = files.first()?;
        if offset < first.from_offset() {
            return None;
        }
        let idx = ((offset - first.from_offset()) / self.file_size as u64) as usize;
        files
            .get(idx)
            .filter(|f| f.from_offset() <= offset)
            .cloned()
    }

    /// `len` bytes at `offset`, zero copy, if they are all written.
    pub fn read(&self, offset: u64, len: usize) -> Option<Bytes> {
        let f = self.file_for(offset)?;
        f.slice((offset - f.from_offset()) as usize, len)
    }

    /// The whole record at `offset`.
    pub fn read_record(&self, offset: u64) -> Option<Bytes> {
        let f = self.file_for(offset)?;
        let pos = (offset - f.from_offset()) as usize;
        let size = f.slice(pos, 4)?;
        let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
        if size <= 0 {
            return None;
        }
        f.slice(pos, size as usize)
    }

    /// The decoded message at `offset`.
    pub fn read_message(&self, offset: u64) -> Option<MessageExt> {
        let mut rec = self.read_record(offset)?;
        MessageExt::decode(&mut rec).ok()
    }

    /// The store timestamp of the record at `offset` (binary searches by time use it).
    pub fn store_timestamp_at(&self, offset: u64) -> Option<i64> {
        let rec = self.read(offset, 80)?;
        let sys_flag = i32::from_be_bytes([rec[36], rec[37], rec[38], rec[39]]);
        let born_host_len = if sys_flag & rmq_remoting::message::sys_flag::BORNHOST_V6 != 0 {
            20
        } else {
            8
        };
        let at = 48 + born_host_len;
        Some(i64::from_be_bytes(rec[at..at + 8].try_into().ok()?))
    }

    /// Starts the allocator thread that creates the next file ahead of need.
    pub fn start_allocator(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let (tx, rx): (Sender<u64>, Receiver<u64>) = crossbeam_channel::unbounded();
        *self.alloc_tx.lock() = Some(tx);
        let log = self.clone();
        std::thread::Builder::new()
            .name("commitlog-alloc".into())
            .spawn(move || {
                let mut prefault = prefault_pays(&log.dir);
                loop {
                    let offset = match rx.recv_timeout(PREFAULT_PERIOD) {
                        Ok(offset) => offset,
                        Err(RecvTimeoutError::Timeout) => {
                            if prefault {
                                prefault = log.prefault();
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    if log.spare.lock().as_ref().map(|f| f.from_offset()) == Some(offset) {
                        continue;
                    }
                    match MappedFile::create(&log.dir, offset, log.file_size, log.warm) {
                        Ok(f) => *log.spare.lock() = Some(Arc::new(f)),
                        Err(e) => tracing::warn!(error = %e, "could not create the next commit log file ahead of need"),
                    }
                }
            })
            .expect("spawn allocator thread")
    }

    /// Maps pages ahead of the writer in the current file and the head of the spare (see
    /// [`MappedFile::prefault`]). Returns false once the kernel says it cannot.
    fn prefault(&self) -> bool {
        let current = self.files.read().last().cloned();
        let spare = self.spare.lock().clone();
        for f in current.iter().chain(spare.iter()) {
            match f.prefault(PREFAULT_AHEAD) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    tracing::info!("this kernel cannot prefault (MADV_POPULATE_WRITE): the writer takes its own page faults");
                    return false;
                }
                Err(e) => tracing::debug!(error = %e, "prefault failed"),
            }
        }
        true
    }

    pub fn stop_allocator(&self) {
        self.alloc_tx.lock().take();
    }

    /// At start: creates the first file if there is none, and asks the allocator for the one
    /// after the last, so the first appends find their files ready.
    pub fn prepare_files(&self) -> io::Result<()> {
        let next = {
            let mut files = self.files.write();
            if files.is_empty() {
                files.push(Arc::new(MappedFile::create(
                    &self.dir,
                    0,
                    self.file_size,
                    self.warm,
                )?));
            }
            files
                .last()
                .map(|f| f.from_offset() + self.file_size as u64)
                .unwrap_or(0)
        };
        if let Some(tx) = self.alloc_tx.lock().as_ref() {
            let _ = tx.send(next);
        }
        Ok(())
    }

    /// Deletes the file created ahead of need, if unused (at shutdown).
    pub fn discard_spare(&self) {
        if let Some(f) = self.spare.lock().take() {
            let _ = f.destroy();
        }
    }

    /// The writer's cursor after recovery: the end of the last file's data.
    pub fn cursor(&self) -> WriteCursor {
        let files = self.files.read();
        match files.last() {
            Some(f) => WriteCursor {
                file: Some(f.clone()),
                pos: f.wrote(),
            },
            None => WriteCursor { file: None, pos: 0 },
        }
    }

    /// A file to hold `len` more bytes at the cursor, rolling to the next file (after writing
    /// the end-of-file blank) when they do not fit. Writer thread only.
    pub fn prepare_append(&self, cursor: &mut WriteCursor, len: usize) -> io::Result<()> {
        if len + END_FILE_MIN_BLANK_LENGTH > self.file_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes cannot fit in a commit log file of {} bytes",
                    self.file_size
                ),
            ));
        }
        let next_from = match &cursor.file {
            Some(_) if cursor.pos + len + END_FILE_MIN_BLANK_LENGTH <= self.file_size => {
                return Ok(())
            }
            Some(_) => self.close_file(cursor),
            None => 0,
        };
        self.open_file(cursor, next_from)
    }

    /// Ends the cursor's file with the end-of-file blank; returns where the next file starts.
    fn close_file(&self, cursor: &WriteCursor) -> u64 {
        let f = cursor.file.as_ref().expect("a current file");
        // A file recovered as full (its blank written before a crash) is closed already.
        if cursor.pos + 8 <= self.file_size {
            let remaining = self.file_size - cursor.pos;
            let mut blank = [0u8; 8];
            blank[..4].copy_from_slice(&(remaining as i32).to_be_bytes());
            blank[4..].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
            f.write_at(cursor.pos, &blank);
        }
        f.publish(self.file_size);
        f.from_offset() + self.file_size as u64
    }

    /// Positions a replica's cursor for a record the master stored at `offset`: the same
    /// place, rolling to the next file where the master did. An offset anywhere else means
    /// the replica diverged.
    pub fn prepare_replica(
        &self,
        cursor: &mut WriteCursor,
        offset: u64,
        len: usize,
    ) -> io::Result<()> {
        let here = self.cursor_offset(cursor);
        match &cursor.file {
            Some(_) if here == offset && cursor.pos + len <= self.file_size => return Ok(()),
            Some(f) if offset == f.from_offset() + self.file_size as u64 && here <= offset => {
                let next = self.close_file(cursor);
                return self.open_file(cursor, next);
            }
            None if offset.is_multiple_of(self.file_size as u64) => {
                return self.open_file(cursor, offset)
            }
            _ => {}
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("replica at commit-log offset {here}, master record at {offset}"),
        ))
    }

    /// The spare the allocator is finishing for `offset`, if it appears within 5 s.
    fn wait_for_spare(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            {
                let mut spare = self.spare.lock();
                if spare.as_ref().map(|f| f.from_offset()) == Some(offset) {
                    return spare.take();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        None
    }

    /// Makes a new file starting at `next_from` the cursor's file.
    fn open_file(&self, cursor: &mut WriteCursor, next_from: u64) -> io::Result<()> {
        let spare = self.spare.lock().take();
        let file = match spare {
            Some(f) if f.from_offset() == next_from => f,
            other => {
                if let Some(stale) = other {
                    let _ = stale.destroy();
                }
                // Never warm here: touching every page would stall every writer behind us.
                match MappedFile::create(&self.dir, next_from, self.file_size, false) {
                    Ok(f) => Arc::new(f),
                    // The allocator is creating this very file right now: take it when done.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        self.wait_for_spare(next_from).ok_or(e)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        self.files.write().push(file.clone());
        self.max_offset.store(next_from, Ordering::Release);
        cursor.file = Some(file);
        cursor.pos = 0;
        if let Some(tx) = self.alloc_tx.lock().as_ref() {
            let _ = tx.send(next_from + self.file_size as u64);
        }
        Ok(())
    }

    /// Copies `data` at the cursor (after `prepare_append`) and returns its offset.
    pub fn append(&self, cursor: &mut WriteCursor, data: &[u8]) -> u64 {
        let f = cursor.file.as_ref().expect("prepare_append first");
        f.write_at(cursor.pos, data);
        let offset = f.from_offset() + cursor.pos as u64;
        cursor.pos += data.len();
        offset
    }

    /// The offset the next append lands at, if it fits in the current file.
    pub fn cursor_offset(&self, cursor: &WriteCursor) -> u64 {
        cursor
            .file
            .as_ref()
            .map(|f| f.from_offset() + cursor.pos as u64)
            .unwrap_or(0)
    }

    /// Makes appended bytes visible. Writer thread only.
    pub fn publish(&self, cursor: &WriteCursor, last_store_timestamp: i64) {
        if let Some(f) = &cursor.file {
            f.publish(cursor.pos);
            self.max_offset
                .store(f.from_offset() + cursor.pos as u64, Ordering::Release);
        }
        self.last_store_timestamp
            .store(last_store_timestamp, Ordering::Release);
    }

    /// Flushes every file between the flushed and the written offset; returns the new
    /// flushed offset. `least_pages` > 0 skips a file with fewer dirty pages.
    pub fn flush(&self, least_pages: usize) -> io::Result<u64> {
        let _flushing = self.flush_lock.lock();
        let target = self.max_offset();
        let from = self.flushed_offset();
        if target <= from {
            return Ok(from);
        }
        let files: Vec<Arc<MappedFile>> = self
            .files
            .read()
            .iter()
            .filter(|f| f.from_offset() + f.size() as u64 > from && f.from_offset() < target)
            .cloned()
            .collect();
        let mut flushed = from;
        for f in files {
            // Where this file is flushed to now. Appends may have gone on meanwhile: what was
            // flushed still counts (it did not, once, and under steady load the flushed offset
            // then stood still at the start of the current file until the load paused).
            let pos = f.flush(least_pages)?;
            let end = f.from_offset() + pos as u64;
            flushed = end.min(target).max(flushed);
            if pos < f.size() {
                break; // not full, or skipped (too few pages): later files wait
            }
        }
        self.flushed_offset.fetch_max(flushed, Ordering::AcqRel);
        Ok(self.flushed_offset())
    }

    /// Recovery: cuts everything from `end` on (a torn or corrupt tail) and positions the
    /// writer there.
    /// `live`: readers may hold slices (a running replica), so the file holding `end` is
    /// replaced by a cut copy instead of zeroed in place.
    pub fn truncate_to(&self, end: u64, live: bool) -> io::Result<()> {
        let _flushing = self.flush_lock.lock();
        let mut files = self.files.write();
        while let Some(last) = files.last() {
            if last.from_offset() >= end
                && !(end == 0 && files.len() == 1 && last.from_offset() == 0)
            {
                tracing::warn!(file = %last.path().display(), "deleting commit log file past the valid end");
                last.destroy()?;
                files.pop();
            } else {
                break;
            }
        }
        for f in files.iter_mut() {
            let file_end = f.from_offset() + f.size() as u64;
            let pos = end.saturating_sub(f.from_offset()) as usize;
            if end >= file_end {
                f.set_positions(f.size());
            } else if live && f.wrote() > pos {
                *f = Arc::new(f.cut_copy(pos)?);
            } else {
                f.truncate_to(pos)?;
            }
        }
        self.max_offset.store(end, Ordering::Release);
        self.flushed_offset.store(end, Ordering::Release);
        Ok(())
    }

    /// Recovery: records from `offset` on were found in the page cache after a crash and may
    /// not be on disk; the flusher writes them again before the checkpoint vouches for them.
    pub fn mark_unflushed_from(&self, offset: u64) {
        let _flushing = self.flush_lock.lock();
        for f in self.files.read().iter() {
            let file_end = f.from_offset() + f.size() as u64;
            if file_end > offset {
                f.mark_unflushed_from(offset.saturating_sub(f.from_offset()) as usize);
            }
        }
        self.flushed_offset.fetch_min(offset, Ordering::AcqRel);
    }

    /// The store timestamp of the first record of file `idx` (recovery picks its start by it).
    pub fn first_store_timestamp(&self, idx: usize) -> Option<i64> {
        let f = self.files.read().get(idx)?.clone();
        let magic = f.read_i32(4)?;
        if magic != MESSAGE_MAGIC_CODE_V1 && magic != MESSAGE_MAGIC_CODE_V2 {
            return None;
        }
        let sys_flag = f.read_i32(36)?;
        let born = if sys_flag & rmq_remoting::message::sys_flag::BORNHOST_V6 != 0 {
            20
        } else {
            8
        };
        f.read_i64(48 + born)
    }

    /// Retention: deletes up to `max` files (never the last) whose last write is older than
    /// `expire_ms` ago, or regardless of age when `force`. Returns how many.
    pub fn delete_expired(&self, now_ms: i64, expire_ms: i64, force: bool, max: usize) -> usize {
        let candidates: Vec<Arc<MappedFile>> = {
            let files = self.files.read();
            let n = files.len();
            files.iter().take(n.saturating_sub(1)).cloned().collect()
        };
        let mut deleted = 0;
        for f in candidates {
            if deleted >= max {
                break;
            }
            if !force && f.last_modified_ms() + expire_ms > now_ms {
                break; // files are in write order: the rest are newer
            }
            if let Err(e) = f.destroy() {
                tracing::error!(error = %e, "cannot delete expired commit log file");
                break;
            }
            tracing::info!(file = %f.path().display(), force, "deleted commit log file");
            self.files.write().retain(|x| !Arc::ptr_eq(x, &f));
            deleted += 1;
        }
        deleted
    }
}
