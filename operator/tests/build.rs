//! Every example through the pure builders: the objects a cluster would get.

use std::collections::BTreeMap;

use rmq_operator::build::{broker_group, nameserver, Owner, SpecError};
use rmq_operator::crd::{BrokerGroup, ConsumerGroup, NameServer, Topic};
use serde::Deserialize;

fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("examples")
}

/// Every document of a multi-document YAML file, as generic values.
fn docs(path: &std::path::Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect()
}

/// Checks YAML documents against the Kubernetes schemas and the CRDs
/// (`operator/tests/validate.py`); returns its report.
fn validate(docs: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("objects.yaml");
    let yaml: String = docs.iter().map(|d| format!("---\n{d}")).collect();
    std::fs::write(&path, yaml).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let out = std::process::Command::new("python3")
        .arg(root.join("operator/tests/validate.py"))
        .arg(root.join("crds"))
        .arg(&path)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn owner(kind: &str, name: &str) -> Owner {
    Owner {
        api_version: "rocketmq.rs/v1alpha1".into(),
        kind: kind.into(),
        name: name.into(),
        namespace: "prod".into(),
        uid: format!("uid-{name}"),
    }
}

fn conf(cm: &k8s_openapi::api::core::v1::ConfigMap, file: &str) -> BTreeMap<String, String> {
    cm.data.as_ref().unwrap()[file]
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_example_builds() {
    let mut built = 0;
    for entry in walk(&examples_dir()) {
        if entry.extension().and_then(|e| e.to_str()) != Some("yaml")
            || entry.ends_with("kustomization.yaml")
        {
            continue;
        }
        let docs = docs(&entry);
        let ns_replicas: BTreeMap<String, i32> = docs
            .iter()
            .filter(|d| d["kind"] == "NameServer")
            .map(|d| {
                let n: NameServer = serde_yaml::from_value(d.clone()).unwrap();
                (n.metadata.name.clone().unwrap(), n.spec.replicas)
            })
            .collect();
        for d in &docs {
            let kind = d["kind"].as_str().unwrap();
            let name = d["metadata"]["name"].as_str().unwrap().to_string();
            match kind {
                "NameServer" => {
                    let ns: NameServer = serde_yaml::from_value(d.clone()).unwrap();
                    let o = nameserver::build(&ns, &owner(kind, &name))
                        .unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
                    let sts = o.stateful_set.spec.as_ref().unwrap();
                    assert_eq!(sts.replicas, Some(ns.spec.replicas));
                    assert_eq!(
                        sts.service_name.as_deref(),
                        Some(format!("{name}-headless").as_str())
                    );
                    assert_eq!(
                        o.headless.spec.as_ref().unwrap().cluster_ip.as_deref(),
                        Some("None")
                    );
                    assert_eq!(conf(&o.config, "namesrv.conf")["listenPort"], "9876");
                }
                "BrokerGroup" => {
                    let bg: BrokerGroup = serde_yaml::from_value(d.clone()).unwrap();
                    let ns_name = bg.spec.name_server.name.clone().unwrap();
                    let addr = nameserver::address(&ns_name, "prod", ns_replicas[&ns_name]);
                    let o = broker_group::build(&bg, &owner(kind, &name), &addr)
                        .unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
                    let sts = o.stateful_set.spec.as_ref().unwrap();
                    assert_eq!(sts.replicas, Some(bg.spec.replicas));
                    assert_eq!(sts.pod_management_policy.as_deref(), Some("OrderedReady"));
                    let claim = &sts.volume_claim_templates.as_ref().unwrap()[0];
                    let size = &claim
                        .spec
                        .as_ref()
                        .unwrap()
                        .resources
                        .as_ref()
                        .unwrap()
                        .requests
                        .as_ref()
                        .unwrap()["storage"];
                    assert_eq!(size.0, bg.spec.storage.size);
                    for i in 0..bg.spec.replicas {
                        let c = conf(&o.config, &format!("broker-{i}.conf"));
                        assert_eq!(c["brokerId"], i.to_string());
                        assert_eq!(c["brokerName"], name);
                        assert_eq!(c["namesrvAddr"], addr);
                        if i == 0 {
                            assert_ne!(c["brokerRole"], "SLAVE");
                        } else {
                            assert_eq!(c["brokerRole"], "SLAVE");
                        }
                    }
                    // Owned by the BrokerGroup, so deleting it removes them.
                    let refs = o.stateful_set.metadata.owner_references.as_ref().unwrap();
                    assert_eq!(
                        (refs[0].kind.as_str(), refs[0].controller),
                        ("BrokerGroup", Some(true))
                    );
                }
                "Topic" => {
                    let t: Topic = serde_yaml::from_value(d.clone()).unwrap();
                    assert!(t.spec.write_queue_nums >= 1);
                }
                "ConsumerGroup" => {
                    let g: ConsumerGroup = serde_yaml::from_value(d.clone()).unwrap();
                    assert!(!g.spec.cluster_name.is_empty());
                }
                other => panic!("{}: unexpected kind {other}", entry.display()),
            }
            built += 1;
        }
    }
    assert!(built >= 10, "examples found: {built}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn sync_master_pair_layout() {
    let docs = docs(&examples_dir().join("2m-2s-sync.yaml"));
    let bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let o = broker_group::build(
        &bg,
        &owner("BrokerGroup", "broker-a"),
        "rocketmq-headless.prod.svc:9876",
    )
    .unwrap();
    let master = conf(&o.config, "broker-0.conf");
    let slave = conf(&o.config, "broker-1.conf");
    assert_eq!(master["brokerRole"], "SYNC_MASTER");
    assert_eq!(slave["brokerRole"], "SLAVE");
    assert_eq!(master["autoCreateTopicEnable"], "false");
    assert_eq!(master["flushDiskType"], "ASYNC_FLUSH");
    // Spread across nodes by default.
    let pod = o
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert!(pod.affinity.as_ref().unwrap().pod_anti_affinity.is_some());
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
    assert_eq!(
        o.pdb.spec.as_ref().unwrap().max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[test]
fn config_change_rolls_the_pods() {
    let docs = docs(&examples_dir().join("single-master.yaml"));
    let mut bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let hash = |bg: &BrokerGroup| {
        let o = broker_group::build(bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
        o.stateful_set
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["rocketmq.rs/config-hash"]
            .clone()
    };
    let before = hash(&bg);
    assert_eq!(before, hash(&bg), "same spec, same objects");
    bg.spec
        .config
        .insert("maxMessageSize".into(), "1048576".into());
    assert_ne!(
        before,
        hash(&bg),
        "a config change changes the pod template"
    );
}

#[test]
fn invalid_specs_get_clear_errors() {
    let docs = docs(&examples_dir().join("single-master.yaml"));
    let bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let mut managed = bg.clone();
    managed.spec.config.insert("brokerId".into(), "3".into());
    let err = broker_group::build(&managed, &owner("BrokerGroup", "b"), "ns:9876").unwrap_err();
    assert!(
        matches!(&err, SpecError::Invalid(m) if m.contains("brokerId")),
        "{err}"
    );
    let mut many = bg.clone();
    many.spec.replicas = 9;
    assert!(broker_group::build(&many, &owner("BrokerGroup", "b"), "ns:9876").is_err());
    assert!(
        broker_group::build(&bg, &owner("BrokerGroup", "b"), "").is_err(),
        "no name server"
    );
    let ns: NameServer = serde_yaml::from_value(docs[0].clone()).unwrap();
    let mut bad_ns = ns.clone();
    bad_ns.spec.config.insert("listenPort".into(), "1".into());
    assert!(nameserver::build(&bad_ns, &owner("NameServer", "n")).is_err());
    assert_eq!(
        nameserver::address("rocketmq", "prod", 2),
        "rocketmq-0.rocketmq-headless.prod.svc:9876;rocketmq-1.rocketmq-headless.prod.svc:9876"
    );
}

#[test]
fn multi_nic_addressing_goes_into_broker_conf() {
    let docs = docs(&examples_dir().join("multi-nic.yaml"));
    let bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    let c = conf(&o.config, "broker-1.conf");
    assert_eq!(c["brokerIP1Cidr"], "10.20.0.0/16");
    let cmd = o
        .stateful_set
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .command
        .clone()
        .unwrap()
        .join(" ");
    assert!(
        !cmd.contains("brokerIP1=$POD_IP"),
        "IP1 comes from the CIDR, not the pod IP: {cmd}"
    );
    assert!(cmd.contains("brokerIP2=$POD_IP"), "{cmd}");
    let mut bad = bg.clone();
    bad.spec.addressing.cidr = None;
    assert!(broker_group::build(&bad, &owner("BrokerGroup", "b"), "ns:9876").is_err());
}

fn pod_spec(o: &broker_group::BrokerGroupObjects) -> k8s_openapi::api::core::v1::PodSpec {
    o.stateful_set.spec.clone().unwrap().template.spec.unwrap()
}

#[test]
fn external_access_gives_each_broker_its_own_way_in() {
    let docs = docs(&examples_dir().join("external-access.yaml"));
    // NodePort: fixed ports per pod, advertised by the broker, node IP from the downward API.
    let bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    assert_eq!(
        conf(&o.config, "broker-0.conf")["brokerAdvertisedPort"],
        "31002"
    );
    assert_eq!(
        conf(&o.config, "broker-1.conf")["brokerAdvertisedPort"],
        "31005"
    );
    assert_eq!(o.external.len(), 2);
    let svc = o.external[1].spec.as_ref().unwrap();
    assert_eq!(svc.type_.as_deref(), Some("NodePort"));
    assert_eq!(
        svc.selector.as_ref().unwrap()["statefulset.kubernetes.io/pod-name"],
        "broker-a-1"
    );
    let ports: Vec<(i32, Option<i32>)> = svc
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.port, p.node_port))
        .collect();
    assert_eq!(ports, vec![(10911, Some(31005)), (10909, Some(31003))]);
    assert_eq!(
        svc.external_traffic_policy.as_deref(),
        Some("Local"),
        "a node IP is only right for the pod on that node"
    );
    let pod = pod_spec(&o);
    let script = pod.containers[0].command.as_ref().unwrap().join(" ");
    assert!(script.contains("brokerIP1=$HOST_IP"), "{script}");
    assert!(
        script.contains("brokerIP2=$POD_IP"),
        "replication stays inside: {script}"
    );
    assert!(pod.containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .any(|e| e.name == "HOST_IP"));

    // A shared name in front of the nodes goes into broker.conf as brokerIP1.
    let mut named = bg.clone();
    named
        .spec
        .addressing
        .external
        .as_mut()
        .unwrap()
        .advertised_host = Some("mq.example.com".into());
    let o = broker_group::build(&named, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    assert_eq!(
        conf(&o.config, "broker-1.conf")["brokerIP1"],
        "mq.example.com"
    );
    let script = pod_spec(&o).containers[0]
        .command
        .as_ref()
        .unwrap()
        .join(" ");
    assert!(!script.contains("brokerIP1="), "{script}");
    assert_eq!(
        o.external[0]
            .spec
            .as_ref()
            .unwrap()
            .external_traffic_policy
            .as_deref(),
        Some("Cluster")
    );

    // LoadBalancer: the pod waits for its published address.
    let bg: BrokerGroup = serde_yaml::from_value(docs[2].clone()).unwrap();
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-b"), "ns:9876").unwrap();
    assert_eq!(o.external.len(), 2);
    assert!(!conf(&o.config, "broker-0.conf").contains_key("brokerAdvertisedPort"));
    let pod = pod_spec(&o);
    assert!(pod.volumes.as_ref().unwrap().iter().any(|v| v
        .config_map
        .as_ref()
        .map(|c| c.name.as_str())
        == Some("broker-b-external")));
    let script = pod.containers[0].command.as_ref().unwrap().join(" ");
    assert!(script.contains("while [ ! -s $f ]"), "{script}");

    // HostNetwork: no Services, the node's network, one broker per node across groups.
    let mut host = bg.clone();
    host.spec.addressing.external =
        Some(serde_json::from_value(serde_json::json!({ "type": "HostNetwork" })).unwrap());
    let o = broker_group::build(&host, &owner("BrokerGroup", "broker-b"), "ns:9876").unwrap();
    assert!(o.external.is_empty());
    let pod = pod_spec(&o);
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    let term = &anti
        .required_during_scheduling_ignored_during_execution
        .unwrap()[0];
    assert_eq!(
        term.label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()[broker_group::HOST_NETWORK_LABEL],
        "true"
    );
}

#[test]
fn external_access_refuses_what_cannot_work() {
    let docs = docs(&examples_dir().join("external-access.yaml"));
    let bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let refused = |edit: &dyn Fn(&mut BrokerGroup), needle: &str| {
        let mut b = bg.clone();
        edit(&mut b);
        match broker_group::build(&b, &owner("BrokerGroup", "b"), "ns:9876") {
            Err(SpecError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected refusal mentioning {needle}: {other:?}"),
        }
    };
    refused(
        &|b| b.spec.addressing.external = None,
        "addressing.external",
    );
    refused(
        &|b| b.spec.addressing.external.as_mut().unwrap().node_port_base = None,
        "nodePortBase is required",
    );
    refused(
        &|b| {
            b.spec.replicas = 5;
            b.spec.addressing.external.as_mut().unwrap().node_port_base = Some(32760);
        },
        "NodePort range",
    );
    refused(
        &|b| {
            b.spec.addressing.external.as_mut().unwrap().advertised_host =
                Some("x; rm -rf /".into())
        },
        "not a host name",
    );
    refused(
        &|b| {
            b.spec
                .config
                .insert("brokerAdvertisedPort".into(), "1".into());
        },
        "managed by the operator",
    );
    refused(&|b| b.spec.replicas = 1, "SYNC_MASTER needs a slave");
}

#[test]
fn after_a_failover_the_promoted_ordinal_is_configured_as_master() {
    let docs = docs(&examples_dir().join("2m-2s-sync.yaml"));
    let mut bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let before = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    assert_eq!(conf(&before.config, "broker-0.conf")["brokerId"], "0");
    // The operator promoted ordinal 1 and recorded it.
    bg.status = Some(
        serde_json::from_value(serde_json::json!({ "masterPod": "broker-a-1", "epoch": 2 }))
            .unwrap(),
    );
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    let new_master = conf(&o.config, "broker-1.conf");
    let old_master = conf(&o.config, "broker-0.conf");
    assert_eq!(
        (
            new_master["brokerRole"].as_str(),
            new_master["brokerId"].as_str()
        ),
        ("SYNC_MASTER", "0")
    );
    assert_eq!(
        (
            old_master["brokerRole"].as_str(),
            old_master["brokerId"].as_str()
        ),
        ("SLAVE", "5"),
        "the former master comes back as a slave (and cuts its divergent tail)"
    );
    // The brokers switched over the wire already: the new config waits for their next
    // start instead of rolling the pods (which would restart the new master).
    let hash = |o: &broker_group::BrokerGroupObjects| {
        o.stateful_set
            .spec
            .clone()
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["rocketmq.rs/config-hash"]
            .clone()
    };
    assert_eq!(hash(&before), hash(&o), "a switch rolls no pod");
    // The master Service follows.
    let selector = |o: &broker_group::BrokerGroupObjects| {
        o.master.spec.clone().unwrap().selector.unwrap()["statefulset.kubernetes.io/pod-name"]
            .clone()
    };
    assert_eq!(
        (selector(&before).as_str(), selector(&o).as_str()),
        ("broker-a-0", "broker-a-1")
    );
    assert_eq!(o.master.metadata.name.as_deref(), Some("broker-a-master"));
    // Scaling to one pod would remove the master (ordinal 1): the StatefulSet keeps two
    // until another pod leads.
    bg.spec.replicas = 1;
    bg.spec.broker_role = rmq_operator::crd::broker_group::BrokerRole::AsyncMaster;
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    assert_eq!(o.stateful_set.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(selector(&o), "broker-a-1");
    bg.spec.replicas = 2;
    bg.spec.broker_role = rmq_operator::crd::broker_group::BrokerRole::SyncMaster;
    // A master pod outside the group is ignored.
    bg.status =
        Some(serde_json::from_value(serde_json::json!({ "masterPod": "broker-a-7" })).unwrap());
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    assert_eq!(
        conf(&o.config, "broker-0.conf")["brokerRole"],
        "SYNC_MASTER"
    );
}

#[test]
fn the_admin_credential_reaches_every_pod_through_a_secret() {
    use rmq_operator::build::admin;
    use rmq_operator::validate;
    let docs = docs(&examples_dir().join("2m-2s-sync.yaml"));
    let ns: NameServer = serde_yaml::from_value(docs[0].clone()).unwrap();
    let bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let cred = rmq_remoting::Credentials::new("rocketmq-admin", "s3cret-from-the-chart");
    let bg_owner = owner("BrokerGroup", "broker-a");
    let group = validate::broker_group::validate(&bg, "broker-a", "ns:9876").unwrap();
    let ns_owner = owner("NameServer", "rocketmq");
    let ns_valid = validate::nameserver::validate(&ns).unwrap();

    let with = broker_group::objects(&group, &bg_owner, Some(&cred));
    let secret = with.admin_secret.as_ref().expect("a Secret");
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("broker-a-admin-credential")
    );
    assert_eq!(
        secret.metadata.owner_references.as_ref().unwrap()[0].name,
        "broker-a",
        "removed with its group"
    );
    let data = secret.data.as_ref().unwrap();
    assert_eq!(data["accessKey"].0, b"rocketmq-admin");
    assert_eq!(data["secretKey"].0, b"s3cret-from-the-chart");
    let c = conf(&with.config, "broker-0.conf");
    assert_eq!(c["adminCredentialFile"], admin::MOUNT);
    assert!(!c.contains_key("controlPlaneAuthEnable"), "on by default");
    let pod = pod_spec(&with);
    let vol = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "admin-credential")
        .unwrap();
    assert_eq!(
        vol.secret.unwrap().secret_name.as_deref(),
        Some("broker-a-admin-credential")
    );
    assert!(pod.containers.iter().all(|c| c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.mount_path == admin::MOUNT && m.read_only == Some(true))));
    let ns_with = nameserver::objects(&ns_valid, &ns_owner, Some(&cred));
    assert!(ns_with.admin_secret.is_some());
    let text = &ns_with.config.data.as_ref().unwrap()["namesrv.conf"];
    assert!(
        text.contains("adminCredentialFile=/etc/rocketmq-admin"),
        "{text}"
    );

    // An operator without a credential says so in the config instead of letting each pod
    // invent its own key; a choice written in the spec is kept.
    let without = broker_group::objects(&group, &bg_owner, None);
    assert!(without.admin_secret.is_none());
    assert_eq!(
        conf(&without.config, "broker-0.conf")["controlPlaneAuthEnable"],
        "false"
    );
    let mut chosen = bg.clone();
    chosen
        .spec
        .config
        .insert("controlPlaneAuthEnable".into(), "true".into());
    let g = validate::broker_group::validate(&chosen, "broker-a", "ns:9876").unwrap();
    let o = broker_group::objects(&g, &bg_owner, None);
    assert_eq!(
        conf(&o.config, "broker-0.conf")["controlPlaneAuthEnable"],
        "true"
    );
    // The Secret and the pods that mount it pass the Kubernetes schemas too.
    let report = validate(&[
        serde_yaml::to_string(secret).unwrap(),
        serde_yaml::to_string(&with.stateful_set).unwrap(),
        serde_yaml::to_string(ns_with.admin_secret.as_ref().unwrap()).unwrap(),
        serde_yaml::to_string(&ns_with.stateful_set).unwrap(),
    ]);
    assert!(
        report.contains("validated 4 objects, 0 failures"),
        "{report}"
    );
}

#[test]
fn tls_from_a_cert_manager_secret_reaches_the_ports_and_the_brokers_connections() {
    use rmq_operator::crd::{TlsModeSpec, TlsSpec};
    let docs = docs(&examples_dir().join("2m-2s-sync.yaml"));
    let mut ns: NameServer = serde_yaml::from_value(docs[0].clone()).unwrap();
    let mut bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    let tls = TlsSpec {
        secret_name: "rocketmq-tls".into(),
        mode: TlsModeSpec::Enforcing,
        require_client_certificate: true,
    };
    ns.spec.tls = Some(tls.clone());
    bg.spec.tls = Some(tls);
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    let c = conf(&o.config, "broker-1.conf");
    for (k, v) in [
        ("tls.server.mode", "enforcing"),
        ("tls.server.certPath", "/etc/rocketmq-tls/tls.crt"),
        ("tls.server.keyPath", "/etc/rocketmq-tls/tls.key"),
        ("tls.server.trustCertPath", "/etc/rocketmq-tls/ca.crt"),
        ("tls.server.need.client.auth", "require"),
        ("tls.test.mode.enable", "false"),
        ("tls.enable", "true"),
        ("tls.client.trustCertPath", "/etc/rocketmq-tls/ca.crt"),
        ("tls.client.certPath", "/etc/rocketmq-tls/tls.crt"),
    ] {
        assert_eq!(c.get(k).map(String::as_str), Some(v), "{k}");
    }
    let pod = pod_spec(&o);
    let vol = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "tls")
        .unwrap();
    assert_eq!(
        vol.secret.unwrap().secret_name.as_deref(),
        Some("rocketmq-tls")
    );
    let n = nameserver::build(&ns, &owner("NameServer", "rocketmq")).unwrap();
    let text = &n.config.data.as_ref().unwrap()["namesrv.conf"];
    assert!(text.contains("tls.server.mode=enforcing"), "{text}");
    assert!(
        !text.contains("tls.enable"),
        "name servers make no connections: {text}"
    );

    // Refused: a name that cannot be a Secret, tls.* keys written by hand.
    let mut bad = bg.clone();
    bad.spec.tls.as_mut().unwrap().secret_name = "Not_A_Secret".into();
    let e = broker_group::build(&bad, &owner("BrokerGroup", "b"), "ns:9876").unwrap_err();
    assert!(e.to_string().contains("tls.secretName"), "{e}");
    let mut bad = bg.clone();
    bad.spec
        .config
        .insert("tls.server.mode".into(), "disabled".into());
    let e = broker_group::build(&bad, &owner("BrokerGroup", "b"), "ns:9876").unwrap_err();
    assert!(e.to_string().contains("set by the operator"), "{e}");

    // The objects pass the Kubernetes schemas, and the custom resources the CRDs'.
    let report = validate(&[
        serde_yaml::to_string(&o.stateful_set).unwrap(),
        serde_yaml::to_string(&o.config).unwrap(),
        serde_yaml::to_string(&n.stateful_set).unwrap(),
        serde_yaml::to_string(&bg).unwrap(),
        serde_yaml::to_string(&ns).unwrap(),
    ]);
    assert!(
        report.contains("validated 5 objects, 0 failures"),
        "{report}"
    );
}

#[test]
fn acl_from_a_secret_turns_on_rocketmqs_plain_acl() {
    use rmq_operator::crd::AclSpec;
    let docs = docs(&examples_dir().join("2m-2s-sync.yaml"));
    let mut bg: BrokerGroup = serde_yaml::from_value(docs[1].clone()).unwrap();
    bg.spec.acl = Some(AclSpec {
        secret_name: "broker-acl".into(),
        key: "plain_acl.yml".into(),
    });
    let o = broker_group::build(&bg, &owner("BrokerGroup", "broker-a"), "ns:9876").unwrap();
    let c = conf(&o.config, "broker-0.conf");
    assert_eq!(c["aclEnable"], "true");
    assert_eq!(
        c["rocketmq.acl.plain.file"],
        "/etc/rocketmq-acl/plain_acl.yml"
    );
    let pod = pod_spec(&o);
    let vol = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "acl")
        .unwrap();
    assert_eq!(
        vol.secret.unwrap().secret_name.as_deref(),
        Some("broker-acl")
    );
    let mut bad = bg.clone();
    bad.spec.config.insert("aclEnable".into(), "false".into());
    let e = broker_group::build(&bad, &owner("BrokerGroup", "b"), "ns:9876").unwrap_err();
    assert!(
        e.to_string().contains("set by the operator from `acl`"),
        "{e}"
    );
    let mut bad = bg.clone();
    bad.spec.acl.as_mut().unwrap().key = "../etc/passwd".into();
    assert!(broker_group::build(&bad, &owner("BrokerGroup", "b"), "ns:9876").is_err());
}
