//! Access from outside the cluster (`addressing.mode: External`): one Service per broker pod
//! (NodePort or LoadBalancer) or the node's own network, and the address each broker
//! advertises through it.
//!
//! A RocketMQ client connects to exactly the address a broker registered, so every broker
//! needs an address and port of its own that reach that pod and no other.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BROKER_PORT, POD_NAME_LABEL, VIP_PORT};
use crate::build::{meta, Owner};
use crate::crd::broker_group::{ExternalAccess, ExternalType};

/// Label on per-pod Services, so stale ones (scale-down, mode change) can be found.
pub const EXTERNAL_LABEL: &str = "rocketmq.rs/external";
/// Where broker pods see the load-balancer addresses the operator publishes.
pub const HOSTS_DIR: &str = "/etc/rocketmq-external";

/// Remoting node port of pod `ordinal`; its VIP-channel port is two below, as clients derive it.
pub fn node_port(base: i32, ordinal: i32) -> i32 {
    base + 3 * ordinal + 2
}

/// Name of the Service that exposes pod `ordinal` outside the cluster.
pub fn service_name(group: &str, ordinal: i32) -> String {
    format!("{group}-{ordinal}-external")
}

/// Name of the ConfigMap holding each pod's load-balancer address.
pub fn hosts_config_name(group: &str) -> String {
    format!("{group}-external")
}

/// The per-pod Services (none for `HostNetwork`).
pub fn services(
    owner: &Owner,
    group: &str,
    labels: &BTreeMap<String, String>,
    ext: &ExternalAccess,
    replicas: i32,
) -> Vec<Service> {
    if ext.type_ == ExternalType::HostNetwork {
        return Vec::new();
    }
    (0..replicas)
        .map(|i| {
            let mut l = labels.clone();
            l.insert(EXTERNAL_LABEL.into(), "true".into());
            let mut metadata = meta(owner, service_name(group, i), l);
            if !ext.annotations.is_empty() {
                metadata.annotations = Some(ext.annotations.clone());
            }
            let port = |name: &str, port: i32, target: i32, node_port: Option<i32>| ServicePort {
                name: Some(name.into()),
                port,
                target_port: Some(IntOrString::Int(target)),
                node_port,
                protocol: Some("TCP".into()),
                ..Default::default()
            };
            let (type_, ports, policy) = match ext.type_ {
                ExternalType::NodePort => {
                    let np = node_port(ext.node_port_base.unwrap_or(30000), i);
                    (
                        "NodePort",
                        vec![
                            port("remoting", BROKER_PORT, BROKER_PORT, Some(np)),
                            port("vip", VIP_PORT, VIP_PORT, Some(np - 2)),
                        ],
                        // A broker advertising its own node's IP must be reached through that
                        // node; a shared advertisedHost may land on any node.
                        if ext.advertised_host.is_some() {
                            "Cluster"
                        } else {
                            "Local"
                        },
                    )
                }
                _ => (
                    "LoadBalancer",
                    vec![
                        port("remoting", BROKER_PORT, BROKER_PORT, None),
                        port("vip", VIP_PORT, VIP_PORT, None),
                    ],
                    "Cluster",
                ),
            };
            Service {
                metadata,
                spec: Some(ServiceSpec {
                    type_: Some(type_.into()),
                    selector: Some(BTreeMap::from([(
                        POD_NAME_LABEL.to_string(),
                        format!("{group}-{i}"),
                    )])),
                    ports: Some(ports),
                    external_traffic_policy: Some(policy.into()),
                    load_balancer_source_ranges: (!ext.load_balancer_source_ranges.is_empty())
                        .then(|| ext.load_balancer_source_ranges.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect()
}

/// The address a cloud gave a LoadBalancer Service, once it has one.
pub fn load_balancer_host(svc: &Service) -> Option<String> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| {
            i.ip.clone()
                .filter(|s| !s.is_empty())
                .or_else(|| i.hostname.clone().filter(|s| !s.is_empty()))
        })
}

/// `broker-N.host` per pod: the load-balancer address it must advertise, empty until known.
/// Pods mount it and start their broker once their entry is filled.
pub fn hosts_config(
    owner: &Owner,
    group: &str,
    labels: &BTreeMap<String, String>,
    hosts: &[Option<String>],
) -> ConfigMap {
    let data = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("broker-{i}.host"), h.clone().unwrap_or_default()))
        .collect();
    ConfigMap {
        metadata: meta(owner, hosts_config_name(group), labels.clone()),
        data: Some(data),
        ..Default::default()
    }
}

/// The address pod `ordinal` advertises, if it can be known: `node_ip` is the IP of the node
/// the pod runs on, `lb_host` its Service's load-balancer address.
pub fn advertised_address(
    ext: &ExternalAccess,
    ordinal: i32,
    node_ip: Option<&str>,
    lb_host: Option<&str>,
) -> Option<String> {
    match ext.type_ {
        ExternalType::NodePort => {
            let host = ext.advertised_host.as_deref().or(node_ip)?;
            let port = node_port(ext.node_port_base?, ordinal);
            Some(format!("{host}:{port}"))
        }
        ExternalType::LoadBalancer => lb_host.map(|h| format!("{h}:{BROKER_PORT}")),
        ExternalType::HostNetwork => node_ip.map(|h| format!("{h}:{BROKER_PORT}")),
    }
}
