//! Automatic failover by the BrokerGroup reconciler, against a mock Kubernetes API and a real
//! slave broker on 127.0.0.1: the master pod has been unready past the grace period, the slave
//! is asked its offset over the wire and promoted with the next epoch, and the status and an
//! Event say so.

use std::sync::Arc;

use http::Method;
use rmq_broker::Broker;
use rmq_operator::controller::{broker_group, Context};
use rmq_operator::crd::BrokerGroup;
use serde_json::json;

mod common;
use common::{echo, expect, mock, namesrv};

/// A free port the NodePort range can name as pod 1's node port (`nodePortBase + 5`).
fn free_node_port(from: u16) -> u16 {
    (from..from + 900)
        .find(|p| {
            std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", *p + 1)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", *p - 2)).is_ok()
        })
        .expect("a free port in the NodePort range")
}

async fn promotion(manual: bool) {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    // Separate ranges, so the two tests running at once never pick the same port.
    let port = free_node_port(if manual { 31005 } else { 30005 });
    let mut s = rmq_testkit::broker_settings(dir.path(), &ns_addr, "broker-f");
    s.broker.listen_port = port;
    s.broker.broker_id = 1;
    s.broker.broker_role = rmq_remoting::role::BrokerRole::Slave;
    let slave = Broker::start(s).await.unwrap();

    // The group's master pod went unready ten minutes ago; pod 1 is reachable (NodePort mode
    // with the node at 127.0.0.1, so the slave's address is one the test controls).
    let (annotations, grace, since) = if manual {
        // Asked for by name: no grace period, automatic failover off.
        (
            json!({ "rocketmq.rs/promote": "broker-f-1" }),
            3600,
            "2099-01-01T00:00:00Z",
        )
    } else {
        (json!({}), 30, "2020-01-01T00:00:00Z")
    };
    let bg: BrokerGroup = serde_json::from_value(json!({
        "apiVersion": "rocketmq.rs/v1alpha1", "kind": "BrokerGroup",
        "metadata": { "name": "broker-f", "namespace": "default", "uid": "u-f", "generation": 4,
                      "annotations": annotations },
        "spec": {
            "nameServer": { "address": ns_addr }, "replicas": 2, "brokerRole": "SYNC_MASTER",
            "storage": { "size": "10Gi" },
            "addressing": { "mode": "External", "external": {
                "type": "NodePort", "nodePortBase": port - 5, "advertisedHost": "127.0.0.1" } },
            "failover": { "graceSeconds": grace, "enabled": !manual }
        },
        "status": {
            "masterPod": "broker-f-0", "epoch": 1, "observedGeneration": 4,
            "conditions": [{ "type": "Ready", "status": "False", "reason": "ReplicasNotReady",
                             "message": "1/2 ready", "lastTransitionTime": since }]
        }
    }))
    .unwrap();
    let (client, mut handle) = mock();
    let ctx = Arc::new(Context::new(client));
    let task = tokio::spawn(broker_group::reconcile(Arc::new(bg.clone()), ctx));
    let h = &mut handle;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/broker-f-config",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-f-headless",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-f-0-external",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-f-1-external",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/statefulsets/broker-f",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/broker-f",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/broker-f",
        echo,
    )
    .await;
    expect(
        h,
        Method::GET,
        "/api/v1/namespaces/default/services",
        |_| json!({ "apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": [] }),
    )
    .await;
    expect(h, Method::GET, "/api/v1/namespaces/default/pods", |_| {
        let pod = |name: &str, ready: &str| {
            json!({ "metadata": { "name": name, "namespace": "default" },
                    "status": { "podIP": "10.0.0.9", "hostIP": "127.0.0.1",
                                "conditions": [{ "type": "Ready", "status": ready }] } })
        };
        json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {},
                "items": [pod("broker-f-0", "False"), pod("broker-f-1", "True")] })
    })
    .await;
    // Recorded at once, before anything else can fail; a satisfied promote annotation goes.
    let recorded = expect(
        h,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-f/status",
        |_| serde_json::to_value(&bg).unwrap(),
    )
    .await;
    assert_eq!(
        (
            &recorded["status"]["masterPod"],
            &recorded["status"]["epoch"]
        ),
        (&json!("broker-f-1"), &json!(2))
    );
    if manual {
        let removal = expect(
            h,
            Method::PATCH,
            "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-f",
            |_| serde_json::to_value(&bg).unwrap(),
        )
        .await;
        assert!(removal["metadata"]["annotations"]["rocketmq.rs/promote"].is_null());
    }
    // The master Service and the role labels follow the promotion.
    let master = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-f-master",
        echo,
    )
    .await;
    assert_eq!(
        master["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
        "broker-f-1"
    );
    for (pod, role) in [("broker-f-0", "slave"), ("broker-f-1", "master")] {
        let patch = expect(
            h,
            Method::PATCH,
            &format!("/api/v1/namespaces/default/pods/{pod}"),
            echo,
        )
        .await;
        assert_eq!(patch["metadata"]["labels"]["rocketmq.rs/role"], role);
    }
    let status = expect(
        h,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-f/status",
        |_| serde_json::to_value(&bg).unwrap(),
    )
    .await;
    let event = expect(
        h,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        echo,
    )
    .await;
    task.await.unwrap().expect("reconcile succeeds");

    let s = &status["status"];
    assert_eq!(s["masterPod"], "broker-f-1");
    let lead = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "MasterReady")
        .unwrap();
    assert_eq!(
        (lead["status"].as_str(), lead["reason"].as_str()),
        (Some("True"), Some("Promoted"))
    );
    assert_eq!(lead["message"], "broker-f-1 leads from epoch 2");
    assert_eq!(s["epoch"], 2);
    assert_eq!(s["replicas"][1]["role"], "MASTER");
    assert_eq!(s["replicas"][1]["brokerId"], 0);
    assert_eq!(s["replicas"][0]["role"], "SLAVE");
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Normal"), Some("Promoted"))
    );
    // The broker itself was promoted.
    assert_eq!(
        slave.inner().role.snapshot().epoch,
        rmq_remoting::role::Epoch(2)
    );
    assert!(!slave.inner().role.is_slave());
    slave.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unready_master_past_the_grace_period_gets_its_slave_promoted() {
    promotion(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_promote_annotation_switches_at_once() {
    promotion(true).await;
}
