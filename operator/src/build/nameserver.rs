//! `NameServer` → ConfigMap, headless and client Services, StatefulSet, PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PodSpec, PodTemplateSpec, Probe,
    SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::crd::nameserver::NameServerSpec;
use crate::crd::NameServer;
use crate::validate::nameserver::{validate, ValidatedNameServer};

/// Everything a `NameServer` consists of.
#[derive(Debug, Clone)]
pub struct NameServerObjects {
    pub config: ConfigMap,
    pub headless: Service,
    pub service: Service,
    pub stateful_set: StatefulSet,
    pub pdb: PodDisruptionBudget,
    /// The admin credential the pods mount; `None` without one (see [`crate::build::admin`]).
    pub admin_secret: Option<k8s_openapi::api::core::v1::Secret>,
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

/// Validates, then builds.
/// Validates, then builds (without an admin credential: see [`objects`]).
pub fn build(ns: &NameServer, owner: &Owner) -> Result<NameServerObjects, SpecError> {
    Ok(objects(&validate(ns)?, owner, None))
}

/// Every object of a validated `NameServer`; `admin`: the credential its pods get.
pub fn objects(
    v: &ValidatedNameServer,
    owner: &Owner,
    admin: Option<&rmq_remoting::Credentials>,
) -> NameServerObjects {
    let spec = &v.name_server.spec;
    let labels = labels(&owner.name, COMPONENT);
    let mut security = crate::build::admin::properties(admin, &spec.config);
    security.extend(crate::build::tls::properties(spec.tls.as_ref(), false));
    let conf = conf(spec, &security);
    // A config change rolls the pods.
    let mut stateful_set = stateful_set(spec, owner, &labels, fnv(conf.as_bytes()));
    if admin.is_some() {
        crate::build::admin::mount(&mut stateful_set, owner);
    }
    crate::build::tls::mount(&mut stateful_set, spec.tls.as_ref());
    NameServerObjects {
        config: config_map(owner, &labels, &conf),
        headless: headless(owner, &labels),
        service: service(spec, owner, &labels),
        stateful_set,
        pdb: pdb(owner, &labels),
        admin_secret: admin.map(|a| crate::build::admin::secret(owner, &labels, a)),
    }
}

const CONF: &str = "namesrv.conf";

/// `namesrv.conf`: the spec's properties and the ones the operator manages.
fn conf(spec: &NameServerSpec, security: &BTreeMap<String, String>) -> String {
    let mut props = spec.config.clone();
    props.extend(security.clone());
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
    properties(&props)
}

fn config_map(owner: &Owner, labels: &Labels, conf: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(owner, format!("{}-config", owner.name), labels.clone()),
        data: Some(BTreeMap::from([(CONF.to_string(), conf.to_string())])),
        ..Default::default()
    }
}

fn remoting_port() -> ServicePort {
    ServicePort {
        name: Some("remoting".into()),
        port: NAMESRV_PORT,
        target_port: Some(IntOrString::Int(NAMESRV_PORT)),
        ..Default::default()
    }
}

fn headless(owner: &Owner, labels: &Labels) -> Service {
    Service {
        metadata: meta(owner, format!("{}-headless", owner.name), labels.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Brokers must find every pod, ready or not yet, to register.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector(&owner.name, COMPONENT)),
            ports: Some(vec![remoting_port()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The clients' Service, of the spec's type.
fn service(spec: &NameServerSpec, owner: &Owner, labels: &Labels) -> Service {
    let mut metadata = meta(owner, owner.name.clone(), labels.clone());
    if !spec.service.annotations.is_empty() {
        metadata.annotations = Some(spec.service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(spec.service.type_.clone()),
            selector: Some(selector(&owner.name, COMPONENT)),
            ports: Some(vec![remoting_port()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn stateful_set(spec: &NameServerSpec, owner: &Owner, labels: &Labels, hash: u64) -> StatefulSet {
    let name = &owner.name;
    let mut pod_labels = labels.clone();
    pod_labels.extend(spec.pod.labels.clone());
    let mut annotations = spec.pod.annotations.clone();
    if spec.metrics_port > 0 {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), spec.metrics_port.to_string());
        annotations.insert("prometheus.io/path".into(), "/metrics".into());
    }
    annotations.insert("rocketmq.rs/config-hash".into(), format!("{hash:016x}"));
    StatefulSet {
        metadata: meta(owner, name.clone(), labels.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(format!("{name}-headless")),
            selector: LabelSelector {
                match_labels: Some(selector(name, COMPONENT)),
                ..Default::default()
            },
            pod_management_policy: Some("Parallel".into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod(spec, name)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(spec: &NameServerSpec, name: &str) -> PodSpec {
    PodSpec {
        containers: vec![container(spec)],
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
                .unwrap_or_else(|| spread(selector(name, COMPONENT))),
        ),
        tolerations: (!spec.pod.tolerations.is_empty()).then(|| spec.pod.tolerations.clone()),
        node_selector: (!spec.pod.node_selector.is_empty()).then(|| spec.pod.node_selector.clone()),
        priority_class_name: spec.pod.priority_class_name.clone(),
        service_account_name: spec.pod.service_account_name.clone(),
        security_context: Some(crate::build::non_root_pod()),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    }
}

fn container(spec: &NameServerSpec) -> Container {
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
    Container {
        name: "mqnamesrv".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESRV_IMAGE.into()),
        ),
        args: Some(vec![
            "mqnamesrv".into(),
            "-c".into(),
            format!("/etc/rocketmq/{CONF}"),
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
    }
}

fn pdb(owner: &Owner, labels: &Labels) -> PodDisruptionBudget {
    max_one_unavailable(
        meta(owner, owner.name.clone(), labels.clone()),
        selector(&owner.name, COMPONENT),
    )
}
