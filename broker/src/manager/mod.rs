//! The broker's metadata: topics, subscription groups, consumer offsets, connected clients.
//! Each persists as RocketMQ does, a JSON file under `storePathRootDir/config/`.

pub mod clients;
pub mod locks;
pub mod offsets;
pub mod subscriptions;
pub mod topics;

use std::path::Path;

/// Writes `path` via a temporary file and a rename, keeping the previous version as `.bak`.
pub fn persist(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_data()?;
    }
    if path.exists() {
        let _ = std::fs::copy(path, path.with_extension("json.bak"));
    }
    std::fs::rename(&tmp, path)
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
