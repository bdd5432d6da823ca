//! A fault-injecting FUSE file system for storage tests: a pass-through to a backing directory
//! that behaves like a disk with a volatile write cache, can lose power, and can fail.
//!
//! The device mapper (dm-flakey, dm-error) is not in the kernels the tests run on; FUSE is. So
//! the "disk" is a daemon thread of the test process, mounted with [`fuser`]'s pure-Rust mount
//! (as root, no libfuse and no `fusermount`).
//!
//! # What it models
//!
//! * **Volatile write cache.** Data the kernel writes to the file system (FUSE WRITE: a
//!   `write(2)`, or the write-back of dirty mmap pages) is kept in the daemon's memory, per
//!   file, in 4 KiB pages. Only an FSYNC of that file (`fsync`, `fdatasync`, or `msync(MS_SYNC)`,
//!   which writes the dirty pages back and then sends FSYNC) applies it to the backing file.
//!   Closing a file (FUSE FLUSH) is not a sync point.
//! * **Power cut** ([`FaultFs::power_cut`]): every unsynced page in the daemon is dropped and the
//!   FUSE connection is aborted, so the kernel's own dirty pages can never reach the daemon
//!   either; the mount is then detached. What the backing directory holds afterwards is what a
//!   machine would find on its disk after losing power. (A SIGKILL alone keeps the page cache,
//!   so it proves nothing about fsync.) [`FaultFs::remount`] mounts the backing directory again.
//! * **Clean unmount** ([`FaultFs::unmount`]): the kernel writes its dirty pages back, and the
//!   daemon then applies its whole cache, as a disk flushes its cache at a clean power-off.
//! * **Metadata is durable at once**: create, mkdir, unlink, rename, truncate, `fallocate`, chmod
//!   go straight to the backing directory, and `fsync` of a directory is a no-op. That is
//!   *stronger* than ext4's ordered mode (where a new file's directory entry can vanish unless
//!   its directory is fsynced): these tests do not check directory-fsync discipline. File
//!   *size* grown by writes is data, though: an unsynced append is lost with its data.
//! * **Faults**, switched at run time through [`Faults`] (shared atomics), optionally only for
//!   paths containing a pattern (`commitlog/`):
//!   - FSYNC fails with EIO, once, N times or always. The failed file's unsynced pages are
//!     dropped: the write to the medium failed, and the kernel has already marked its pages
//!     clean, so (as on a real disk after a write-back error) the data is gone while the page
//!     cache may still show it. A later FSYNC succeeds if the fault is off.
//!   - WRITE fails with EIO (once, N times, always). For mmap write-back the kernel records the
//!     error, reports it to the next `msync`/`fsync` of the file once, and keeps the pages
//!     clean: the data never reaches the disk.
//!   - A disk that fills up ([`Faults::limit_space`]): every byte written (and every byte a
//!     `fallocate` grows a file by) takes space, as on a thin-provisioned or copy-on-write
//!     disk, so even a preallocated file can hit ENOSPC mid-file; `statfs` reports the same
//!     total and free space.
//!
//! # What it does not model
//!
//! Torn pages or sectors (a page is applied whole), reordering of writes inside one fsync,
//! metadata loss, latency, read errors, and the kernel's own write-back timing (dirty pages
//! reach the daemon when the kernel decides; they still need an FSYNC to be durable). The
//! backing files are not fsynced themselves: the host never loses power, so its page cache is as
//! good as the platter here, and syncing would only slow the tests.
//!
//! `flock` is left to the kernel (the daemon does not ask for FUSE lock support), which then
//! keeps the locks itself: correct between processes of this machine, which is all a test needs.
//! Writable shared mmaps work: no `direct_io`, pages stay cached (`FOPEN_KEEP_CACHE`).

mod daemon;

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use daemon::{Fs, State};

/// The daemon caches in pages of this size.
const PAGE: u64 = 4096;

/// Whether FUSE can be used here at all. Tests skip only when this is false: with `/dev/fuse`
/// present (and root), a mount that fails is a failure.
pub fn available() -> bool {
    Path::new("/dev/fuse").exists()
}

/// How many times a fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    Once,
    N(u32),
    Always,
}

/// Remaining failures of one switch; `u32::MAX` is "always".
#[derive(Default)]
struct Switch(AtomicU32);

impl Switch {
    fn set(&self, t: Option<Times>) {
        let v = match t {
            None => 0,
            Some(Times::Once) => 1,
            Some(Times::N(n)) => n.min(u32::MAX - 1),
            Some(Times::Always) => u32::MAX,
        };
        self.0.store(v, Ordering::SeqCst);
    }

    /// Whether this call fails (and counts it down).
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| match v {
                0 => None,
                u32::MAX => Some(u32::MAX),
                v => Some(v - 1),
            })
            .is_ok()
    }
}

/// What the file system has done so far: lets a test check that a fault really fired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub bytes_synced: u64,
    pub fsyncs_failed: u64,
    pub writes_failed_eio: u64,
    /// WRITEs and `fallocate`s refused for lack of space.
    pub enospc: u64,
    /// Unsynced bytes dropped by failed fsyncs and power cuts.
    pub bytes_dropped: u64,
}

/// The fault switches of one mount, shared with the test.
#[derive(Default)]
pub struct Faults {
    fsync_eio: Switch,
    write_eio: Switch,
    /// (total, free) bytes when the disk is limited.
    space: Mutex<Option<(u64, u64)>>,
    pattern: Mutex<Option<String>>,
    writes: AtomicU64,
    bytes_written: AtomicU64,
    fsyncs: AtomicU64,
    bytes_synced: AtomicU64,
    fsyncs_failed: AtomicU64,
    writes_failed_eio: AtomicU64,
    enospc: AtomicU64,
    bytes_dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the daemon.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    /// FSYNC returns EIO (`None`: never).
    pub fn fail_fsync(&self, t: Option<Times>) {
        self.fsync_eio.set(t);
    }

    /// WRITE returns EIO (`None`: never).
    pub fn fail_writes(&self, t: Option<Times>) {
        self.write_eio.set(t);
    }

    /// A disk of `total` bytes with `free` left: writes take space from `free` and fail with
    /// ENOSPC once it would go below zero. `None`: the backing file system's own figures.
    pub fn limit_space(&self, space: Option<(u64, u64)>) {
        *lock(&self.space) = space;
    }

    /// Faults hit only files whose path (relative to the mount) contains `pattern`.
    pub fn only_paths(&self, pattern: Option<&str>) {
        *lock(&self.pattern) = pattern.map(String::from);
    }

    /// Every fault off (counters stay).
    pub fn heal(&self) {
        self.fail_fsync(None);
        self.fail_writes(None);
        self.limit_space(None);
        self.only_paths(None);
    }

    pub fn stats(&self) -> FaultStats {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultStats {
            writes: l(&self.writes),
            bytes_written: l(&self.bytes_written),
            fsyncs: l(&self.fsyncs),
            bytes_synced: l(&self.bytes_synced),
            fsyncs_failed: l(&self.fsyncs_failed),
            writes_failed_eio: l(&self.writes_failed_eio),
            enospc: l(&self.enospc),
            bytes_dropped: l(&self.bytes_dropped),
        }
    }

    fn matches(&self, path: &Path) -> bool {
        match &*lock(&self.pattern) {
            None => true,
            Some(p) => path.to_string_lossy().contains(p.as_str()),
        }
    }

    /// Takes `n` bytes of space; false (ENOSPC) if they are not there.
    fn take_space(&self, n: u64) -> bool {
        match &mut *lock(&self.space) {
            None => true,
            Some((_, free)) if *free >= n => {
                *free -= n;
                true
            }
            Some(_) => false,
        }
    }
}

/// A live mount: the daemon's session and its state.
struct Mounted {
    session: fuser::BackgroundSession,
    state: Arc<Mutex<State>>,
    /// The connection's name under `/sys/fs/fuse/connections`.
    conn: u64,
}

/// The fault file system over a fresh temporary directory: `backing()` is the "disk", `path()`
/// the mount point. Dropping it cuts the power (never leaves a mount behind, even when a test
/// panics).
pub struct FaultFs {
    dir: tempfile::TempDir,
    faults: Arc<Faults>,
    mounted: Option<Mounted>,
}

impl FaultFs {
    /// Mounts a new, empty fault file system under /tmp.
    pub fn new() -> io::Result<FaultFs> {
        let dir = tempfile::Builder::new()
            .prefix("rmq-faultfs-")
            .tempdir_in("/tmp")?;
        std::fs::create_dir(dir.path().join("disk"))?;
        std::fs::create_dir(dir.path().join("mnt"))?;
        let mut fs = FaultFs {
            dir,
            faults: Arc::new(Faults::default()),
            mounted: None,
        };
        fs.remount()?;
        Ok(fs)
    }

    /// The mount point.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// The backing directory: what is on the "disk".
    pub fn backing(&self) -> PathBuf {
        self.dir.path().join("disk")
    }

    /// The fault switches of the current mount.
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    pub fn is_mounted(&self) -> bool {
        self.mounted.is_some()
    }

    /// Mounts the backing directory again (after a power cut or unmount), healthy: new
    /// switches, no faults, an empty cache.
    pub fn remount(&mut self) -> io::Result<()> {
        if self.mounted.is_some() {
            return Err(io::Error::other("the fault file system is mounted already"));
        }
        self.faults = Arc::new(Faults::default());
        let state = Arc::new(Mutex::new(State::new(self.backing())));
        let fs = Fs::new(state.clone(), self.faults.clone());
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("rmq-faultfs".into())];
        let mnt = self.path();
        let session = fuser::spawn_mount(fs, &mnt, &config).map_err(|e| {
            io::Error::new(e.kind(), format!("mount FUSE at {}: {e}", mnt.display()))
        })?;
        // The connection is named by the kernel's device number of the mount.
        let dev = std::fs::metadata(&mnt)?.dev();
        let conn = (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev));
        self.mounted = Some(Mounted {
            session,
            state,
            conn,
        });
        Ok(())
    }

    /// Cuts the power: every unsynced byte in the daemon is dropped, the FUSE connection is
    /// aborted (the kernel's dirty pages can no longer reach the daemon, and every request on
    /// the mount fails from now on), and the mount is detached. Kill the processes using the
    /// mount after this, not before: their exit would write dirty pages back first (harmless,
    /// they would stay unsynced, but the cut is meant to be instantaneous).
    pub fn power_cut(&mut self) {
        let Some(m) = self.mounted.take() else {
            return;
        };
        {
            let dropped = lock(&m.state).cut_power();
            self.faults
                .bytes_dropped
                .fetch_add(dropped, Ordering::SeqCst);
        }
        abort_connection(&self.path(), m.conn);
        detach(&self.path());
        finish(m.session);
    }

    /// A clean unmount: the kernel writes its dirty pages back, then the daemon applies its
    /// whole cache (a disk flushing its cache at a clean power-off). Fails (and stays mounted)
    /// if files on the mount are still open or mapped.
    pub fn unmount(&mut self) -> io::Result<()> {
        let Some(m) = self.mounted.take() else {
            return Ok(());
        };
        let c = std::ffi::CString::new(self.path().as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: plain syscall with a NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            self.mounted = Some(m);
            return Err(io::Error::new(
                e.kind(),
                format!("unmount {}: {e}", self.path().display()),
            ));
        }
        finish(m.session);
        let applied = lock(&m.state).apply_all()?;
        self.faults
            .bytes_synced
            .fetch_add(applied, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        self.power_cut();
    }
}

/// Aborts the FUSE connection through fusectl (mounting it if needed), or failing that with a
/// forced unmount, which aborts it too.
fn abort_connection(mnt: &Path, conn: u64) {
    let ctl = Path::new("/sys/fs/fuse/connections");
    let abort = ctl.join(conn.to_string()).join("abort");
    if !abort.exists() {
        let mounted = std::fs::read_to_string("/proc/mounts")
            .map(|m| m.lines().any(|l| l.contains(" /sys/fs/fuse/connections ")))
            .unwrap_or(false);
        if !mounted {
            // SAFETY: plain syscall with NUL-terminated strings.
            unsafe {
                libc::mount(
                    c"fusectl".as_ptr(),
                    c"/sys/fs/fuse/connections".as_ptr(),
                    c"fusectl".as_ptr(),
                    0,
                    std::ptr::null(),
                );
            }
        }
    }
    if std::fs::write(&abort, "1").is_ok() {
        return;
    }
    let c = std::ffi::CString::new(mnt.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: plain syscall with a NUL-terminated path. MNT_FORCE aborts a FUSE connection
    // before anything else, even when the unmount itself then fails as busy.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_FORCE) };
}

/// Detaches the mount point (lazily: processes still holding files see errors, not the disk).
fn detach(mnt: &Path) {
    let c = std::ffi::CString::new(mnt.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: plain syscall with a NUL-terminated path; fails harmlessly if not mounted.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// Waits (bounded) for the daemon's threads to see the connection end.
fn finish(session: fuser::BackgroundSession) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.guard.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if session.guard.is_finished() {
        let _ = session.join();
    } else {
        // Never hang a test on the daemon: leave its thread behind.
        eprintln!("faultfs: the FUSE session did not end within 10 s; leaving it");
        std::mem::forget(session);
    }
}
