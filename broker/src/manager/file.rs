//! Metadata files written safely: one writer thread per file, coalesced and versioned.
//!
//! A change bumps the file's wanted version and returns it; the file's own thread takes a
//! snapshot of the whole table *after* reading the version (so the snapshot covers it) and
//! writes it: temporary file, fsync, the previous version kept as `.bak` (by a hard link,
//! renamed into place, so it is always a whole file), rename, fsync of the directory. A burst
//! of a thousand changes costs one or two writes, never a write per change, and no write runs
//! on a tokio worker. Callers that must know the change is on disk (admin requests, epoch
//! changes) wait for their version and get the write's error if it failed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

type Encode = Box<dyn Fn() -> Vec<u8> + Send + Sync>;

/// How long a caller waits for its change to reach the disk before giving up.
const WAIT: Duration = Duration::from_secs(10);
/// After a failed write, the writer tries again this much later.
const RETRY: Duration = Duration::from_secs(1);

pub struct MetaFile {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    path: PathBuf,
    encode: Encode,
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    wanted: u64,
    written: u64,
    /// The last failed write: the version it was for, and why.
    failed: Option<(u64, String)>,
    closed: bool,
}

impl MetaFile {
    /// A writer for `path`; `encode` snapshots the table it holds.
    pub fn new(path: PathBuf, encode: impl Fn() -> Vec<u8> + Send + Sync + 'static) -> MetaFile {
        let shared = Arc::new(Shared {
            path,
            encode: Box::new(encode),
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let s = shared.clone();
        let name = format!(
            "meta-{}",
            shared
                .path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || writer(&s))
            .map_err(|e| tracing::error!(error = %e, "cannot start a metadata writer"))
            .ok();
        MetaFile {
            shared,
            thread: Mutex::new(thread),
        }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Records that the table changed; returns the version to wait for.
    pub fn changed(&self) -> u64 {
        let mut st = self.shared.state.lock();
        st.wanted += 1;
        self.shared.cv.notify_all();
        st.wanted
    }

    /// Blocks until `version` is on disk, or its write failed, or [`WAIT`] passed.
    pub fn wait(&self, version: u64) -> io::Result<()> {
        let deadline = std::time::Instant::now() + WAIT;
        let mut st = self.shared.state.lock();
        loop {
            if st.written >= version {
                return Ok(());
            }
            if let Some((v, e)) = &st.failed {
                if *v >= version {
                    return Err(io::Error::other(format!(
                        "cannot write {}: {e}",
                        self.shared.path.display()
                    )));
                }
            }
            if self.shared.cv.wait_until(&mut st, deadline).timed_out() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} not written within {WAIT:?}", self.shared.path.display()),
                ));
            }
        }
    }

    /// Marks the table changed and waits until that is on disk.
    pub fn write_now(&self) -> io::Result<()> {
        let v = self.changed();
        self.wait(v)
    }

    /// [`MetaFile::wait`] off the async workers.
    pub async fn durable(self: &Arc<Self>, version: u64) -> io::Result<()> {
        let f = self.clone();
        tokio::task::spawn_blocking(move || f.wait(version))
            .await
            .map_err(io::Error::other)?
    }
}

impl Drop for MetaFile {
    /// Writes what is pending, then stops the thread.
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock();
            st.closed = true;
            self.shared.cv.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn writer(s: &Shared) {
    loop {
        let target = {
            let mut st = s.state.lock();
            while st.written >= st.wanted && !st.closed {
                s.cv.wait(&mut st);
            }
            if st.written >= st.wanted {
                return;
            }
            st.wanted
        };
        // The snapshot is taken after the version was read: it holds every change up to it.
        let body = (s.encode)();
        let result = write_atomic(&s.path, &body);
        let mut st = s.state.lock();
        match result {
            Ok(()) => {
                st.written = st.written.max(target);
                st.failed = None;
            }
            Err(e) => {
                tracing::error!(path = %s.path.display(), error = %e, "cannot write a metadata file; retrying");
                st.failed = Some((target, e.to_string()));
            }
        }
        s.cv.notify_all();
        if st.failed.is_some() {
            if st.closed {
                return;
            }
            s.cv.wait_for(&mut st, RETRY);
        }
    }
}

/// Replaces `path` with `body`: a crash at any point leaves the old or the new file whole,
/// with the one before it as `.bak`.
pub fn write_atomic(path: &Path, body: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = sibling(path, "tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    if path.exists() {
        // The old version becomes the backup in one rename: never a half-copied `.bak`.
        let bak_tmp = sibling(path, "bak.tmp");
        let _ = std::fs::remove_file(&bak_tmp);
        if std::fs::hard_link(path, &bak_tmp).is_ok() {
            std::fs::rename(&bak_tmp, sibling(path, "bak"))?;
        }
    }
    std::fs::rename(&tmp, path)?;
    // The renames are durable only once the directory is.
    std::fs::File::open(dir)?.sync_all()
}

/// `name.json` → `name.json.<ext>`.
fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_burst_of_changes_costs_few_writes_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.json");
        let value = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let (v2, w2) = (value.clone(), writes.clone());
        let file = MetaFile::new(path.clone(), move || {
            w2.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            format!("{{\"version\":{}}}", v2.load(Ordering::SeqCst)).into_bytes()
        });
        let mut last = 0;
        for i in 1..=1000 {
            value.store(i, Ordering::SeqCst);
            last = file.changed();
        }
        file.wait(last).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["version"], 1000);
        let n = writes.load(Ordering::SeqCst);
        assert!(n < 20, "1000 changes took {n} writes");
        // The previous version is kept whole.
        assert!(sibling(&path, "bak").exists() || n == 1);
    }

    #[test]
    fn a_failed_write_fails_its_waiters_and_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        // The file's directory is a regular file: every write fails.
        let blocker = dir.path().join("config");
        std::fs::write(&blocker, b"x").unwrap();
        let file = MetaFile::new(blocker.join("epoch.json"), || b"{}".to_vec());
        let err = file.write_now().unwrap_err();
        assert!(err.to_string().contains("epoch.json"), "{err}");
        // Once the cause is gone, the retry writes it.
        std::fs::remove_file(&blocker).unwrap();
        let v = file.changed();
        file.wait(v).unwrap();
        assert!(blocker.join("epoch.json").exists());
    }

    #[test]
    fn dropping_the_file_writes_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.json");
        let file = MetaFile::new(path.clone(), || b"{\"a\":1}".to_vec());
        file.changed();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}");
    }
}
