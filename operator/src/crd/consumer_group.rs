//! `ConsumerGroup`: subscription-group settings declared on the brokers of a cluster.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CommonStatus;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rocketmq.rs",
    version = "v1alpha1",
    kind = "ConsumerGroup",
    namespaced,
    status = "ConsumerGroupStatus",
    shortname = "rmqcg",
    printcolumn = r#"{"name":"Group","type":"string","jsonPath":".spec.groupName"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterName"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupSpec {
    /// The RocketMQ group; the object's name when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[%|a-zA-Z0-9_-]{1,255}$"))]
    pub group_name: Option<String>,
    #[serde(default = "default_cluster")]
    pub cluster_name: String,
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 64))]
    pub retry_queue_nums: i32,
    /// `maxReconsumeTimes` before a message goes to the dead-letter topic.
    #[serde(default = "sixteen")]
    #[schemars(range(min = 0, max = 64))]
    pub retry_max_times: i32,
    #[serde(default = "yes")]
    pub consume_broadcast_enable: bool,
    #[serde(default = "yes")]
    pub consume_enable: bool,
    #[serde(default = "yes")]
    pub consume_from_min_enable: bool,
    #[serde(default)]
    pub consume_message_orderly: bool,
}

fn default_cluster() -> String {
    "DefaultCluster".into()
}

fn one() -> i32 {
    1
}

fn sixteen() -> i32 {
    16
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub brokers: std::collections::BTreeMap<String, String>,
}
