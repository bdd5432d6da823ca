//! Subscription groups (`config/subscriptionGroup.json`), auto-created when enabled.

use std::collections::HashMap;
use std::path::PathBuf;

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
    path: PathBuf,
    table: RwLock<HashMap<String, SubscriptionGroupConfig>>,
    data_version: Mutex<DataVersion>,
}

impl SubscriptionGroupManager {
    pub fn load(path: PathBuf) -> SubscriptionGroupManager {
        let w = super::load(&path, |b| {
            rmq_remoting::fastjson::from_slice::<SubscriptionGroupWrapper>(b).ok()
        })
        .unwrap_or_default();
        SubscriptionGroupManager {
            path,
            table: RwLock::new(w.subscription_group_table),
            data_version: Mutex::new(w.data_version),
        }
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.table.read().get(group).cloned()
    }

    /// The group's config, created with defaults when `auto_create` allows.
    pub fn find_or_create(
        &self,
        group: &str,
        auto_create: bool,
    ) -> Option<SubscriptionGroupConfig> {
        if let Some(g) = self.get(group) {
            return Some(g);
        }
        if !auto_create {
            return None;
        }
        let g = SubscriptionGroupConfig {
            group_name: group.to_string(),
            ..Default::default()
        };
        self.put(g.clone());
        Some(g)
    }

    pub fn put(&self, g: SubscriptionGroupConfig) {
        tracing::info!(group = %g.group_name, "subscription group updated");
        self.table.write().insert(g.group_name.clone(), g);
        self.data_version.lock().next();
        self.persist();
    }

    /// A slave takes the master's whole table when its data version changed.
    pub fn replace_all(&self, w: SubscriptionGroupWrapper) -> bool {
        if *self.data_version.lock() == w.data_version {
            return false;
        }
        *self.table.write() = w.subscription_group_table;
        *self.data_version.lock() = w.data_version;
        self.persist();
        true
    }

    pub fn delete(&self, group: &str) -> bool {
        let removed = self.table.write().remove(group).is_some();
        if removed {
            self.data_version.lock().next();
            self.persist();
        }
        removed
    }

    pub fn wrapper(&self) -> SubscriptionGroupWrapper {
        SubscriptionGroupWrapper {
            subscription_group_table: self.table.read().clone(),
            data_version: self.data_version.lock().clone(),
        }
    }

    pub fn persist(&self) {
        let body = || serde_json::to_vec_pretty(&self.wrapper()).unwrap_or_default();
        if let Err(e) = super::persist(&self.path, body) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot persist subscription groups");
        }
    }
}
