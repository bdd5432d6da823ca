//! The broker's metadata: topics, subscription groups, consumer offsets, connected clients.
//! Each persists as RocketMQ does, a JSON file under `storePathRootDir/config/`.

pub mod clients;
pub mod file;
pub mod locks;
pub mod offsets;
pub mod subscriptions;
pub mod topics;

use std::path::Path;

/// Writes `path` now, atomically ([`file::write_atomic`]), for files written rarely and
/// by one caller at a time; tables that change often use a [`file::MetaFile`].
pub fn persist(path: &Path, body: impl FnOnce() -> Vec<u8>) -> std::io::Result<()> {
    // One writer at a time, and the snapshot taken under the same lock: two threads writing
    // the same temporary file could interleave, and an older snapshot renamed last would win.
    static WRITING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _writing = WRITING.lock();
    file::write_atomic(path, &body())
}

/// Reads `path`, or its `.bak` if `path` is missing or unreadable as JSON by `parse`.
pub fn load<T>(path: &Path, parse: impl Fn(&[u8]) -> Option<T>) -> Option<T> {
    for p in [path.to_path_buf(), path.with_extension("json.bak")] {
        if let Ok(bytes) = std::fs::read(&p) {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse(&bytes) {
                Some(v) => return Some(v),
                None => {
                    tracing::warn!(file = %p.display(), "unreadable config file, trying its backup")
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_leave_a_whole_file_from_the_last_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.json");
        let version = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        persist(&path, || {
                            let v = version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            format!("{{\"version\":{v},\"pad\":\"{}\"}}", "x".repeat(4096))
                                .into_bytes()
                        })
                        .expect("every write succeeds");
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).expect("a whole file");
        assert_eq!(v["version"], 199, "the last snapshot is the one on disk");
    }
}
