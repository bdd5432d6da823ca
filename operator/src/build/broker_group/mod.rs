//! `BrokerGroup` → ConfigMap (one `broker.conf` per ordinal: 0 the master, N a slave with
//! `brokerId` N), headless and `<group>-master` Services, NetworkPolicy, StatefulSet with a
//! volume per pod, PodDisruptionBudget, and per-pod Services for access from outside. One
//! builder per object, each reading a spec [`validate`] has checked.
//!
//! A StatefulSet rolls pods from the highest ordinal down, one at a time, each waiting for
//! the previous to be ready: slaves first, the master last, as a config change should go.

mod config;
pub mod external;
mod network_policy;
mod ordinals;
mod pod;
mod services;
mod stateful_set;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::{labels, max_one_unavailable, meta, selector, Labels, Owner, SpecError};
use crate::crd::BrokerGroup;
use crate::validate::broker_group::{validate, ValidatedBrokerGroup};

pub use crate::validate::broker_group::MANAGED_KEYS;
pub use config::broker_conf;
pub use ordinals::{kept_replicas, master_ordinal, roll_partition};
pub use services::master_service;

pub const BROKER_PORT: i32 = 10911;
pub const VIP_PORT: i32 = 10909;
pub const HA_PORT: i32 = 10912;
/// The `app.kubernetes.io/component` label of broker pods.
pub const COMPONENT: &str = "broker";
const STORE: &str = "/home/rocketmq/store";
/// Label of broker pods on the node's network, which must not share a node.
pub const HOST_NETWORK_LABEL: &str = "rocketmq.rs/host-network";
/// Set by the StatefulSet controller on each of its pods.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Set by the operator on each broker pod: `master` or `slave`, following failovers.
pub const ROLE_LABEL: &str = "rocketmq.rs/role";

#[derive(Debug, Clone)]
pub struct BrokerGroupObjects {
    pub config: ConfigMap,
    pub headless: Service,
    /// `<group>-master`: the current master pod only.
    pub master: Service,
    /// The HA port for the group's own pods only (not with host networking, which
    /// NetworkPolicies do not cover); `None` when disabled.
    pub network_policy: Option<NetworkPolicy>,
    pub stateful_set: StatefulSet,
    pub pdb: PodDisruptionBudget,
    /// Per-pod Services for clients outside the cluster (`External` NodePort/LoadBalancer).
    pub external: Vec<Service>,
    /// The admin credential the pods mount; `None` without one (see [`crate::build::admin`]).
    pub admin_secret: Option<k8s_openapi::api::core::v1::Secret>,
}

/// Validates, then builds (without an admin credential: see [`objects`]).
pub fn build(
    bg: &BrokerGroup,
    owner: &Owner,
    namesrv_addr: &str,
) -> Result<BrokerGroupObjects, SpecError> {
    Ok(objects(
        &validate(bg, &owner.name, namesrv_addr)?,
        owner,
        None,
    ))
}

/// Every object of a validated group; `admin`: the credential its pods get.
pub fn objects(
    g: &ValidatedBrokerGroup,
    owner: &Owner,
    admin: Option<&rmq_remoting::Credentials>,
) -> BrokerGroupObjects {
    let labels = group_labels(g);
    let mut security = crate::build::admin::properties(admin, &g.spec().config);
    security.extend(crate::build::tls::properties(g.spec().tls.as_ref(), true));
    security.extend(crate::build::tls::acl_properties(g.spec().acl.as_ref()));
    let config = config::config_map(g, owner, &labels, &security);
    let config_hash = config::roll_hash(&config);
    let mut stateful_set = stateful_set::stateful_set(g, owner, &labels, &config_hash);
    if admin.is_some() {
        crate::build::admin::mount(&mut stateful_set, owner);
    }
    crate::build::tls::mount(&mut stateful_set, g.spec().tls.as_ref());
    crate::build::tls::mount_acl(&mut stateful_set, g.spec().acl.as_ref());
    BrokerGroupObjects {
        headless: services::headless(g, owner, &labels),
        master: services::master(g, owner, &labels),
        network_policy: network_policy::network_policy(g, owner, &labels),
        stateful_set,
        admin_secret: admin.map(|a| crate::build::admin::secret(owner, &labels, a)),
        pdb: max_one_unavailable(meta(owner, g.name.clone(), labels.clone()), pod_selector(g)),
        external: g
            .addresses
            .external
            .map(|e| external::services(owner, &g.name, &labels, e, g.replicas))
            .unwrap_or_default(),
        config,
    }
}

/// The labels of every object of the group.
fn group_labels(g: &ValidatedBrokerGroup) -> Labels {
    let mut l = labels(&g.name, COMPONENT);
    l.insert("rocketmq.rs/cluster".into(), g.spec().cluster_name.clone());
    l
}

/// Selects the group's pods.
fn pod_selector(g: &ValidatedBrokerGroup) -> Labels {
    selector(&g.name, COMPONENT)
}
