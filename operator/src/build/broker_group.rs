//! `BrokerGroup` → ConfigMap (one `broker.conf` per ordinal: 0 the master, N a slave with
//! `brokerId` N), headless Service, StatefulSet with a volume per pod, PodDisruptionBudget.
//!
//! A StatefulSet rolls pods from the highest ordinal down, one at a time, each waiting for
//! the previous to be ready: slaves first, the master last, as a config change should go.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SecurityContext, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use kube::ResourceExt;

use super::nameserver::fnv;
use super::*;
use crate::crd::broker_group::{AddressMode, BrokerRole, ExternalType};
use crate::crd::BrokerGroup;

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

/// Keys the operator sets itself; a spec may not override them.
pub const MANAGED_KEYS: &[&str] = &[
    "brokerClusterName",
    "brokerName",
    "brokerId",
    "brokerRole",
    "namesrvAddr",
    "listenPort",
    "haListenPort",
    "storePathRootDir",
    "brokerIP1",
    "brokerIP2",
    "flushDiskType",
    "metricsPort",
    "brokerAdvertisedPort",
    "brokerIP1Interface",
    "brokerIP1Cidr",
    "brokerIP2Interface",
    "brokerIP2Cidr",
];

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
}

/// The ordinal of the group's master: ordinal 0 until a failover recorded another in status.
pub fn master_ordinal(bg: &BrokerGroup) -> i32 {
    bg.status
        .as_ref()
        .and_then(|s| s.master_pod.as_deref())
        .and_then(|p| p.rsplit('-').next())
        .and_then(|o| o.parse::<i32>().ok())
        // Not bounded by spec.replicas: a scale-down below the master does not move it.
        .filter(|o| (0..super::failover::MAX_REPLICAS).contains(o))
        .unwrap_or(0)
}

/// Pods the StatefulSet keeps: the spec's count, but never fewer than reach the master (a
/// scale-down waits until the master has been switched to a lower ordinal).
pub fn kept_replicas(bg: &BrokerGroup) -> i32 {
    bg.spec.replicas.max(master_ordinal(bg) + 1)
}

/// The StatefulSet rolls from the highest ordinal down, so the master goes last only while it
/// is ordinal 0. After a failover moved it, a roll waits (partition above every pod) until
/// the reconciler has switched the master back to ordinal 0 — unless ordinal 0 is not ready
/// to take it, when waiting would leave the roll stuck.
pub fn roll_partition(bg: &BrokerGroup) -> i32 {
    let zero = format!("{}-0", bg.name_any());
    let zero_ready = bg
        .status
        .as_ref()
        .is_some_and(|s| s.replicas.iter().any(|r| r.pod == zero && r.ready));
    if master_ordinal(bg) != 0 && zero_ready {
        kept_replicas(bg)
    } else {
        0
    }
}

/// The Service that always selects the group's current master pod (`<group>-master`).
pub fn master_service(
    owner: &Owner,
    group: &str,
    master_pod: &str,
    labels: &BTreeMap<String, String>,
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

/// The config files without the keys a switch changes.
fn without_roles(data: &BTreeMap<String, String>) -> Vec<String> {
    data.values()
        .map(|conf| {
            conf.lines()
                .filter(|l| !l.starts_with("brokerId=") && !l.starts_with("brokerRole="))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// Clients, tools and Prometheus reach the remoting, VIP and metrics ports from anywhere;
/// only the group's pods reach the HA port.
fn network_policy(
    owner: &Owner,
    name: &str,
    labels: &BTreeMap<String, String>,
    selector: &BTreeMap<String, String>,
    spec: &crate::crd::broker_group::BrokerGroupSpec,
) -> NetworkPolicy {
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
        match_labels: Some(selector.clone()),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: meta(owner, name.to_string(), labels.clone()),
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
    }
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
    let master = master_ordinal(bg);
    p.insert(
        "brokerId".into(),
        super::failover::broker_id(ordinal, master).to_string(),
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

pub fn build(
    bg: &BrokerGroup,
    owner: &Owner,
    namesrv_addr: &str,
) -> Result<BrokerGroupObjects, SpecError> {
    let spec = &bg.spec;
    if !(1..=super::failover::MAX_REPLICAS).contains(&spec.replicas) {
        return Err(SpecError::Invalid(format!(
            "replicas must be 1..={}, got {}",
            super::failover::MAX_REPLICAS,
            spec.replicas
        )));
    }
    if let Some(k) = spec
        .config
        .keys()
        .find(|k| MANAGED_KEYS.contains(&k.as_str()))
    {
        return Err(SpecError::Invalid(format!(
            "config key `{k}` is managed by the operator"
        )));
    }
    if spec.broker_role == BrokerRole::SyncMaster && spec.replicas < 2 {
        return Err(SpecError::Invalid(
            "brokerRole SYNC_MASTER needs a slave to acknowledge sends: replicas must be at least 2 (or use ASYNC_MASTER)".into(),
        ));
    }
    let a = &spec.addressing;
    // What mqbroker resolves at start (multi-NIC), and what the entrypoint fills from the
    // downward API (the pod IP).
    let mut address_props: BTreeMap<String, String> = BTreeMap::new();
    let mut ip1_from_pod = false;
    let mut external = None;
    match a.mode {
        AddressMode::PodIp => ip1_from_pod = true,
        AddressMode::Interface => {
            let iface = a
                .interface
                .clone()
                .filter(|i| !i.is_empty())
                .ok_or_else(|| {
                    SpecError::Invalid(
                        "addressing.mode Interface needs addressing.interface".into(),
                    )
                })?;
            address_props.insert("brokerIP1Interface".into(), iface);
        }
        AddressMode::Cidr => {
            let cidr = a.cidr.clone().filter(|c| c.contains('/')).ok_or_else(|| {
                SpecError::Invalid(
                    "addressing.mode Cidr needs addressing.cidr like 10.20.0.0/16".into(),
                )
            })?;
            address_props.insert("brokerIP1Cidr".into(), cidr);
        }
        AddressMode::External => {
            external = Some(external::validate(a.external.as_ref(), kept_replicas(bg))?);
        }
    }
    let ext_type = external.map(|e| e.type_);
    let ip2_from_pod = match a.ha_interface.clone().filter(|i| !i.is_empty()) {
        Some(iface) => {
            address_props.insert("brokerIP2Interface".into(), iface);
            false
        }
        None => true,
    };
    if namesrv_addr.is_empty() {
        return Err(SpecError::Invalid(
            "no name server: set nameServer.name or nameServer.address".into(),
        ));
    }
    let name = owner.name.clone();
    let broker_name = spec.broker_name.clone().unwrap_or_else(|| name.clone());
    let labels = {
        let mut l = labels(&name, COMPONENT);
        l.insert("rocketmq.rs/cluster".into(), spec.cluster_name.clone());
        l
    };
    let selector = selector(&name, COMPONENT);

    let mut data = BTreeMap::new();
    for i in 0..kept_replicas(bg) {
        let mut conf = broker_conf(bg, &broker_name, i, namesrv_addr);
        conf.extend(address_props.clone());
        if let Some(ext) = external.filter(|e| e.type_ == ExternalType::NodePort) {
            let port = external::node_port(ext.node_port_base.unwrap_or_default(), i);
            conf.insert("brokerAdvertisedPort".into(), port.to_string());
            if let Some(host) = &ext.advertised_host {
                conf.insert("brokerIP1".into(), host.clone());
            }
        }
        data.insert(format!("broker-{i}.conf"), properties(&conf));
    }
    // Roles and ids change at runtime (failover, switchover): the brokers switch over the
    // wire and the new config only matters at their next start, so it must not roll the pods
    // (which would restart the new master right after it took over).
    let hash = fnv(format!("{:?}", without_roles(&data)).as_bytes());
    let config = ConfigMap {
        metadata: meta(owner, format!("{name}-config"), labels.clone()),
        data: Some(data),
        ..Default::default()
    };

    let sport = |n: &str, p: i32| ServicePort {
        name: Some(n.into()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        ..Default::default()
    };
    let mut svc_ports = vec![
        sport("remoting", BROKER_PORT),
        sport("vip", VIP_PORT),
        sport("ha", HA_PORT),
    ];
    if spec.metrics.enabled {
        svc_ports.push(sport("metrics", spec.metrics.port));
    }
    let master = master_service(
        owner,
        &name,
        &format!("{name}-{}", master_ordinal(bg)),
        &labels,
        svc_ports.clone(),
    );
    let headless = Service {
        metadata: meta(owner, format!("{name}-headless"), labels.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector.clone()),
            ports: Some(svc_ports),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut pod_labels = labels.clone();
    pod_labels.extend(spec.pod.labels.clone());
    let mut annotations = spec.pod.annotations.clone();
    if spec.metrics.enabled {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), spec.metrics.port.to_string());
        annotations.insert("prometheus.io/path".into(), "/metrics".into());
    }
    annotations.insert("rocketmq.rs/config-hash".into(), format!("{hash:016x}"));
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
    let env = vec![
        field_env("POD_IP", "status.podIP"),
        field_env("HOST_IP", "status.hostIP"),
    ];
    // The pod's ordinal picks its config; the pod IP is what clients and slaves reach.
    let mut script = String::from(
        "set -e; i=${HOSTNAME##*-}; cp /etc/rocketmq/broker-$i.conf /tmp/broker.conf; ",
    );
    if ip1_from_pod {
        script.push_str("echo \"brokerIP1=$POD_IP\" >> /tmp/broker.conf; ");
    }
    match external {
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
    if ip2_from_pod {
        script.push_str("echo \"brokerIP2=$POD_IP\" >> /tmp/broker.conf; ");
    }
    script.push_str("exec mqbroker -c /tmp/broker.conf");
    let mut container = Container {
        name: "mqbroker".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| DEFAULT_BROKER_IMAGE.into()),
        ),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        env: Some(env),
        ports: Some(ports),
        // Readiness feeds failover: a hung broker is unready within ~10 s.
        readiness_probe: Some(tcp_probe(5, 5, 2)),
        liveness_probe: Some(tcp_probe(60, 10, 6)),
        resources: spec.resources.clone(),
        volume_mounts: Some(vec![
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
        ]),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let host_network = ext_type == Some(ExternalType::HostNetwork);
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: format!("{name}-config"),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if ext_type == Some(ExternalType::LoadBalancer) {
        volumes.push(Volume {
            name: "external".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: external::hosts_config_name(&name),
                ..Default::default()
            }),
            ..Default::default()
        });
        if let Some(mounts) = container.volume_mounts.as_mut() {
            mounts.push(VolumeMount {
                name: "external".into(),
                mount_path: external::HOSTS_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }
    if host_network {
        pod_labels.insert(HOST_NETWORK_LABEL.into(), "true".into());
    }
    let affinity = match (&spec.pod.affinity, host_network) {
        (Some(a), _) => a.clone(),
        // Brokers on the node's network share its ports: never two on one node, whatever group.
        (None, true) => one_per_node(BTreeMap::from([(
            HOST_NETWORK_LABEL.to_string(),
            "true".to_string(),
        )])),
        (None, false) => spread(selector.clone()),
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        affinity: Some(affinity),
        host_network: host_network.then_some(true),
        dns_policy: host_network.then(|| "ClusterFirstWithHostNet".into()),
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
        // Time to unregister, flush and write a clean checkpoint after SIGTERM.
        termination_grace_period_seconds: Some(60),
        ..Default::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("store".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let stateful_set = StatefulSet {
        metadata: meta(owner, name.clone(), labels.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(kept_replicas(bg)),
            service_name: Some(format!("{name}-headless")),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            pod_management_policy: Some("OrderedReady".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(roll_partition(bg)),
                    ..Default::default()
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let external = external
        .map(|e| external::services(owner, &name, &labels, e, kept_replicas(bg)))
        .unwrap_or_default();
    let network_policy = (spec.network_policy.enabled && !host_network)
        .then(|| network_policy(owner, &name, &labels, &selector, spec));
    let pdb = PodDisruptionBudget {
        metadata: meta(owner, name, labels),
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
    Ok(BrokerGroupObjects {
        config,
        headless,
        master,
        network_policy,
        stateful_set,
        pdb,
        external,
    })
}
