//! Topic configs: the system topics a broker always has, auto-creation from a template topic,
//! and `config/topics.json`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rmq_remoting::protocol::topic::{perm, TopicConfig, TopicConfigSerializeWrapper};
use rmq_remoting::protocol::DataVersion;
use rmq_remoting::topic::AUTO_CREATE_TOPIC_KEY_TOPIC;

use crate::config::BrokerConfig;

pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
pub use crate::store::SCHEDULE_TOPIC;
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";

/// Topics clients may not send to directly.
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    matches!(
        topic,
        SCHEDULE_TOPIC
            | TRANS_HALF_TOPIC
            | TRANS_OP_HALF_TOPIC
            | "RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC"
    )
}

pub struct TopicConfigManager {
    table: Arc<RwLock<HashMap<String, TopicConfig>>>,
    data_version: Arc<Mutex<DataVersion>>,
    file: Arc<super::file::MetaFile>,
    /// Auto-creation stops once the table holds this many topics (0: no limit).
    auto_create_limit: usize,
}

/// Why a topic was not auto-created.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoCreate {
    /// The template topic is missing or does not allow inheriting.
    NoTemplate,
    /// The broker holds `autoCreateTopicLimit` topics already.
    Limit(usize),
}

impl TopicConfigManager {
    /// Loads `topics.json` (or its backup) and adds the system topics.
    pub fn load(path: PathBuf, broker: &BrokerConfig) -> TopicConfigManager {
        let loaded = super::load(&path, |b| {
            rmq_remoting::fastjson::from_slice::<TopicConfigSerializeWrapper>(b).ok()
        });
        let (mut table, version) = match loaded {
            Some(w) => (w.topic_config_table, w.data_version),
            None => (HashMap::new(), DataVersion::now()),
        };
        let mut system = Vec::new();
        if broker.auto_create_topic_enable {
            let q = broker.default_topic_queue_nums;
            system.push(TopicConfig::new(
                AUTO_CREATE_TOPIC_KEY_TOPIC,
                q,
                perm::INHERIT | perm::READ | perm::WRITE,
            ));
            system.push(TopicConfig::new(
                BENCHMARK_TOPIC,
                1024,
                perm::READ | perm::WRITE,
            ));
        }
        system.push(TopicConfig::new(
            SELF_TEST_TOPIC,
            1,
            perm::READ | perm::WRITE,
        ));
        let rw = perm::READ | perm::WRITE;
        let mut cluster = TopicConfig::new(broker.broker_cluster_name.clone(), 16, perm::INHERIT);
        if broker.cluster_topic_enable {
            cluster.perm |= rw;
        }
        system.push(cluster);
        let mut name = TopicConfig::new(broker.broker_name.clone(), 1, perm::INHERIT);
        if broker.broker_topic_enable {
            name.perm |= rw;
        }
        system.push(name);
        system.push(TopicConfig::new(OFFSET_MOVED_EVENT, 1, rw));
        system.push(TopicConfig::new(SCHEDULE_TOPIC, 18, rw));
        system.push(TopicConfig::new(TRANS_HALF_TOPIC, 1, rw));
        system.push(TopicConfig::new(TRANS_OP_HALF_TOPIC, 1, rw));
        for tc in system {
            table.entry(tc.topic_name.clone()).or_insert(tc);
        }
        let table = Arc::new(RwLock::new(table));
        let data_version = Arc::new(Mutex::new(version));
        let (t, v) = (table.clone(), data_version.clone());
        let file = super::file::MetaFile::new(path, move || {
            let w = TopicConfigSerializeWrapper {
                topic_config_table: t.read().clone(),
                data_version: v.lock().clone(),
                ..Default::default()
            };
            serde_json::to_vec_pretty(&w).unwrap_or_default()
        });
        TopicConfigManager {
            table,
            data_version,
            file: Arc::new(file),
            auto_create_limit: broker.auto_create_topic_limit,
        }
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table.read().get(topic).cloned()
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.table.read().contains_key(topic)
    }

    pub fn topic_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.table.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Creates or replaces a topic and bumps the data version; returns the file version to
    /// wait for ([`TopicConfigManager::durable`]).
    pub fn put(&self, tc: TopicConfig) -> u64 {
        tracing::info!(topic = %tc.topic_name, read = tc.read_queue_nums, write = tc.write_queue_nums, perm = tc.perm, "topic config updated");
        self.table.write().insert(tc.topic_name.clone(), tc);
        self.data_version.lock().next();
        self.file.changed()
    }

    /// A slave takes the master's whole table when its data version changed.
    pub fn replace_all(&self, w: TopicConfigSerializeWrapper) -> bool {
        if *self.data_version.lock() == w.data_version {
            return false;
        }
        *self.table.write() = w.topic_config_table;
        *self.data_version.lock() = w.data_version;
        self.file.changed();
        true
    }

    /// Removes a topic; the file version to wait for, if it existed.
    pub fn delete(&self, topic: &str) -> Option<u64> {
        let removed = self.table.write().remove(topic).is_some();
        if !removed {
            return None;
        }
        tracing::info!(topic, "topic config deleted");
        self.data_version.lock().next();
        Some(self.file.changed())
    }

    /// Waits until file version `version` is on disk; the write's error if it failed.
    pub async fn durable(&self, version: u64) -> std::io::Result<()> {
        self.file.durable(version).await
    }

    /// Auto-creation on send: if `default_topic` exists with the inherit bit, `topic` is
    /// created with at most its write queue count, and its permission without the bit.
    pub fn create_from_default(
        &self,
        topic: &str,
        default_topic: &str,
        queue_nums: i32,
    ) -> Result<TopicConfig, AutoCreate> {
        if let Some(tc) = self.get(topic) {
            return Ok(tc);
        }
        let template = self.get(default_topic).ok_or(AutoCreate::NoTemplate)?;
        if template.perm & perm::INHERIT == 0 {
            tracing::warn!(
                topic,
                default_topic,
                "template topic has no inherit permission"
            );
            return Err(AutoCreate::NoTemplate);
        }
        let queues = queue_nums.clamp(1, template.write_queue_nums.max(1));
        let tc = TopicConfig {
            topic_name: topic.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: template.perm & !perm::INHERIT,
            topic_filter_type: template.topic_filter_type,
            ..TopicConfig::default()
        };
        let mut table = self.table.write();
        if let Some(existing) = table.get(topic) {
            return Ok(existing.clone());
        }
        if self.auto_create_limit > 0 && table.len() >= self.auto_create_limit {
            return Err(AutoCreate::Limit(self.auto_create_limit));
        }
        table.insert(topic.to_string(), tc.clone());
        drop(table);
        tracing::info!(topic, default_topic, queues, "topic auto-created");
        self.data_version.lock().next();
        self.file.changed();
        Ok(tc)
    }

    /// Creates a retry or DLQ topic if missing. Not limited: callers create them only for
    /// groups that exist, and groups are.
    pub fn create_if_missing(&self, topic: &str, queues: i32, perm: i32) -> TopicConfig {
        let mut table = self.table.write();
        if let Some(tc) = table.get(topic) {
            return tc.clone();
        }
        let tc = TopicConfig::new(topic, queues, perm);
        table.insert(topic.to_string(), tc.clone());
        drop(table);
        tracing::info!(topic, queues, "topic created");
        self.data_version.lock().next();
        self.file.changed();
        tc
    }

    pub fn data_version(&self) -> DataVersion {
        self.data_version.lock().clone()
    }

    /// What the broker registers with the name servers.
    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            topic_config_table: self.table.read().clone(),
            data_version: self.data_version(),
            ..Default::default()
        }
    }

    /// Writes the file now and waits for it (start and shutdown).
    pub fn persist(&self) -> std::io::Result<()> {
        self.file.write_now()
    }
}

impl std::fmt::Display for AutoCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AutoCreate::NoTemplate => write!(f, "no template topic to create it from"),
            AutoCreate::Limit(n) => write!(
                f,
                "the broker holds {n} topics, its autoCreateTopicLimit: create it with mqadmin updateTopic"
            ),
        }
    }
}
