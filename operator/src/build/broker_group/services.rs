//! The group's in-cluster Services: headless (every pod, for the StatefulSet's DNS names) and
//! `<group>-master` (the current master only). Per-pod external Services are in `external`.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{pod_selector, BROKER_PORT, COMPONENT, HA_PORT, POD_NAME_LABEL, VIP_PORT};
use crate::build::{meta, selector, Labels, Owner};
use crate::validate::broker_group::ValidatedBrokerGroup;

/// Remoting, VIP, HA and (when enabled) metrics.
fn ports(g: &ValidatedBrokerGroup) -> Vec<ServicePort> {
    let port = |n: &str, p: i32| ServicePort {
        name: Some(n.into()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        ..Default::default()
    };
    let mut ports = vec![
        port("remoting", BROKER_PORT),
        port("vip", VIP_PORT),
        port("ha", HA_PORT),
    ];
    let metrics = &g.spec().metrics;
    if metrics.enabled {
        ports.push(port("metrics", metrics.port));
    }
    ports
}

pub(super) fn headless(g: &ValidatedBrokerGroup, owner: &Owner, labels: &Labels) -> Service {
    Service {
        metadata: meta(owner, format!("{}-headless", g.name), labels.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(pod_selector(g)),
            ports: Some(ports(g)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `<group>-master` on the master the status records.
pub(super) fn master(g: &ValidatedBrokerGroup, owner: &Owner, labels: &Labels) -> Service {
    let pod = format!("{}-{}", g.name, g.master);
    master_service(owner, &g.name, &pod, labels, ports(g))
}

/// The Service that always selects the group's current master pod (`<group>-master`).
pub fn master_service(
    owner: &Owner,
    group: &str,
    master_pod: &str,
    labels: &Labels,
    ports: Vec<ServicePort>,
) -> Service {
    let mut selector = selector(group, COMPONENT);
    selector.insert(POD_NAME_LABEL.into(), master_pod.to_string());
    Service {
        metadata: meta(owner, format!("{group}-master"), labels.clone()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}
