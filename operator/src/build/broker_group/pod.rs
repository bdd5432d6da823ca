//! The broker pod template: `mqbroker` started with its ordinal's `broker.conf` plus the
//! addresses only known in the pod, the config and store volumes, and its placement.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, SecurityContext, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{external, pod_selector, BROKER_PORT, HA_PORT, HOST_NETWORK_LABEL, STORE, VIP_PORT};
use crate::build::{one_per_node, spread, Labels, DEFAULT_BROKER_IMAGE};
use crate::crd::broker_group::ExternalType;
use crate::validate::broker_group::ValidatedBrokerGroup;

pub(super) fn template(
    g: &ValidatedBrokerGroup,
    labels: &Labels,
    config_hash: &str,
) -> PodTemplateSpec {
    let spec = g.spec();
    let mut pod_labels = labels.clone();
    pod_labels.extend(spec.pod.labels.clone());
    if g.host_network() {
        pod_labels.insert(HOST_NETWORK_LABEL.into(), "true".into());
    }
    let mut annotations = spec.pod.annotations.clone();
    if spec.metrics.enabled {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), spec.metrics.port.to_string());
        annotations.insert("prometheus.io/path".into(), "/metrics".into());
    }
    annotations.insert("rocketmq.rs/config-hash".into(), config_hash.to_string());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(pod_spec(g)),
    }
}

fn pod_spec(g: &ValidatedBrokerGroup) -> PodSpec {
    let spec = g.spec();
    let host_network = g.host_network();
    PodSpec {
        containers: vec![container(g)],
        volumes: Some(volumes(g)),
        affinity: Some(affinity(g)),
        host_network: host_network.then_some(true),
        dns_policy: host_network.then(|| "ClusterFirstWithHostNet".into()),
        tolerations: (!spec.pod.tolerations.is_empty()).then(|| spec.pod.tolerations.clone()),
        node_selector: (!spec.pod.node_selector.is_empty()).then(|| spec.pod.node_selector.clone()),
        priority_class_name: spec.pod.priority_class_name.clone(),
        service_account_name: spec.pod.service_account_name.clone(),
        security_context: Some(crate::build::non_root_pod()),
        // Time to unregister, flush and write a clean checkpoint after SIGTERM.
        termination_grace_period_seconds: Some(60),
        ..Default::default()
    }
}

/// The entrypoint: the pod's ordinal picks its config; the addresses only the pod knows are
/// appended (the pod IP is what clients and slaves reach).
fn start_script(g: &ValidatedBrokerGroup) -> String {
    let mut script = String::from(
        "set -e; i=${HOSTNAME##*-}; cp /etc/rocketmq/broker-$i.conf /tmp/broker.conf; ",
    );
    if g.addresses.ip1_from_pod {
        script.push_str("echo \"brokerIP1=$POD_IP\" >> /tmp/broker.conf; ");
    }
    match g.addresses.external {
        Some(e) if e.type_ == ExternalType::NodePort && e.advertised_host.is_none() => {
            script.push_str("echo \"brokerIP1=$HOST_IP\" >> /tmp/broker.conf; ");
        }
        Some(e) if e.type_ == ExternalType::HostNetwork => {
            script.push_str("echo \"brokerIP1=$HOST_IP\" >> /tmp/broker.conf; ");
        }
        Some(e) if e.type_ == ExternalType::LoadBalancer => {
            // The operator fills this pod's entry once the cloud has given its Service an
            // address; the mounted ConfigMap catches up without a restart.
            script.push_str(&format!(
                "f={dir}/broker-$i.host; [ -s $f ] || echo \"waiting for the load-balancer address of $HOSTNAME\"; \
                 while [ ! -s $f ]; do sleep 2; done; echo \"brokerIP1=$(cat $f)\" >> /tmp/broker.conf; ",
                dir = external::HOSTS_DIR
            ));
        }
        _ => {}
    }
    if g.addresses.ip2_from_pod {
        script.push_str("echo \"brokerIP2=$POD_IP\" >> /tmp/broker.conf; ");
    }
    script.push_str("exec mqbroker -c /tmp/broker.conf");
    script
}

fn container(g: &ValidatedBrokerGroup) -> Container {
    let spec = g.spec();
    let cport = |n: &str, p: i32| ContainerPort {
        name: Some(n.into()),
        container_port: p,
        ..Default::default()
    };
    let mut ports = vec![
        cport("remoting", BROKER_PORT),
        cport("vip", VIP_PORT),
        cport("ha", HA_PORT),
    ];
    if spec.metrics.enabled {
        ports.push(cport("metrics", spec.metrics.port));
    }
    let tcp_probe = |delay: i32, period: i32, failures: i32| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(BROKER_PORT),
            host: None,
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    let field_env = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: "/etc/rocketmq".into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "store".into(),
            mount_path: STORE.into(),
            ..Default::default()
        },
    ];
    if g.external_type() == Some(ExternalType::LoadBalancer) {
        mounts.push(VolumeMount {
            name: "external".into(),
            mount_path: external::HOSTS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    Container {
        name: "mqbroker".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| DEFAULT_BROKER_IMAGE.into()),
        ),
        command: Some(vec!["/bin/sh".into(), "-c".into(), start_script(g)]),
        env: Some(vec![
            field_env("POD_IP", "status.podIP"),
            field_env("HOST_IP", "status.hostIP"),
        ]),
        ports: Some(ports),
        // Readiness feeds failover: a hung broker is unready within ~10 s.
        readiness_probe: Some(tcp_probe(5, 5, 2)),
        liveness_probe: Some(tcp_probe(60, 10, 6)),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The group's `broker-N.conf` files, and with a LoadBalancer the addresses the operator
/// publishes.
fn volumes(g: &ValidatedBrokerGroup) -> Vec<Volume> {
    let config_map = |name: String| ConfigMapVolumeSource {
        name,
        ..Default::default()
    };
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(config_map(format!("{}-config", g.name))),
        ..Default::default()
    }];
    if g.external_type() == Some(ExternalType::LoadBalancer) {
        volumes.push(Volume {
            name: "external".into(),
            config_map: Some(config_map(external::hosts_config_name(&g.name))),
            ..Default::default()
        });
    }
    volumes
}

fn affinity(g: &ValidatedBrokerGroup) -> Affinity {
    match (&g.spec().pod.affinity, g.host_network()) {
        (Some(a), _) => a.clone(),
        // Brokers on the node's network share its ports: never two on one node, whatever group.
        (None, true) => one_per_node(BTreeMap::from([(
            HOST_NETWORK_LABEL.to_string(),
            "true".to_string(),
        )])),
        (None, false) => spread(pod_selector(g)),
    }
}
