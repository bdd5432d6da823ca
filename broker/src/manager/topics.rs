//! Topic configs: the system topics a broker always has, auto-creation from a template topic,
//! and `config/topics.json`.

use std::collections::HashMap;
use std::path::PathBuf;

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
    path: PathBuf,
    table: RwLock<HashMap<String, TopicConfig>>,
    data_version: Mutex<DataVersion>,
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
        TopicConfigManager {
            path,
            table: RwLock::new(table),
            data_version: Mutex::new(version),
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

    /// Creates or replaces a topic; persists and bumps the data version.
    pub fn put(&self, tc: TopicConfig) {
        tracing::info!(topic = %tc.topic_name, read = tc.read_queue_nums, write = tc.write_queue_nums, perm = tc.perm, "topic config updated");
        self.table.write().insert(tc.topic_name.clone(), tc);
        self.data_version.lock().next();
        self.persist();
    }

    /// A slave takes the master's whole table when its data version changed.
    pub fn replace_all(&self, w: TopicConfigSerializeWrapper) -> bool {
        if *self.data_version.lock() == w.data_version {
            return false;
        }
        *self.table.write() = w.topic_config_table;
        *self.data_version.lock() = w.data_version;
        self.persist();
        true
    }

    pub fn delete(&self, topic: &str) -> bool {
        let removed = self.table.write().remove(topic).is_some();
        if removed {
            tracing::info!(topic, "topic config deleted");
            self.data_version.lock().next();
            self.persist();
        }
        removed
    }

    /// Auto-creation on send: if `default_topic` exists with the inherit bit, `topic` is
    /// created with at most its write queue count, and its permission without the bit.
    pub fn create_from_default(
        &self,
        topic: &str,
        default_topic: &str,
        queue_nums: i32,
    ) -> Option<TopicConfig> {
        if let Some(tc) = self.get(topic) {
            return Some(tc);
        }
        let template = self.get(default_topic)?;
        if template.perm & perm::INHERIT == 0 {
            tracing::warn!(
                topic,
                default_topic,
                "template topic has no inherit permission"
            );
            return None;
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
            return Some(existing.clone());
        }
        table.insert(topic.to_string(), tc.clone());
        drop(table);
        tracing::info!(topic, default_topic, queues, "topic auto-created");
        self.data_version.lock().next();
        self.persist();
        Some(tc)
    }

    /// Creates a retry or DLQ topic if missing.
    pub fn create_if_missing(&self, topic: &str, queues: i32, perm: i32) -> TopicConfig {
        if let Some(tc) = self.get(topic) {
            return tc;
        }
        let tc = TopicConfig::new(topic, queues, perm);
        self.put(tc.clone());
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

    pub fn persist(&self) {
        let body = || serde_json::to_vec_pretty(&self.wrapper()).unwrap_or_default();
        if let Err(e) = super::persist(&self.path, body) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot persist topic configs");
        }
    }
}
