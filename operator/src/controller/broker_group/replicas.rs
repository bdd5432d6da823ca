//! Per-replica status of a broker group from its pods: ready or not, and the address the broker
//! advertises, found the way `mqbroker` finds it (pod IP, a named interface, or a CIDR).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::build::broker_group::BROKER_PORT;
use crate::build::external;
use crate::crd::broker_group::{AddressMode, Addressing, ReplicaRole, ReplicaStatus};

/// Multus' `k8s.v1.cni.cncf.io/network-status` annotation: one entry per attached network.
const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

#[derive(Deserialize)]
struct Attachment {
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    ips: Vec<String>,
}

/// Every replica 0..replicas, in ordinal order; a missing pod is reported not ready, without
/// an address. `lb_hosts` holds each pod's load-balancer address (`External` LoadBalancer).
pub fn replica_status(
    group: &str,
    replicas: i32,
    addressing: &Addressing,
    pods: &[Pod],
    lb_hosts: &[Option<String>],
) -> Vec<ReplicaStatus> {
    replica_status_with_master(group, replicas, 0, addressing, pods, lb_hosts)
}

/// As [`replica_status`], with the master at ordinal `master` (after a failover).
pub fn replica_status_with_master(
    group: &str,
    replicas: i32,
    master: i32,
    addressing: &Addressing,
    pods: &[Pod],
    lb_hosts: &[Option<String>],
) -> Vec<ReplicaStatus> {
    (0..replicas.max(0))
        .map(|i| {
            let pod_name = format!("{group}-{i}");
            let pod = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(&pod_name));
            ReplicaStatus {
                pod: pod_name,
                broker_id: crate::build::failover::broker_id(i, master),
                role: ReplicaRole::of(i == master),
                address: match (addressing.mode, addressing.external.as_ref()) {
                    (AddressMode::External, Some(ext)) => external::advertised_address(
                        ext,
                        i,
                        pod.and_then(|p| p.status.as_ref()?.host_ip.as_deref()),
                        lb_hosts.get(i as usize).and_then(|h| h.as_deref()),
                    ),
                    _ => pod
                        .and_then(|p| advertised_ip(p, addressing))
                        .map(|ip| match ip {
                            IpAddr::V4(v4) => format!("{v4}:{BROKER_PORT}"),
                            IpAddr::V6(v6) => format!("[{v6}]:{BROKER_PORT}"),
                        }),
                },
                ready: pod.is_some_and(is_ready),
            }
        })
        .collect()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn attachments(pod: &Pod) -> Vec<Attachment> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NETWORK_STATUS))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let status = pod.status.as_ref();
    let mut ips: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|v| v.iter().filter_map(|p| p.ip.parse().ok()).collect())
        .unwrap_or_default();
    if ips.is_empty() {
        ips.extend(
            status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips
}

fn advertised_ip(pod: &Pod, addressing: &Addressing) -> Option<IpAddr> {
    match addressing.mode {
        AddressMode::PodIp => pod_ips(pod).into_iter().next(),
        AddressMode::Interface => {
            let want = addressing.interface.as_deref()?;
            attachments(pod)
                .into_iter()
                .find(|a| a.interface.as_deref() == Some(want))
                .and_then(|a| a.ips.iter().find_map(|ip| ip.parse().ok()))
        }
        AddressMode::Cidr => {
            let cidr = addressing.cidr.as_deref()?;
            let mut candidates = pod_ips(pod);
            for a in attachments(pod) {
                candidates.extend(a.ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()));
            }
            candidates.into_iter().find(|ip| in_cidr(*ip, cidr))
        }
        // Reported by `external::advertised_address` instead.
        AddressMode::External => None,
    }
}

/// Whether `ip` lies in `cidr` ("10.20.0.0/16", "fd00::/64"); false for a malformed CIDR.
pub fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool, ip: &str, net: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": { NETWORK_STATUS: net.to_string() } },
            "status": {
                "podIP": ip, "podIPs": [{ "ip": ip }],
                "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }]
            }
        }))
        .unwrap()
    }

    fn addressing(v: serde_json::Value) -> Addressing {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_ip_readiness_and_missing_pods() {
        let pods = [
            pod("b-0", true, "10.0.0.5", json!([])),
            pod("b-2", false, "10.0.0.7", json!([])),
        ];
        let s = replica_status("b", 3, &Addressing::default(), &pods, &[]);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].role, s[0].ready), (ReplicaRole::Master, true));
        assert_eq!(s[0].address.as_deref(), Some("10.0.0.5:10911"));
        assert_eq!(
            (s[1].ready, s[1].address.as_deref()),
            (false, None),
            "b-1 has no pod"
        );
        assert_eq!(
            (s[2].role, s[2].broker_id, s[2].ready),
            (ReplicaRole::Slave, 2, false)
        );
    }

    #[test]
    fn interface_and_cidr_use_the_secondary_network() {
        let net = json!([
            { "name": "cbr0", "interface": "eth0", "ips": ["10.0.0.5"], "default": true },
            { "name": "default/storage-net", "interface": "net1", "ips": ["192.168.50.9"] }
        ]);
        let pods = [pod("b-0", true, "10.0.0.5", net)];
        let by_if = addressing(json!({ "mode": "Interface", "interface": "net1" }));
        assert_eq!(
            replica_status("b", 1, &by_if, &pods, &[])[0]
                .address
                .as_deref(),
            Some("192.168.50.9:10911")
        );
        let by_cidr = addressing(json!({ "mode": "Cidr", "cidr": "192.168.0.0/16" }));
        assert_eq!(
            replica_status("b", 1, &by_cidr, &pods, &[])[0]
                .address
                .as_deref(),
            Some("192.168.50.9:10911")
        );
        let nowhere = addressing(json!({ "mode": "Cidr", "cidr": "172.16.0.0/12" }));
        assert_eq!(
            replica_status("b", 1, &nowhere, &pods, &[])[0].address,
            None
        );
    }

    #[test]
    fn external_addresses_are_what_outside_clients_dial() {
        let mut pods = [
            pod("b-0", true, "10.0.0.5", json!([])),
            pod("b-1", true, "10.0.0.6", json!([])),
        ];
        pods[0].status.as_mut().unwrap().host_ip = Some("198.51.100.7".into());
        let node_port = addressing(json!({
            "mode": "External", "external": { "type": "NodePort", "nodePortBase": 31000 }
        }));
        let s = replica_status("b", 2, &node_port, &pods, &[]);
        assert_eq!(s[0].address.as_deref(), Some("198.51.100.7:31002"));
        assert_eq!(s[1].address, None, "b-1's node is not known yet");
        let named = addressing(json!({
            "mode": "External",
            "external": { "type": "NodePort", "nodePortBase": 31000, "advertisedHost": "mq.example.com" }
        }));
        let s = replica_status("b", 2, &named, &pods, &[]);
        assert_eq!(s[1].address.as_deref(), Some("mq.example.com:31005"));
        let lb = addressing(json!({ "mode": "External", "external": { "type": "LoadBalancer" } }));
        let s = replica_status("b", 2, &lb, &pods, &[Some("203.0.113.9".into()), None]);
        assert_eq!(s[0].address.as_deref(), Some("203.0.113.9:10911"));
        assert_eq!(s[1].address, None, "no load-balancer address yet");
        let host = addressing(json!({ "mode": "External", "external": { "type": "HostNetwork" } }));
        let s = replica_status("b", 1, &host, &pods, &[]);
        assert_eq!(s[0].address.as_deref(), Some("198.51.100.7:10911"));
    }

    #[test]
    fn cidr_matching() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_cidr(ip("10.20.3.4"), "10.20.0.0/16"));
        assert!(!in_cidr(ip("10.21.3.4"), "10.20.0.0/16"));
        assert!(in_cidr(ip("1.2.3.4"), "0.0.0.0/0"));
        assert!(in_cidr(ip("fd00::1"), "fd00::/64"));
        assert!(!in_cidr(ip("fd00::1"), "10.0.0.0/8"));
        assert!(!in_cidr(ip("10.0.0.1"), "10.0.0.0/33"));
        assert!(!in_cidr(ip("10.0.0.1"), "garbage"));
    }
}
