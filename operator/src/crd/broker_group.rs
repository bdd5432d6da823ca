//! `BrokerGroup`: one RocketMQ `brokerName` — a master (ordinal 0) and its slaves.

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
    kind = "BrokerGroup",
    namespaced,
    status = "BrokerGroupStatus",
    shortname = "rmqbg",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterName"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.brokerRole"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Master","type":"string","jsonPath":".status.masterPod"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BrokerGroupSpec {
    /// `brokerClusterName`.
    #[serde(default = "default_cluster")]
    pub cluster_name: String,
    /// `brokerName`; the object's name when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_name: Option<String>,
    /// Where the name servers are.
    pub name_server: NameServerRef,
    /// Master plus slaves: 1 is a lone master, 3 a master and two slaves.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: i32,
    #[serde(default)]
    pub broker_role: BrokerRole,
    #[serde(default)]
    pub flush_disk_type: FlushDiskType,
    /// The volume each broker pod gets. Fixed once the group exists: a StatefulSet's volume
    /// claims cannot change, so the API server refuses the edit.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "storage is immutable: a StatefulSet's volume claims cannot change; resize the PersistentVolumeClaims directly (if the storage class allows expansion) or create a new BrokerGroup"
    }]))]
    pub storage: StorageSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra `broker.conf` properties, RocketMQ's names (`autoCreateTopicEnable`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub addressing: Addressing,
    #[serde(default)]
    pub metrics: MetricsSpec,
    #[serde(default)]
    pub pod: PodOverrides,
    /// Promoting a slave when the master stays down.
    #[serde(default)]
    pub failover: FailoverSpec,
    /// A NetworkPolicy that lets only the group's own pods reach the HA port (defence in
    /// depth: the HA handshake is signed with the cluster's admin credential).
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// TLS on the remoting, VIP, HA and metrics ports, and on the brokers' own connections
    /// (to the name servers, which should then have TLS too, and to the master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::TlsSpec>,
    /// RocketMQ's plain ACL for clients, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<super::AclSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        NetworkPolicySpec { enabled: true }
    }
}

fn default_cluster() -> String {
    "DefaultCluster".into()
}

fn default_replicas() -> i32 {
    1
}

/// The name servers a broker registers with: a `NameServer` object, or addresses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameServerRef {
    /// A `NameServer` in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Or a `host:port;host:port` list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The master's replication mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BrokerRole {
    #[serde(rename = "SYNC_MASTER")]
    SyncMaster,
    #[default]
    #[serde(rename = "ASYNC_MASTER")]
    AsyncMaster,
}

impl From<BrokerRole> for rmq_remoting::role::BrokerRole {
    fn from(r: BrokerRole) -> Self {
        match r {
            BrokerRole::SyncMaster => rmq_remoting::role::BrokerRole::SyncMaster,
            BrokerRole::AsyncMaster => rmq_remoting::role::BrokerRole::AsyncMaster,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FlushDiskType {
    #[default]
    #[serde(rename = "ASYNC_FLUSH")]
    AsyncFlush,
    #[serde(rename = "SYNC_FLUSH")]
    SyncFlush,
}

impl From<FlushDiskType> for rmq_remoting::role::FlushDiskType {
    fn from(f: FlushDiskType) -> Self {
        match f {
            FlushDiskType::AsyncFlush => rmq_remoting::role::FlushDiskType::AsyncFlush,
            FlushDiskType::SyncFlush => rmq_remoting::role::FlushDiskType::SyncFlush,
        }
    }
}

/// When and whom the operator promotes if the group's master pod stays unready.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    #[serde(default = "yes_failover")]
    pub enabled: bool,
    /// How long the master pod must have been unready (and the broker silent over the
    /// wire) before a slave is promoted.
    #[serde(default = "default_grace")]
    #[schemars(range(min = 5, max = 3600))]
    pub grace_seconds: i64,
    /// A slave further behind the master's last known offset than this is not in sync and
    /// is never promoted.
    #[serde(default = "default_max_lag")]
    #[schemars(range(min = 0))]
    pub max_lag_bytes: i64,
}

fn yes_failover() -> bool {
    true
}

/// With the kubelet's ~1 s to see a crashed container, a switch within ~10 s (RocketMQ 5's
/// controller figure), while a broker whose container restarts at once usually beats it.
fn default_grace() -> i64 {
    8
}

fn default_max_lag() -> i64 {
    256 * 1024 * 1024
}

impl Default for FailoverSpec {
    fn default() -> Self {
        FailoverSpec {
            enabled: true,
            grace_seconds: default_grace(),
            max_lag_bytes: default_max_lag(),
        }
    }
}

/// The volume each broker pod gets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// e.g. `20Gi`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// What address a broker advertises (`brokerIP1`) and replicates on (`brokerIP2`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Addressing {
    #[serde(default)]
    pub mode: AddressMode,
    /// Interface to take the address from (`Interface` mode), e.g. `net1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Network to take the address from (`Cidr` mode), e.g. `10.20.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Replication address selection, when it differs from the client one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha_interface: Option<String>,
    /// Per-pod Services for clients outside the cluster (`External` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalAccess>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AddressMode {
    /// The pod IP (downward API).
    #[default]
    PodIp,
    /// The address of a named interface (multi-NIC pods).
    Interface,
    /// The first address inside a CIDR (multi-NIC pods).
    Cidr,
    /// An address clients outside the cluster reach: see `external`.
    External,
}

/// How clients outside the cluster reach each broker (`External` mode). The broker
/// advertises that address (`brokerIP1`, `brokerAdvertisedPort`); replication between the
/// group's pods stays on the pod network (`brokerIP2`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccess {
    #[serde(rename = "type")]
    pub type_: ExternalType,
    /// `NodePort` only: the name or IPv4 address clients use to reach the nodes (e.g. a DNS
    /// name in front of them). Unset: each broker advertises the IP of the node it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"))]
    pub advertised_host: Option<String>,
    /// `NodePort` only, required: pod N gets node port `nodePortBase + 3N + 2` for remoting
    /// and `nodePortBase + 3N` for the VIP channel (`listenPort - 2`, as clients derive it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port_base: Option<i32>,
    /// Annotations on each per-pod Service (cloud load-balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `LoadBalancer` only: client networks allowed in, e.g. `203.0.113.0/24`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExternalType {
    /// One NodePort Service per pod, on fixed ports from `nodePortBase`.
    NodePort,
    /// One LoadBalancer Service per pod; a broker starts once its Service has an address.
    LoadBalancer,
    /// The pods use the nodes' network (one broker per node) and advertise the node's IP.
    HostNetwork,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_metrics_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn yes() -> bool {
    true
}

fn default_metrics_port() -> i32 {
    5557
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec {
            enabled: true,
            port: default_metrics_port(),
        }
    }
}

/// A replica's place in its group.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReplicaRole {
    #[serde(rename = "MASTER")]
    Master,
    #[default]
    #[serde(rename = "SLAVE")]
    Slave,
}

impl ReplicaRole {
    pub fn of(is_master: bool) -> ReplicaRole {
        if is_master {
            ReplicaRole::Master
        } else {
            ReplicaRole::Slave
        }
    }
}

/// One broker pod as the operator sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub pod: String,
    pub broker_id: i64,
    /// `MASTER` or `SLAVE`.
    pub role: ReplicaRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default)]
    pub ready: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerGroupStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_pod: Option<String>,
    /// The master's term: raised by each failover or switchover.
    #[serde(default)]
    pub epoch: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
}
