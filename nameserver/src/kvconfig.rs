//! KV config: `namespace → key → value`, persisted as Java's `kvConfig.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

/// The namespace whose values (`brokerName:queueNum;...`) become routes' `orderTopicConf`.
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct KvConfigSerializeWrapper {
    config_table: HashMap<String, HashMap<String, String>>,
}

/// The KV store. Each change is written to disk off the async workers, newest wins.
pub struct KvConfigManager {
    path: PathBuf,
    table: RwLock<HashMap<String, HashMap<String, String>>>,
    /// Version of the table; bumped under the table's write lock.
    version: Mutex<u64>,
    written: Arc<Mutex<u64>>,
}

impl KvConfigManager {
    /// Loads `path` if it exists. A file that cannot be parsed is an error: starting with an
    /// empty table would silently drop order-topic config on the next write.
    pub fn load(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let path = path.into();
        let table = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => HashMap::new(),
            Ok(bytes) => {
                let w: KvConfigSerializeWrapper = rmq_remoting::fastjson::from_slice(&bytes)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot parse KV config {}: {e}", path.display())
                    })?;
                w.config_table
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot read KV config {}: {e}",
                    path.display()
                ))
            }
        };
        tracing::info!(path = %path.display(), namespaces = table.len(), "KV config loaded");
        Ok(KvConfigManager {
            path,
            table: RwLock::new(table),
            version: Mutex::new(0),
            written: Arc::new(Mutex::new(0)),
        })
    }

    pub fn put(&self, namespace: &str, key: &str, value: &str) {
        let snapshot = {
            let mut t = self.table.write();
            let prev = t
                .entry(namespace.to_string())
                .or_default()
                .insert(key.to_string(), value.to_string());
            tracing::info!(namespace, key, value, ?prev, "KV config put");
            self.snapshot_locked(&t)
        };
        self.persist(snapshot);
    }

    /// Deletes `key`; a namespace left empty is removed.
    pub fn delete(&self, namespace: &str, key: &str) {
        let snapshot = {
            let mut t = self.table.write();
            let Some(ns) = t.get_mut(namespace) else {
                return;
            };
            if ns.remove(key).is_none() {
                return;
            }
            if ns.is_empty() {
                t.remove(namespace);
            }
            tracing::info!(namespace, key, "KV config deleted");
            self.snapshot_locked(&t)
        };
        self.persist(snapshot);
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<String> {
        self.table.read().get(namespace)?.get(key).cloned()
    }

    pub fn list(&self, namespace: &str) -> Option<HashMap<String, String>> {
        self.table.read().get(namespace).cloned()
    }

    fn snapshot_locked(&self, t: &HashMap<String, HashMap<String, String>>) -> (u64, Vec<u8>) {
        let mut v = self.version.lock();
        *v += 1;
        let body = serde_json::to_vec_pretty(&KvConfigSerializeWrapper {
            config_table: t.clone(),
        })
        .unwrap_or_default();
        (*v, body)
    }

    fn persist(&self, (version, body): (u64, Vec<u8>)) {
        let path = self.path.clone();
        let written = self.written.clone();
        let write = move || {
            let mut last = written.lock();
            if *last > version {
                return; // a newer snapshot is already on disk
            }
            match write_atomically(&path, &body) {
                Ok(()) => *last = version,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot persist KV config")
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }

    /// Writes the current table now (at shutdown).
    pub fn flush(&self) {
        let snapshot = {
            let t = self.table.read();
            self.snapshot_locked(&t)
        };
        let mut last = self.written.lock();
        if let Err(e) = write_atomically(&self.path, &snapshot.1) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot persist KV config");
        } else {
            *last = snapshot.0;
        }
    }
}

/// Writes `path` through a temporary file and a rename, so a crash leaves old or new content.
pub fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reload_and_refuses_corrupt_file() {
        let dir = std::env::temp_dir().join(format!("rmq-kv-{}", std::process::id()));
        let path = dir.join("kvConfig.json");
        let _ = std::fs::remove_dir_all(&dir);
        let kv = KvConfigManager::load(&path).unwrap();
        kv.put(NAMESPACE_ORDER_TOPIC_CONFIG, "T", "broker-a:4");
        kv.put("ns", "k", "v");
        kv.delete("ns", "k");
        kv.flush();
        let again = KvConfigManager::load(&path).unwrap();
        assert_eq!(
            again.get(NAMESPACE_ORDER_TOPIC_CONFIG, "T").as_deref(),
            Some("broker-a:4")
        );
        assert!(again.list("ns").is_none());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(KvConfigManager::load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
