//! The reconcilers against a mock Kubernetes API (tower-test): the requests they make, in
//! order, and the status they write; invalid specs and the pause annotation.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use rmq_operator::controller::{broker_group, nameserver, Context};
use rmq_operator::crd::{BrokerGroup, NameServer};
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Answers the next request: checks method and path, returns its JSON body, and replies
/// with `reply(body)`.
async fn expect(
    handle: &mut Handle,
    method: Method,
    path: &str,
    reply: impl FnOnce(&Value) -> Value,
) -> Value {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request, expected {method} {path}"))
        .unwrap_or_else(|| panic!("client gone, expected {method} {path}"));
    assert_eq!(
        (req.method().clone(), req.uri().path()),
        (method, path),
        "query: {:?}",
        req.uri().query()
    );
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply(&body)).unwrap()))
            .unwrap(),
    );
    body
}

fn echo(body: &Value) -> Value {
    body.clone()
}

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
    task.await.unwrap().expect("reconcile succeeds");
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
    assert!(
        master.contains("rocketmq-2.rocketmq-headless.default.svc:9876"),
        "all three name servers: {master}"
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
