//! The ConfigMap of `broker-N.conf` files, one per ordinal.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{external, BROKER_PORT, HA_PORT, STORE};
use crate::build::{fnv, meta, properties, Labels, Owner};
use crate::crd::broker_group::ExternalType;
use crate::crd::BrokerGroup;
use crate::validate::broker_group::ValidatedBrokerGroup;

pub(super) fn config_map(
    g: &ValidatedBrokerGroup,
    owner: &Owner,
    labels: &Labels,
    security: &BTreeMap<String, String>,
) -> ConfigMap {
    let node_port = g
        .addresses
        .external
        .filter(|e| e.type_ == ExternalType::NodePort);
    let mut data = BTreeMap::new();
    for i in 0..g.replicas {
        let mut conf = broker_conf(g.group, &g.broker_name, i, &g.namesrv_addr);
        conf.extend(g.addresses.props.clone());
        conf.extend(security.clone());
        if let Some(ext) = node_port {
            let port = external::node_port(ext.node_port_base.unwrap_or_default(), i);
            conf.insert("brokerAdvertisedPort".into(), port.to_string());
            if let Some(host) = &ext.advertised_host {
                conf.insert("brokerIP1".into(), host.clone());
            }
        }
        data.insert(format!("broker-{i}.conf"), properties(&conf));
    }
    ConfigMap {
        metadata: meta(owner, format!("{}-config", g.name), labels.clone()),
        data: Some(data),
        ..Default::default()
    }
}

/// The pod template's `rocketmq.rs/config-hash`: a change rolls the pods.
///
/// Roles and ids change at runtime (failover, switchover): the brokers switch over the wire
/// and the new config only matters at their next start, so it must not roll the pods (which
/// would restart the new master right after it took over).
pub(super) fn roll_hash(config: &ConfigMap) -> String {
    let without_roles: Vec<String> = config
        .data
        .iter()
        .flat_map(|d| d.values())
        .map(|conf| {
            conf.lines()
                .filter(|l| !l.starts_with("brokerId=") && !l.starts_with("brokerRole="))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    format!("{:016x}", fnv(format!("{without_roles:?}").as_bytes()))
}

/// `broker.conf` of one ordinal.
pub fn broker_conf(
    bg: &BrokerGroup,
    broker_name: &str,
    ordinal: i32,
    namesrv_addr: &str,
) -> BTreeMap<String, String> {
    let spec = &bg.spec;
    let mut p = spec.config.clone();
    p.insert("brokerClusterName".into(), spec.cluster_name.clone());
    p.insert("brokerName".into(), broker_name.to_string());
    let master = super::master_ordinal(bg);
    p.insert(
        "brokerId".into(),
        crate::build::failover::broker_id(ordinal, master).to_string(),
    );
    let role = if ordinal == master {
        spec.broker_role.into()
    } else {
        rmq_remoting::role::BrokerRole::Slave
    };
    p.insert("brokerRole".into(), role.to_string());
    let flush: rmq_remoting::role::FlushDiskType = spec.flush_disk_type.into();
    p.insert("flushDiskType".into(), flush.to_string());
    p.insert("namesrvAddr".into(), namesrv_addr.to_string());
    p.insert("listenPort".into(), BROKER_PORT.to_string());
    p.insert("haListenPort".into(), HA_PORT.to_string());
    p.insert("storePathRootDir".into(), STORE.into());
    p.insert(
        "metricsPort".into(),
        if spec.metrics.enabled {
            spec.metrics.port.to_string()
        } else {
            "0".into()
        },
    );
    p
}
