//! Consumer offsets: `topic@group → queue → offset`, kept in memory and written to
//! `config/consumerOffset.json` every `flushConsumerOffsetInterval` and at shutdown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OffsetWrapper {
    pub offset_table: HashMap<String, HashMap<i32, i64>>,
}

pub struct ConsumerOffsetManager {
    path: PathBuf,
    table: RwLock<HashMap<String, HashMap<i32, i64>>>,
    dirty: AtomicBool,
}

/// `(topic, group, [(queue, offset)])`.
pub type GroupOffsets = (String, String, Vec<(i32, i64)>);

fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

impl ConsumerOffsetManager {
    pub fn load(path: PathBuf) -> ConsumerOffsetManager {
        let w = super::load(&path, |b| {
            rmq_remoting::fastjson::from_slice::<OffsetWrapper>(b).ok()
        })
        .unwrap_or_default();
        ConsumerOffsetManager {
            path,
            table: RwLock::new(w.offset_table),
            dirty: AtomicBool::new(false),
        }
    }

    /// The committed offset, or -1.
    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> i64 {
        self.table
            .read()
            .get(&key(topic, group))
            .and_then(|m| m.get(&queue_id).copied())
            .unwrap_or(-1)
    }

    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        if offset < 0 {
            return;
        }
        self.table
            .write()
            .entry(key(topic, group))
            .or_default()
            .insert(queue_id, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// Offsets of one group on one topic.
    pub fn offsets(&self, group: &str, topic: &str) -> HashMap<i32, i64> {
        self.table
            .read()
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    /// Topics a group has offsets for.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let suffix = format!("@{group}");
        self.table
            .read()
            .keys()
            .filter_map(|k| k.strip_suffix(&suffix).map(String::from))
            .collect()
    }

    /// Every `(topic, group, queue → offset)`.
    pub fn all(&self) -> Vec<GroupOffsets> {
        self.table
            .read()
            .iter()
            .filter_map(|(k, m)| {
                let (topic, group) = k.split_once('@')?;
                Some((
                    topic.to_string(),
                    group.to_string(),
                    m.iter().map(|(q, o)| (*q, *o)).collect(),
                ))
            })
            .collect()
    }

    pub fn remove_group(&self, group: &str) {
        let suffix = format!("@{group}");
        self.table.write().retain(|k, _| !k.ends_with(&suffix));
        self.dirty.store(true, Ordering::Release);
    }

    pub fn remove_topic(&self, topic: &str) {
        let prefix = format!("{topic}@");
        self.table.write().retain(|k, _| !k.starts_with(&prefix));
        self.dirty.store(true, Ordering::Release);
    }

    /// A slave takes the master's offsets.
    pub fn replace_all(&self, table: HashMap<String, HashMap<i32, i64>>) {
        *self.table.write() = table;
        self.dirty.store(true, Ordering::Release);
    }

    /// Every `(topic@group, queue, offset)`.
    pub fn entries(&self) -> Vec<(String, i32, i64)> {
        self.table
            .read()
            .iter()
            .flat_map(|(k, m)| m.iter().map(move |(q, o)| (k.clone(), *q, *o)))
            .collect()
    }

    /// The JSON RocketMQ's GET_ALL_CONSUMER_OFFSET returns and the file holds.
    pub fn encode(&self) -> Vec<u8> {
        let w = OffsetWrapper {
            offset_table: self.table.read().clone(),
        };
        serde_json::to_vec(&w).unwrap_or_default()
    }

    /// Writes the file if anything changed (blocking: call from a blocking context).
    pub fn persist(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = super::persist(&self.path, || self.encode()) {
            self.dirty.store(true, Ordering::Release);
            tracing::error!(path = %self.path.display(), error = %e, "cannot persist consumer offsets");
        }
    }
}
