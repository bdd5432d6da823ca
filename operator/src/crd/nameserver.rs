//! `NameServer`: a set of `mqnamesrv` pods behind stable DNS names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, PodOverrides};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rocketmq.rs",
    version = "v1alpha1",
    kind = "NameServer",
    namespaced,
    status = "NameServerStatus",
    shortname = "rmqns",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".status.address"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NameServerSpec {
    /// Number of name server pods (each is independent; brokers register with all).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Image running `mqnamesrv`; the operator's default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra `NamesrvConfig` properties (`orderMessageEnable`, `brokerChannelExpiredTime`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub service: NameServerServiceSpec,
    #[serde(default)]
    pub pod: PodOverrides,
    /// Serve Prometheus metrics on this port (0: off).
    #[serde(default = "default_metrics_port")]
    #[schemars(range(min = 0, max = 65535))]
    pub metrics_port: i32,
    /// TLS on the remoting and metrics ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::TlsSpec>,
}

fn default_replicas() -> i32 {
    2
}

fn default_metrics_port() -> i32 {
    5557
}

/// The client Service in front of the name servers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameServerServiceSpec {
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    #[serde(default = "default_service_type", rename = "type")]
    #[schemars(regex(pattern = "^(ClusterIP|NodePort|LoadBalancer)$"))]
    pub type_: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for NameServerServiceSpec {
    fn default() -> Self {
        NameServerServiceSpec {
            type_: default_service_type(),
            annotations: BTreeMap::new(),
        }
    }
}

fn default_service_type() -> String {
    "ClusterIP".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameServerStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(default)]
    pub ready_replicas: i32,
    /// `host:9876;host:9876` of every pod, as brokers and clients use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}
