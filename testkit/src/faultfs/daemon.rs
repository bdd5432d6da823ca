//! The FUSE daemon of the fault file system: a pass-through to the backing directory whose
//! writes wait in a per-file page cache until an fsync (see the parent module for the model).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::{lock, Faults, PAGE};

/// Nothing changes the backing directory behind the kernel's back while mounted.
const TTL: Duration = Duration::from_secs(1);

/// One file or directory, by inode number. Nodes are never forgotten while mounted (test mounts
/// are short-lived), so an inode number is never reused.
struct Node {
    /// Relative to the backing root; meaningless once `unlinked`.
    path: PathBuf,
    unlinked: bool,
    /// The backing file, open for as long as the mount lives, so an unlinked file that is
    /// still open or mapped keeps its data.
    file: Option<File>,
    /// Written and not yet synced: the disk's volatile cache.
    cache: BTreeMap<u64, Box<[u8]>>,
    /// End of the furthest cached write (the file's size if that is beyond the backing file).
    cache_end: u64,
}

impl Node {
    fn cached_bytes(&self) -> u64 {
        self.cache.len() as u64 * PAGE
    }

    fn drop_cache(&mut self) -> u64 {
        let n = self.cached_bytes();
        self.cache.clear();
        self.cache_end = 0;
        n
    }
}

pub(super) struct State {
    root: PathBuf,
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Power is off: every request fails and nothing more reaches the backing files.
    cut: bool,
}

type Res<T> = Result<T, Errno>;

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn system_time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

impl State {
    /// The state of a fresh mount of `root`: only the root directory known (inode 1).
    pub(super) fn new(root: PathBuf) -> State {
        let mut st = State {
            root,
            nodes: HashMap::new(),
            by_path: HashMap::new(),
            next_ino: 1,
            cut: false,
        };
        st.ino_for(PathBuf::new());
        st
    }

    /// Power is off: drops every unsynced byte (returned) and fails every request from now on.
    pub(super) fn cut_power(&mut self) -> u64 {
        self.cut = true;
        self.nodes.values_mut().map(Node::drop_cache).sum()
    }

    /// Applies every file's cache (a clean power-off); returns the bytes applied.
    pub(super) fn apply_all(&mut self) -> io::Result<u64> {
        let inos: Vec<u64> = self.nodes.keys().copied().collect();
        let mut applied = 0;
        for ino in inos {
            applied += self.apply(ino)?;
        }
        Ok(applied)
    }

    fn node(&mut self, ino: INodeNo) -> Res<&mut Node> {
        if self.cut {
            return Err(Errno::EIO);
        }
        self.nodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn backing(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    fn child(&mut self, parent: INodeNo, name: &OsStr) -> Res<PathBuf> {
        let p = self.node(parent)?;
        if p.unlinked {
            return Err(Errno::ENOENT);
        }
        Ok(p.path.join(name))
    }

    fn ino_for(&mut self, rel: PathBuf) -> u64 {
        if let Some(i) = self.by_path.get(&rel) {
            return *i;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.by_path.insert(rel.clone(), ino);
        self.nodes.insert(
            ino,
            Node {
                path: rel,
                unlinked: false,
                file: None,
                cache: BTreeMap::new(),
                cache_end: 0,
            },
        );
        ino
    }

    /// The node's backing file, opened on first use.
    fn file(&mut self, ino: INodeNo) -> Res<&File> {
        let root = self.root.clone();
        let n = self.node(ino)?;
        if n.file.is_none() {
            if n.unlinked {
                return Err(Errno::ENOENT);
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(root.join(&n.path))
                .map_err(errno)?;
            n.file = Some(f);
        }
        Ok(n.file.as_ref().expect("opened above"))
    }

    fn attr(&mut self, ino: INodeNo) -> Res<FileAttr> {
        let root = self.root.clone();
        let n = self.node(ino)?;
        let meta = match &n.file {
            Some(f) => f.metadata(),
            None if n.unlinked => return Err(Errno::ENOENT),
            None => std::fs::symlink_metadata(root.join(&n.path)),
        }
        .map_err(errno)?;
        let kind = FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile);
        Ok(FileAttr {
            ino,
            size: meta.len().max(n.cache_end),
            blocks: meta.blocks(),
            atime: system_time(meta.atime(), meta.atime_nsec()),
            mtime: system_time(meta.mtime(), meta.mtime_nsec()),
            ctime: system_time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn read(&mut self, ino: INodeNo, off: u64, size: u64) -> Res<Vec<u8>> {
        self.file(ino)?;
        let n = self.node(ino)?;
        let f = n.file.as_ref().expect("opened above");
        let end = f.metadata().map_err(errno)?.len().max(n.cache_end);
        if off >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size.min(end - off) as usize];
        read_full(f, &mut buf, off).map_err(errno)?;
        // The cache is newer than the backing file.
        let last = (off + buf.len() as u64 - 1) / PAGE;
        for (&pno, page) in n.cache.range(off / PAGE..=last) {
            let (p_start, p_end) = (pno * PAGE, pno * PAGE + PAGE);
            let (from, to) = (p_start.max(off), p_end.min(off + buf.len() as u64));
            buf[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&page[(from - p_start) as usize..(to - p_start) as usize]);
        }
        Ok(buf)
    }

    fn write(&mut self, ino: INodeNo, off: u64, data: &[u8]) -> Res<()> {
        self.file(ino)?;
        let n = self.node(ino)?;
        let f = n.file.as_ref().expect("opened above");
        if data.is_empty() {
            return Ok(());
        }
        let last = (off + data.len() as u64 - 1) / PAGE;
        for pno in off / PAGE..=last {
            // A page first written here starts as what the backing file holds.
            let page = match n.cache.entry(pno) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
                    read_full(f, &mut page, pno * PAGE).map_err(errno)?;
                    e.insert(page)
                }
            };
            let (p_start, p_end) = (pno * PAGE, pno * PAGE + PAGE);
            let (from, to) = (p_start.max(off), p_end.min(off + data.len() as u64));
            page[(from - p_start) as usize..(to - p_start) as usize]
                .copy_from_slice(&data[(from - off) as usize..(to - off) as usize]);
        }
        n.cache_end = n.cache_end.max(off + data.len() as u64);
        Ok(())
    }

    /// Applies the node's cache to its backing file; returns the bytes applied.
    fn apply(&mut self, ino: u64) -> io::Result<u64> {
        let Some(n) = self.nodes.get_mut(&ino) else {
            return Ok(0);
        };
        let Some(f) = &n.file else {
            return Ok(0);
        };
        if n.cache.is_empty() {
            return Ok(0);
        }
        let end = f.metadata()?.len().max(n.cache_end);
        let mut applied = 0;
        for (&pno, page) in &n.cache {
            let start = pno * PAGE;
            if start >= end {
                continue;
            }
            let len = PAGE.min(end - start) as usize;
            f.write_all_at(&page[..len], start)?;
            applied += len as u64;
        }
        if f.metadata()?.len() < end {
            f.set_len(end)?;
        }
        n.drop_cache();
        Ok(applied)
    }

    fn truncate(&mut self, ino: INodeNo, size: u64) -> Res<()> {
        self.file(ino)?;
        let n = self.node(ino)?;
        n.file
            .as_ref()
            .expect("opened above")
            .set_len(size)
            .map_err(errno)?;
        n.cache.retain(|&pno, _| pno * PAGE < size);
        if let Some(page) = n.cache.get_mut(&(size / PAGE)) {
            page[(size % PAGE) as usize..].fill(0);
        }
        n.cache_end = n.cache_end.min(size);
        Ok(())
    }

    /// The node at `rel` no longer has a name (unlinked or replaced by a rename).
    fn forget_path(&mut self, rel: &Path) {
        if let Some(ino) = self.by_path.remove(rel) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.unlinked = true;
            }
        }
    }

    fn renamed(&mut self, from: &Path, to: &Path) {
        self.forget_path(to);
        let moved: Vec<(PathBuf, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (old, ino) in moved {
            self.by_path.remove(&old);
            let new = to.join(old.strip_prefix(from).expect("filtered by prefix"));
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = new.clone();
            }
            self.by_path.insert(new, ino);
        }
    }
}

/// Reads up to `buf.len()` bytes at `off`; what lies past the end of the file stays as it is.
fn read_full(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) struct Fs {
    state: Arc<Mutex<State>>,
    faults: Arc<Faults>,
}

impl Fs {
    pub(super) fn new(state: Arc<Mutex<State>>, faults: Arc<Faults>) -> Fs {
        Fs { state, faults }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn entry(&self, rel: PathBuf, reply: ReplyEntry) {
        let mut st = self.state();
        if st.backing(&rel).symlink_metadata().is_err() {
            return reply.error(Errno::ENOENT);
        }
        let ino = st.ino_for(rel);
        match st.attr(INodeNo(ino)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

fn done(reply: ReplyEmpty, r: Res<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let rel = self.state().child(parent, name);
        match rel {
            Ok(rel) => self.entry(rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.state();
        let r = (|| -> Res<FileAttr> {
            if let Some(size) = size {
                st.truncate(ino, size)?;
            }
            let root = st.root.clone();
            let n = st.node(ino)?;
            let path = root.join(&n.path);
            if let Some(mode) = mode {
                let perm = std::fs::Permissions::from_mode(mode & 0o7777);
                match &n.file {
                    Some(f) => f.set_permissions(perm),
                    None => std::fs::set_permissions(&path, perm),
                }
                .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::chown(&path, uid, gid).map_err(errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                let t = |t: TimeOrNow| match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                let mut times = std::fs::FileTimes::new();
                if let Some(a) = atime {
                    times = times.set_accessed(t(a));
                }
                if let Some(m) = mtime {
                    times = times.set_modified(t(m));
                }
                // Directories cannot be opened for writing; their times do not matter here.
                if let Ok(f) = File::open(&path) {
                    let _ = f.set_times(times);
                }
            }
            st.attr(ino)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut st = self.state();
        let r = st.child(parent, name).and_then(|rel| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode & !umask & 0o7777)
                .open(st.backing(&rel))
                .map_err(errno)?;
            Ok(rel)
        });
        drop(st);
        match r {
            Ok(rel) => self.entry(rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        use std::os::unix::fs::DirBuilderExt;
        let mut st = self.state();
        let r = st.child(parent, name).and_then(|rel| {
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(st.backing(&rel))
                .map_err(errno)?;
            Ok(rel)
        });
        drop(st);
        match r {
            Ok(rel) => self.entry(rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.state();
        let r = st.child(parent, name).and_then(|rel| {
            std::fs::remove_file(st.backing(&rel)).map_err(errno)?;
            st.forget_path(&rel);
            Ok(())
        });
        done(reply, r);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.state();
        let r = st.child(parent, name).and_then(|rel| {
            std::fs::remove_dir(st.backing(&rel)).map_err(errno)?;
            st.forget_path(&rel);
            Ok(())
        });
        done(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.bits() != 0 {
            return reply.error(Errno::EINVAL);
        }
        let mut st = self.state();
        let r = (|| -> Res<()> {
            let from = st.child(parent, name)?;
            let to = st.child(newparent, newname)?;
            std::fs::rename(st.backing(&from), st.backing(&to)).map_err(errno)?;
            st.renamed(&from, &to);
            Ok(())
        })();
        done(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Directories come through OPENDIR; this is a file.
        match self.state().file(ino).map(|_| ()) {
            // Keep the page cache across opens: this daemon is the only writer.
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.state();
        let r = (|| -> Res<FileAttr> {
            let rel = st.child(parent, name)?;
            let mut o = OpenOptions::new();
            o.read(true).write(true).mode(mode & !umask & 0o7777);
            if flags & libc::O_EXCL != 0 {
                o.create_new(true);
            } else {
                o.create(true);
            }
            let f = o.open(st.backing(&rel)).map_err(errno)?;
            let ino = st.ino_for(rel);
            let n = st.node(INodeNo(ino))?;
            n.file.get_or_insert(f);
            if flags & libc::O_TRUNC != 0 {
                st.truncate(INodeNo(ino), 0)?;
            }
            st.attr(INodeNo(ino))
        })();
        match r {
            Ok(a) => reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.state().read(ino, offset, size as u64) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let f = &self.faults;
        let mut st = self.state();
        let r = (|| -> Res<()> {
            let path = st.node(ino)?.path.clone();
            if f.matches(&path) {
                if f.write_eio.take() {
                    f.writes_failed_eio.fetch_add(1, Ordering::SeqCst);
                    return Err(Errno::EIO);
                }
                if !f.take_space(data.len() as u64) {
                    f.enospc.fetch_add(1, Ordering::SeqCst);
                    return Err(Errno::ENOSPC);
                }
            }
            st.write(ino, offset, data)?;
            f.writes.fetch_add(1, Ordering::SeqCst);
            f.bytes_written
                .fetch_add(data.len() as u64, Ordering::SeqCst);
            Ok(())
        })();
        match r {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // A close is not a sync point: the data stays in the volatile cache.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let f = &self.faults;
        let mut st = self.state();
        let r = (|| -> Res<()> {
            let n = st.node(ino)?;
            f.fsyncs.fetch_add(1, Ordering::SeqCst);
            if f.matches(&n.path) && f.fsync_eio.take() {
                // The cached data failed to reach the medium: it is gone.
                f.bytes_dropped.fetch_add(n.drop_cache(), Ordering::SeqCst);
                f.fsyncs_failed.fetch_add(1, Ordering::SeqCst);
                return Err(Errno::EIO);
            }
            let applied = st.apply(ino.0).map_err(errno)?;
            f.bytes_synced.fetch_add(applied, Ordering::SeqCst);
            Ok(())
        })();
        done(reply, r);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.state();
        let r = (|| -> Res<Vec<(u64, FileType, std::ffi::OsString)>> {
            let rel = st.node(ino)?.path.clone();
            let mut names: Vec<(std::ffi::OsString, FileType)> =
                std::fs::read_dir(st.backing(&rel))
                    .map_err(errno)?
                    .filter_map(|e| e.ok())
                    .map(|e| {
                        let kind = e
                            .file_type()
                            .ok()
                            .and_then(FileType::from_std)
                            .unwrap_or(FileType::RegularFile);
                        (e.file_name(), kind)
                    })
                    .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = vec![
                (ino.0, FileType::Directory, ".".into()),
                (ino.0, FileType::Directory, "..".into()),
            ];
            for (name, kind) in names {
                out.push((st.ino_for(rel.join(&name)), kind, name));
            }
            Ok(out)
        })();
        match r {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Metadata is durable at once (see the module docs).
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.state().root.clone();
        let c = std::ffi::CString::new(root.as_os_str().as_bytes()).expect("no NUL in a path");
        // SAFETY: statvfs fills the struct we pass; the path is NUL-terminated.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return reply.error(errno(io::Error::last_os_error()));
        }
        match *lock(&self.faults.space) {
            Some((total, free)) => reply.statfs(
                total / PAGE,
                free / PAGE,
                free / PAGE,
                s.f_files,
                s.f_ffree,
                PAGE as u32,
                255,
                PAGE as u32,
            ),
            None => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let f = &self.faults;
        let mut st = self.state();
        let r = (|| -> Res<()> {
            // Plain allocation, with or without growing the size; holes and ranges the cache
            // would have to follow are not needed by the store.
            if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let size = st.attr(ino)?.size;
            let path = st.node(ino)?.path.clone();
            let growth = (offset + length).saturating_sub(size);
            if f.matches(&path) && !f.take_space(growth) {
                f.enospc.fetch_add(1, Ordering::SeqCst);
                return Err(Errno::ENOSPC);
            }
            let fd = st.file(ino)?.as_raw_fd();
            // SAFETY: plain syscall on a descriptor we own.
            let rc =
                unsafe { libc::fallocate(fd, mode, offset as libc::off_t, length as libc::off_t) };
            if rc != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            Ok(())
        })();
        done(reply, r);
    }
}
