//! The NetworkPolicy that keeps the HA port to the group's own pods: replication is
//! unauthenticated, so whoever reaches it can pose as a slave.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{pod_selector, BROKER_PORT, HA_PORT, VIP_PORT};
use crate::build::{meta, Labels, Owner};
use crate::validate::broker_group::ValidatedBrokerGroup;

/// Clients, tools and Prometheus reach the remoting, VIP and metrics ports from anywhere;
/// only the group's pods reach the HA port. `None` when disabled, or with host networking,
/// which NetworkPolicies do not cover.
pub(super) fn network_policy(
    g: &ValidatedBrokerGroup,
    owner: &Owner,
    labels: &Labels,
) -> Option<NetworkPolicy> {
    let spec = g.spec();
    if !spec.network_policy.enabled || g.host_network() {
        return None;
    }
    let port = |p: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let mut open = vec![port(BROKER_PORT), port(VIP_PORT)];
    if spec.metrics.enabled {
        open.push(port(spec.metrics.port));
    }
    let group = LabelSelector {
        match_labels: Some(pod_selector(g)),
        ..Default::default()
    };
    Some(NetworkPolicy {
        metadata: meta(owner, g.name.clone(), labels.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(group.clone()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: Some(open),
                    from: None,
                },
                NetworkPolicyIngressRule {
                    ports: Some(vec![port(HA_PORT)]),
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(group),
                        ..Default::default()
                    }]),
                },
            ]),
            ..Default::default()
        }),
    })
}
