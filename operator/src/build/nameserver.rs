//! `NameServer` → ConfigMap, headless and client Services, StatefulSet, PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction,
    Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::crd::NameServer;

/// Everything a `NameServer` consists of.
#[derive(Debug, Clone)]
pub struct NameServerObjects {
    pub config: ConfigMap,
    pub headless: Service,
    pub service: Service,
    pub stateful_set: StatefulSet,
    pub pdb: PodDisruptionBudget,
}

const COMPONENT: &str = "nameserver";

/// The headless Service's name, which resolves to every name-server pod: what brokers are
/// given, so that scaling the name servers changes no `broker.conf` and restarts no broker
/// (`mqbroker` re-resolves it on every registration).
pub fn headless_address(name: &str, namespace: &str) -> String {
    format!("{name}-headless.{namespace}.svc:{NAMESRV_PORT}")
}

/// The `host:port;...` list of every name server pod, by stable DNS name (for clients).
pub fn address(name: &str, namespace: &str, replicas: i32) -> String {
    (0..replicas.max(1))
        .map(|i| format!("{name}-{i}.{name}-headless.{namespace}.svc:{NAMESRV_PORT}"))
        .collect::<Vec<_>>()
        .join(";")
}

pub fn build(ns: &NameServer, owner: &Owner) -> Result<NameServerObjects, SpecError> {
    let spec = &ns.spec;
    if !(1..=9).contains(&spec.replicas) {
        return Err(SpecError::Invalid(format!(
            "replicas must be 1..=9, got {}",
            spec.replicas
        )));
    }
    for key in [
        "listenPort",
        "kvConfigPath",
        "configStorePath",
        "metricsPort",
    ] {
        if spec.config.contains_key(key) {
            return Err(SpecError::Invalid(format!(
                "config key `{key}` is managed by the operator"
            )));
        }
    }
    let name = owner.name.clone();
    let labels = labels(&name, COMPONENT);
    let selector = selector(&name, COMPONENT);

    let mut props = spec.config.clone();
    props.insert("listenPort".into(), NAMESRV_PORT.to_string());
    props.insert(
        "kvConfigPath".into(),
        "/home/rocketmq/namesrv/kvConfig.json".into(),
    );
    props.insert(
        "configStorePath".into(),
        "/home/rocketmq/namesrv/namesrv.properties".into(),
    );
    props.insert("metricsPort".into(), spec.metrics_port.to_string());
    let conf = properties(&props);
    let config = ConfigMap {
        metadata: meta(owner, format!("{name}-config"), labels.clone()),
        data: Some(BTreeMap::from([("namesrv.conf".to_string(), conf.clone())])),
        ..Default::default()
    };

    let port = |n: &str, p: i32| ServicePort {
        name: Some(n.into()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        ..Default::default()
    };
    let headless = Service {
        metadata: meta(owner, format!("{name}-headless"), labels.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Brokers must find every pod, ready or not yet, to register.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector.clone()),
            ports: Some(vec![port("remoting", NAMESRV_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut svc_meta = meta(owner, name.clone(), labels.clone());
    if !spec.service.annotations.is_empty() {
        svc_meta.annotations = Some(spec.service.annotations.clone());
    }
    let service = Service {
        metadata: svc_meta,
        spec: Some(ServiceSpec {
            type_: Some(spec.service.type_.clone()),
            selector: Some(selector.clone()),
            ports: Some(vec![port("remoting", NAMESRV_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut pod_labels = labels.clone();
    pod_labels.extend(spec.pod.labels.clone());
    let mut annotations = spec.pod.annotations.clone();
    if spec.metrics_port > 0 {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), spec.metrics_port.to_string());
        annotations.insert("prometheus.io/path".into(), "/metrics".into());
    }
    // A config change rolls the pods.
    annotations.insert(
        "rocketmq.rs/config-hash".into(),
        format!("{:016x}", fnv(conf.as_bytes())),
    );
    let tcp_probe = |delay: i32| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(NAMESRV_PORT),
            host: None,
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(10),
        ..Default::default()
    };
    let mut ports = vec![ContainerPort {
        name: Some("remoting".into()),
        container_port: NAMESRV_PORT,
        ..Default::default()
    }];
    if spec.metrics_port > 0 {
        ports.push(ContainerPort {
            name: Some("metrics".into()),
            container_port: spec.metrics_port,
            ..Default::default()
        });
    }
    let container = Container {
        name: "mqnamesrv".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESRV_IMAGE.into()),
        ),
        args: Some(vec![
            "mqnamesrv".into(),
            "-c".into(),
            "/etc/rocketmq/namesrv.conf".into(),
        ]),
        ports: Some(ports),
        readiness_probe: Some(tcp_probe(3)),
        liveness_probe: Some(tcp_probe(30)),
        resources: spec.resources.clone(),
        volume_mounts: Some(vec![VolumeMount {
            name: "config".into(),
            mount_path: "/etc/rocketmq".into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: format!("{name}-config"),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        affinity: Some(
            spec.pod
                .affinity
                .clone()
                .unwrap_or_else(|| spread(selector.clone())),
        ),
        tolerations: (!spec.pod.tolerations.is_empty()).then(|| spec.pod.tolerations.clone()),
        node_selector: (!spec.pod.node_selector.is_empty()).then(|| spec.pod.node_selector.clone()),
        priority_class_name: spec.pod.priority_class_name.clone(),
        service_account_name: spec.pod.service_account_name.clone(),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(RUN_AS_USER),
            run_as_non_root: Some(true),
            fs_group: Some(RUN_AS_USER),
            ..Default::default()
        }),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    let stateful_set = StatefulSet {
        metadata: meta(owner, name.clone(), labels.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(format!("{name}-headless")),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            pod_management_policy: Some("Parallel".into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let pdb = PodDisruptionBudget {
        metadata: meta(owner, name.clone(), labels),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(NameServerObjects {
        config,
        headless,
        service,
        stateful_set,
        pdb,
    })
}

/// FNV-1a: a stable hash for config-change annotations (no extra dependency).
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
