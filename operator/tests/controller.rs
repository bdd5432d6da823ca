//! The reconcilers against a mock Kubernetes API (tower-test): the requests they make, in
//! order, and the status they write; invalid specs and the pause annotation.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rmq_operator::controller::{broker_group, nameserver, Context};
use rmq_operator::crd::{BrokerGroup, NameServer};
use serde_json::{json, Value};

mod common;
use common::{echo, expect, mock};

fn nameserver_obj(replicas: i32, annotations: Value, config: Value) -> NameServer {
    serde_json::from_value(json!({
        "apiVersion": "rocketmq.rs/v1alpha1", "kind": "NameServer",
        "metadata": { "name": "rocketmq", "namespace": "default", "uid": "u-1", "generation": 3, "annotations": annotations },
        "spec": { "replicas": replicas, "config": config }
    }))
    .unwrap()
}

#[tokio::test]
async fn nameserver_applies_objects_in_order_and_reports_ready() {
    let (client, mut handle) = mock();
    let ns = nameserver_obj(2, json!({}), json!({}));
    let ctx = Arc::new(Context::new(client));
    let task = tokio::spawn(nameserver::reconcile(Arc::new(ns), ctx));
    let h = &mut handle;
    let cm = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/rocketmq-config",
        echo,
    )
    .await;
    assert!(cm["data"]["namesrv.conf"]
        .as_str()
        .unwrap()
        .contains("listenPort=9876"));
    assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], "u-1");
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/rocketmq-headless",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/rocketmq",
        echo,
    )
    .await;
    let sts = expect(
        h,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/statefulsets/rocketmq",
        |b| {
            let mut b = b.clone();
            b["status"] = json!({ "replicas": 2, "readyReplicas": 2 });
            b
        },
    )
    .await;
    assert_eq!(sts["spec"]["replicas"], 2);
    expect(
        h,
        Method::PATCH,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/rocketmq",
        echo,
    )
    .await;
    let status = expect(
        h,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/nameservers/rocketmq/status",
        |_| serde_json::to_value(nameserver_obj(2, json!({}), json!({}))).unwrap(),
    )
    .await;
    let s = &status["status"];
    assert_eq!(s["observedGeneration"], 3);
    assert_eq!(s["readyReplicas"], 2);
    assert!(s["address"]
        .as_str()
        .unwrap()
        .starts_with("rocketmq-0.rocketmq-headless.default.svc:9876;"));
    let ready = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    // Became ready: a Normal event says so.
    let event = expect(
        h,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        echo,
    )
    .await;
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Normal"), Some("Ready"))
    );
    assert_eq!(event["note"], "2/2 name servers ready");
    task.await.unwrap().expect("reconcile succeeds");
}

#[tokio::test]
async fn with_a_credential_the_secret_is_applied_before_the_pods_that_mount_it() {
    let (client, mut handle) = mock();
    let ns = nameserver_obj(1, json!({}), json!({}));
    let cred = rmq_remoting::Credentials::new("rocketmq-admin", "from-the-chart");
    let ctx = Arc::new(Context::new(client).with_admin(Some(cred)));
    let task = tokio::spawn(nameserver::reconcile(Arc::new(ns), ctx));
    let h = &mut handle;
    let secret = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/secrets/rocketmq-admin-credential",
        echo,
    )
    .await;
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "u-1");
    assert_eq!(secret["data"]["secretKey"], "ZnJvbS10aGUtY2hhcnQ=");
    let cm = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/rocketmq-config",
        echo,
    )
    .await;
    assert!(cm["data"]["namesrv.conf"]
        .as_str()
        .unwrap()
        .contains("adminCredentialFile=/etc/rocketmq-admin"));
    task.abort();
}

#[tokio::test]
async fn invalid_spec_is_reported_not_applied() {
    let (client, mut handle) = mock();
    let ns = nameserver_obj(2, json!({}), json!({ "listenPort": "1" }));
    let task = tokio::spawn(nameserver::reconcile(
        Arc::new(ns),
        Arc::new(Context::new(client)),
    ));
    let status = expect(
        &mut handle,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/nameservers/rocketmq/status",
        |_| serde_json::to_value(nameserver_obj(2, json!({}), json!({}))).unwrap(),
    )
    .await;
    let degraded = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(
        (degraded["status"].as_str(), degraded["reason"].as_str()),
        (Some("True"), Some("InvalidSpec"))
    );
    assert!(degraded["message"].as_str().unwrap().contains("listenPort"));
    // And a Warning event on the object, for `kubectl describe`.
    let event = expect(
        &mut handle,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        echo,
    )
    .await;
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("InvalidSpec"))
    );
    assert_eq!(event["regarding"]["kind"], "NameServer");
    assert!(event["note"].as_str().unwrap().contains("listenPort"));
    task.await
        .unwrap()
        .expect("an invalid spec is not a reconcile error");
}

#[tokio::test]
async fn paused_objects_are_left_alone() {
    let (client, mut handle) = mock();
    let ns = nameserver_obj(2, json!({ "rocketmq.rs/paused": "true" }), json!({}));
    nameserver::reconcile(Arc::new(ns), Arc::new(Context::new(client)))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    assert!(
        next.is_err() || next.unwrap().is_none(),
        "a paused object must not touch the API"
    );
}

#[tokio::test]
async fn broker_group_finds_its_name_servers_and_writes_per_ordinal_config() {
    let (client, mut handle) = mock();
    let bg: BrokerGroup = serde_json::from_value(json!({
        "apiVersion": "rocketmq.rs/v1alpha1", "kind": "BrokerGroup",
        "metadata": { "name": "broker-a", "namespace": "default", "uid": "u-2", "generation": 1 },
        "spec": { "nameServer": { "name": "rocketmq" }, "replicas": 2, "brokerRole": "SYNC_MASTER", "storage": { "size": "10Gi" } }
    }))
    .unwrap();
    let task = tokio::spawn(broker_group::reconcile(
        Arc::new(bg.clone()),
        Arc::new(Context::new(client)),
    ));
    let h = &mut handle;
    expect(
        h,
        Method::GET,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/nameservers/rocketmq",
        |_| serde_json::to_value(nameserver_obj(3, json!({}), json!({}))).unwrap(),
    )
    .await;
    let cm = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/broker-a-config",
        echo,
    )
    .await;
    let master = cm["data"]["broker-0.conf"].as_str().unwrap();
    let slave = cm["data"]["broker-1.conf"].as_str().unwrap();
    assert!(
        master.contains("brokerRole=SYNC_MASTER") && master.contains("brokerId=0"),
        "{master}"
    );
    assert!(
        slave.contains("brokerRole=SLAVE") && slave.contains("brokerId=1"),
        "{slave}"
    );
    // The headless Service name: it resolves to all three name servers, and scaling them
    // changes nothing here (no broker restart).
    assert!(
        master.contains("namesrvAddr=rocketmq-headless.default.svc:9876\n"),
        "{master}"
    );
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-a-headless",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/statefulsets/broker-a",
        |b| {
            let mut b = b.clone();
            b["status"] = json!({ "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2 });
            b
        },
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/broker-a",
        echo,
    )
    .await;
    // Only the group's pods reach the HA port; clients reach the remoting ports.
    let np = expect(
        h,
        Method::PATCH,
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/broker-a",
        echo,
    )
    .await;
    let rules = &np["spec"]["ingress"];
    assert_eq!(rules[1]["ports"][0]["port"], 10912);
    assert_eq!(
        rules[1]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        "broker-a"
    );
    assert_eq!(rules[0]["ports"][0]["port"], 10911);
    assert!(rules[0].get("from").is_none());
    // A per-pod external Service left from an earlier External spec is removed.
    expect(
        h,
        Method::GET,
        "/api/v1/namespaces/default/services",
        |_| service_list(&["broker-a-0-external"]),
    )
    .await;
    expect(
        h,
        Method::DELETE,
        "/api/v1/namespaces/default/services/broker-a-0-external",
        |_| service_list(&["broker-a-0-external"])["items"][0].clone(),
    )
    .await;
    // The pods: the master ready, the slave still starting.
    expect(h, Method::GET, "/api/v1/namespaces/default/pods", |_| {
        let pod = |name: &str, ip: &str, ready: &str| {
            json!({
                "metadata": { "name": name, "namespace": "default" },
                "status": { "podIP": ip, "podIPs": [{ "ip": ip }],
                            "conditions": [{ "type": "Ready", "status": ready }] }
            })
        };
        json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [pod("broker-a-0", "10.1.0.4", "True"), pod("broker-a-1", "10.1.0.9", "False")]
        })
    })
    .await;
    // The master Service selects the master pod; each pod is labelled with its role.
    let master = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-a-master",
        echo,
    )
    .await;
    assert_eq!(
        master["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
        "broker-a-0"
    );
    for (pod, role) in [("broker-a-0", "master"), ("broker-a-1", "slave")] {
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
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-a/status",
        |_| serde_json::to_value(&bg).unwrap(),
    )
    .await;
    let s = &status["status"];
    assert_eq!(s["masterPod"], "broker-a-0");
    assert_eq!(s["replicas"][0]["address"], "10.1.0.4:10911");
    assert_eq!(s["replicas"][0]["ready"], true);
    assert_eq!(s["replicas"][1]["role"], "SLAVE");
    assert_eq!(s["replicas"][1]["address"], "10.1.0.9:10911");
    assert_eq!(s["replicas"][1]["ready"], false);
    let ready = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False", "one of two pods ready");
    task.await.unwrap().expect("reconcile succeeds");
}

fn service_list(names: &[&str]) -> Value {
    let items: Vec<Value> = names
        .iter()
        .map(|n| json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": n, "namespace": "default" } }))
        .collect();
    json!({ "apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": items })
}

/// `External` LoadBalancer: a Service per pod, and each pod's load-balancer address published
/// for the pod to advertise as soon as the cloud has assigned it.
#[tokio::test]
async fn load_balancer_addresses_reach_the_pods_and_the_status() {
    let (client, mut handle) = mock();
    let bg: BrokerGroup = serde_json::from_value(json!({
        "apiVersion": "rocketmq.rs/v1alpha1", "kind": "BrokerGroup",
        "metadata": { "name": "broker-b", "namespace": "default", "uid": "u-3", "generation": 2 },
        "spec": {
            "nameServer": { "address": "ns-0:9876" }, "replicas": 2, "storage": { "size": "10Gi" },
            "addressing": { "mode": "External", "external": {
                "type": "LoadBalancer",
                "annotations": { "service.beta.kubernetes.io/aws-load-balancer-type": "nlb" },
                "loadBalancerSourceRanges": ["203.0.113.0/24"]
            } }
        }
    }))
    .unwrap();
    let task = tokio::spawn(broker_group::reconcile(
        Arc::new(bg.clone()),
        Arc::new(Context::new(client)),
    ));
    let h = &mut handle;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/broker-b-config",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-b-headless",
        echo,
    )
    .await;
    let svc0 = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-b-0-external",
        |b| {
            let mut b = b.clone();
            b["status"] = json!({ "loadBalancer": { "ingress": [{ "ip": "198.51.100.20" }] } });
            b
        },
    )
    .await;
    assert_eq!(svc0["spec"]["type"], "LoadBalancer");
    assert_eq!(
        svc0["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
        "broker-b-0"
    );
    assert_eq!(
        svc0["spec"]["loadBalancerSourceRanges"][0],
        "203.0.113.0/24"
    );
    assert_eq!(
        svc0["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"],
        "nlb"
    );
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-b-1-external",
        echo,
    )
    .await;
    let hosts = expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/configmaps/broker-b-external",
        echo,
    )
    .await;
    assert_eq!(hosts["data"]["broker-0.host"], "198.51.100.20");
    assert_eq!(hosts["data"]["broker-1.host"], "", "not assigned yet");
    let sts = expect(
        h,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/statefulsets/broker-b",
        echo,
    )
    .await;
    let script = sts["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        script.contains("/etc/rocketmq-external/broker-$i.host"),
        "{script}"
    );
    expect(
        h,
        Method::PATCH,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/broker-b",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/broker-b",
        echo,
    )
    .await;
    // Both wanted Services exist: nothing to delete.
    expect(
        h,
        Method::GET,
        "/api/v1/namespaces/default/services",
        |_| service_list(&["broker-b-0-external", "broker-b-1-external"]),
    )
    .await;
    expect(
        h,
        Method::GET,
        "/api/v1/namespaces/default/pods",
        |_| json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [] }),
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/api/v1/namespaces/default/services/broker-b-master",
        echo,
    )
    .await;
    let status = expect(
        h,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-b/status",
        |_| serde_json::to_value(&bg).unwrap(),
    )
    .await;
    assert_eq!(
        status["status"]["replicas"][0]["address"],
        "198.51.100.20:10911"
    );
    assert!(status["status"]["replicas"][1].get("address").is_none());
    task.await.unwrap().expect("reconcile succeeds");
}

#[tokio::test]
async fn without_a_mounted_credential_the_operator_keeps_one_in_a_secret() {
    let (client, mut handle) = mock();
    let task = tokio::spawn({
        let client = client.clone();
        async move { rmq_operator::controller::ensure_admin_secret(&client, "ops").await }
    });
    let h = &mut handle;
    // None yet: kube's get_opt reads a 404 Status as "absent".
    let (req, send) = h.next_request().await.unwrap();
    assert_eq!(
        req.uri().path(),
        "/api/v1/namespaces/ops/secrets/rocketmq-operator-admin-credential"
    );
    send.send_response(
        http::Response::builder()
            .status(404)
            .body(kube::client::Body::from(
                serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})).unwrap(),
            ))
            .unwrap(),
    );
    let created = expect(h, Method::POST, "/api/v1/namespaces/ops/secrets", echo).await;
    let secret = created["data"]["secretKey"].as_str().unwrap().to_string();
    let cred = task.await.unwrap().unwrap();
    assert_eq!(cred.access_key, "rocketmq-admin");
    assert!(cred.secret_key.len() >= 40);
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap(),
        cred.secret_key.as_bytes()
    );
    // Next start: the same credential is read back.
    let task =
        tokio::spawn(
            async move { rmq_operator::controller::ensure_admin_secret(&client, "ops").await },
        );
    expect(
        h,
        Method::GET,
        "/api/v1/namespaces/ops/secrets/rocketmq-operator-admin-credential",
        |_| created.clone(),
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap(), cred);
}
