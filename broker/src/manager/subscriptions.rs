//! Subscription groups (`config/subscriptionGroup.json`), auto-created when enabled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rmq_remoting::protocol::admin::SubscriptionGroupConfig;
use rmq_remoting::protocol::DataVersion;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionGroupWrapper {
    pub subscription_group_table: HashMap<String, SubscriptionGroupConfig>,
    pub data_version: DataVersion,
}

pub struct SubscriptionGroupManager {
    table: Arc<RwLock<HashMap<String, SubscriptionGroupConfig>>>,
    data_version: Arc<Mutex<DataVersion>>,
    file: Arc<super::file::MetaFile>,
    /// Auto-creation stops once the table holds this many groups (0: no limit).
    auto_create_limit: usize,
}

/// Why a group is missing: auto-creation is off, or the broker is at its limit.
#[derive(Debug, Clone, PartialEq)]
pub enum NoGroup {
    Disabled,
    Limit(usize),
}

impl SubscriptionGroupManager {
    pub fn load(path: PathBuf, auto_create_limit: usize) -> SubscriptionGroupManager {
        let w = super::load(&path, |b| {
            rmq_remoting::fastjson::from_slice::<SubscriptionGroupWrapper>(b).ok()
        })
        .unwrap_or_default();
        let table = Arc::new(RwLock::new(w.subscription_group_table));
        let data_version = Arc::new(Mutex::new(w.data_version));
        let (t, v) = (table.clone(), data_version.clone());
        let file = super::file::MetaFile::new(path, move || {
            let w = SubscriptionGroupWrapper {
                subscription_group_table: t.read().clone(),
                data_version: v.lock().clone(),
            };
            serde_json::to_vec_pretty(&w).unwrap_or_default()
        });
        SubscriptionGroupManager {
            table,
            data_version,
            file: Arc::new(file),
            auto_create_limit,
        }
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.table.read().get(group).cloned()
    }

    /// The group's config, created with defaults when `auto_create` allows and the broker is
    /// below its auto-creation limit. The caller has validated the name.
    pub fn find_or_create(
        &self,
        group: &str,
        auto_create: bool,
    ) -> Result<SubscriptionGroupConfig, NoGroup> {
        if let Some(g) = self.get(group) {
            return Ok(g);
        }
        if !auto_create {
            return Err(NoGroup::Disabled);
        }
        let g = SubscriptionGroupConfig {
            group_name: group.to_string(),
            ..Default::default()
        };
        let mut table = self.table.write();
        if let Some(g) = table.get(group) {
            return Ok(g.clone());
        }
        if self.auto_create_limit > 0 && table.len() >= self.auto_create_limit {
            return Err(NoGroup::Limit(self.auto_create_limit));
        }
        table.insert(group.to_string(), g.clone());
        drop(table);
        tracing::info!(group, "subscription group auto-created");
        self.data_version.lock().next();
        self.file.changed();
        Ok(g)
    }

    /// Creates or replaces a group; returns the file version to wait for.
    pub fn put(&self, g: SubscriptionGroupConfig) -> u64 {
        tracing::info!(group = %g.group_name, "subscription group updated");
        self.table.write().insert(g.group_name.clone(), g);
        self.data_version.lock().next();
        self.file.changed()
    }

    /// A slave takes the master's whole table when its data version changed.
    pub fn replace_all(&self, w: SubscriptionGroupWrapper) -> bool {
        if *self.data_version.lock() == w.data_version {
            return false;
        }
        *self.table.write() = w.subscription_group_table;
        *self.data_version.lock() = w.data_version;
        self.file.changed();
        true
    }

    /// Removes a group; the file version to wait for, if it existed.
    pub fn delete(&self, group: &str) -> Option<u64> {
        let removed = self.table.write().remove(group).is_some();
        if !removed {
            return None;
        }
        self.data_version.lock().next();
        Some(self.file.changed())
    }

    /// Waits until file version `version` is on disk; the write's error if it failed.
    pub async fn durable(&self, version: u64) -> std::io::Result<()> {
        self.file.durable(version).await
    }

    pub fn wrapper(&self) -> SubscriptionGroupWrapper {
        SubscriptionGroupWrapper {
            subscription_group_table: self.table.read().clone(),
            data_version: self.data_version.lock().clone(),
        }
    }

    /// Writes the file now and waits for it (shutdown).
    pub fn persist(&self) -> std::io::Result<()> {
        self.file.write_now()
    }
}

impl std::fmt::Display for NoGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoGroup::Disabled => write!(f, "autoCreateSubscriptionGroup is off"),
            NoGroup::Limit(n) => write!(
                f,
                "the broker holds {n} groups, its autoCreateSubscriptionGroupLimit: create it with mqadmin updateSubGroup"
            ),
        }
    }
}
