//! `Topic`: a topic declared on every master of a cluster (or of some broker groups).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CommonStatus;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rocketmq.rs",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "rmqtopic",
    printcolumn = r#"{"name":"Topic","type":"string","jsonPath":".spec.topicName"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterName"}"#,
    printcolumn = r#"{"name":"Queues","type":"integer","jsonPath":".spec.writeQueueNums"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The RocketMQ topic; the object's name when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[%|a-zA-Z0-9_-]{1,127}$"))]
    pub topic_name: Option<String>,
    /// Create on every master of this cluster...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// ...or of these `BrokerGroup`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broker_groups: Vec<String>,
    #[serde(default = "default_queues")]
    #[schemars(range(min = 1, max = 1024))]
    pub read_queue_nums: i32,
    #[serde(default = "default_queues")]
    #[schemars(range(min = 1, max = 1024))]
    pub write_queue_nums: i32,
    #[serde(default)]
    pub permission: Permission,
    /// An ordered topic (order config published to the name servers).
    #[serde(default)]
    pub order: bool,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_queues() -> i32 {
    8
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Permission {
    #[default]
    ReadWrite,
    ReadOnly,
    WriteOnly,
}

impl Permission {
    /// RocketMQ's `perm` bits.
    pub fn perm(self) -> i32 {
        match self {
            Permission::ReadWrite => 6,
            Permission::ReadOnly => 4,
            Permission::WriteOnly => 2,
        }
    }
}

/// What deleting the object does to the topic on the brokers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete it.
    #[default]
    Delete,
    /// Leave it.
    Retain,
    /// Delete it only when no consumer group has unconsumed messages in it.
    DeleteIfEmpty,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Per broker: `brokerName → Created | error text`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub brokers: std::collections::BTreeMap<String, String>,
}
