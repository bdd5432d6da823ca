//! The custom resources: `NameServer`, `BrokerGroup`, `Topic`, `ConsumerGroup`, all in
//! `rocketmq.rs/v1alpha1`. Schemas come from the types (schemars); `crdgen` writes them to
//! `crds/`.

pub mod broker_group;
pub mod consumer_group;
pub mod nameserver;
pub mod topic;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use broker_group::{BrokerGroup, BrokerGroupSpec, BrokerGroupStatus};
pub use consumer_group::{ConsumerGroup, ConsumerGroupSpec, ConsumerGroupStatus};
pub use nameserver::{NameServer, NameServerSpec, NameServerStatus};
pub use topic::{Topic, TopicSpec, TopicStatus};

/// The API group of every resource here.
pub const GROUP: &str = "rocketmq.rs";
/// Annotation that pauses reconciliation of an object while `"true"`.
pub const PAUSE_ANNOTATION: &str = "rocketmq.rs/paused";
/// On a BrokerGroup: make this pod the master. A live master is switched over without
/// losing anything (made read-only, the pod catches up, is promoted, the old master steps
/// down); a master that is down is replaced at once, without waiting out the grace period.
pub const PROMOTE_ANNOTATION: &str = "rocketmq.rs/promote";

/// TLS on the pods' ports, from a Secret with `tls.crt`, `tls.key` and `ca.crt` (the layout
/// cert-manager writes). The certificate must name the pods' DNS names; `ca.crt` is what
/// peers are checked against.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// The Secret, in the object's namespace. A new certificate written to it is served
    /// without a restart.
    pub secret_name: String,
    /// `Permissive` (TLS and plaintext on the same ports, RocketMQ's default) or
    /// `Enforcing` (TLS only).
    #[serde(default)]
    pub mode: TlsModeSpec,
    /// Accept only clients presenting a certificate signed by `ca.crt`.
    #[serde(default)]
    pub require_client_certificate: bool,
}

/// RocketMQ's plain ACL (`aclEnable=true`) from a Secret holding a `plain_acl.yml`. The
/// brokers apply a change to the Secret without a restart; the ACL admin requests cannot
/// write to it (change the Secret instead).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclSpec {
    /// The Secret, in the object's namespace.
    pub secret_name: String,
    /// The key holding the file.
    #[serde(default = "default_acl_key")]
    pub key: String,
}

fn default_acl_key() -> String {
    "plain_acl.yml".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TlsModeSpec {
    #[default]
    Permissive,
    Enforcing,
}

/// Scheduling and metadata overrides for the pods an object creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra annotations on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra labels on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Replaces the default anti-affinity that spreads the pods across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Status conditions (`Ready`, `Progressing`, `Degraded`) and the generation they describe.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
