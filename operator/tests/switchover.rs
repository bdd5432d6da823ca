//! Moving the master away from a live broker, by the BrokerGroup reconciler against a mock
//! Kubernetes API and two real brokers on 127.0.0.1: the `rocketmq.rs/promote` annotation
//! switches to the named slave, a scale-down that would remove the master's pod first switches
//! back to a pod that stays, and a pending roll first brings the master back to ordinal 0 (the
//! StatefulSet rolls it last). Nothing written before a switch is cut; the former
//! master follows the new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use rmq_broker::Broker;
use rmq_operator::controller::{broker_group, Context};
use rmq_operator::crd::BrokerGroup;
use rmq_remoting::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use rmq_remoting::{RemotingClient, RemotingCommand, RequestCode, ResponseCode};
use serde_json::{json, Value};

mod common;
use common::{echo, expect, mock, namesrv};

/// A NodePort base whose pod 0 and pod 1 ports (`base + 2`, `base + 5`) and their HA ports
/// (+1) are free on 127.0.0.1.
fn free_base(from: u16) -> u16 {
    (from..from + 450)
        .step_by(7)
        .find(|b| {
            [2, 3, 5, 6]
                .iter()
                .all(|d| std::net::TcpListener::bind(("127.0.0.1", b + d)).is_ok())
        })
        .expect("free ports in the NodePort range")
}

async fn broker(ns: &str, dir: &std::path::Path, port: u16, id: i64, role: &str) -> Broker {
    let mut s = rmq_testkit::broker_settings(dir, ns, "broker-w");
    s.store.store_path_root_dir = dir.join(format!("store-{id}")).display().to_string();
    s.broker.listen_port = port;
    s.broker.enable_vip_channel = false;
    s.broker.broker_id = id;
    s.broker.broker_role = role.parse().unwrap();
    Broker::start(s).await.unwrap()
}

fn send(body: &str) -> RemotingCommand {
    let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "SwitchTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        born_timestamp: rmq_remoting::util::now_millis(),
        ..Default::default()
    });
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &h)
        .with_body(body.as_bytes().to_vec())
}

fn group(base: u16, ns: &str, replicas: i32, annotations: Value, status: Value) -> BrokerGroup {
    serde_json::from_value(json!({
        "apiVersion": "rocketmq.rs/v1alpha1", "kind": "BrokerGroup",
        "metadata": { "name": "broker-w", "namespace": "default", "uid": "u-w", "generation": 2,
                      "annotations": annotations },
        "spec": {
            "nameServer": { "address": ns }, "replicas": replicas, "brokerRole": "ASYNC_MASTER",
            "storage": { "size": "10Gi" },
            "addressing": { "mode": "External", "external": {
                "type": "NodePort", "nodePortBase": base, "advertisedHost": "127.0.0.1" } }
        },
        "status": status
    }))
    .unwrap()
}

/// One reconcile of a group whose two pods are ready: the API calls in their order, up to the
/// status. Returns (StatefulSet patch, status patch, event).
async fn reconcile(
    bg: BrokerGroup,
    pods: usize,
    sts_status: Value,
    switches: bool,
) -> (Value, Value, Value) {
    let down0 = bg
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key("test/pod-0-down"));
    let (client, mut handle) = mock();
    let ctx = Arc::new(Context::new(client));
    let task = tokio::spawn(broker_group::reconcile(Arc::new(bg.clone()), ctx));
    let h = &mut handle;
    let p = "/api/v1/namespaces/default";
    expect(
        h,
        Method::PATCH,
        &format!("{p}/configmaps/broker-w-config"),
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        &format!("{p}/services/broker-w-headless"),
        echo,
    )
    .await;
    for i in 0..pods {
        let path = format!("{p}/services/broker-w-{i}-external");
        expect(h, Method::PATCH, &path, echo).await;
    }
    let sts = expect(
        h,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/statefulsets/broker-w",
        |b| {
            let mut b = b.clone();
            b["status"] = sts_status;
            b
        },
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/broker-w",
        echo,
    )
    .await;
    expect(
        h,
        Method::PATCH,
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/broker-w",
        echo,
    )
    .await;
    expect(
        h,
        Method::GET,
        &format!("{p}/services"),
        |_| json!({ "apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": [] }),
    )
    .await;
    expect(h, Method::GET, &format!("{p}/pods"), |_| {
        // Pod 0 is down when its broker is not there (the adoption test).
        let pod = |i: usize| {
            let ready = if i == 0 && down0 { "False" } else { "True" };
            json!({ "metadata": { "name": format!("broker-w-{i}"), "namespace": "default" },
                    "status": { "podIP": "10.0.0.9", "hostIP": "127.0.0.1",
                                "conditions": [{ "type": "Ready", "status": ready,
                                                 "lastTransitionTime": "2020-01-01T00:00:00Z" }] } })
        };
        json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {},
                "items": (0..pods).map(pod).collect::<Vec<_>>() })
    })
    .await;
    // The switch happens here, over the wire, and is recorded at once; a promote annotation
    // it satisfied is removed; then the master Service and the labels.
    let recorded = if switches {
        expect(
            h,
            Method::PATCH,
            "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-w/status",
            |_| serde_json::to_value(&bg).unwrap(),
        )
        .await
    } else {
        Value::Null
    };
    if bg
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| !a.is_empty())
    {
        let removal = expect(
            h,
            Method::PATCH,
            "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-w",
            |_| serde_json::to_value(&bg).unwrap(),
        )
        .await;
        assert!(removal["metadata"]["annotations"]["rocketmq.rs/promote"].is_null());
    }
    let master = expect(
        h,
        Method::PATCH,
        &format!("{p}/services/broker-w-master"),
        echo,
    )
    .await;
    let selected = master["spec"]["selector"]["statefulset.kubernetes.io/pod-name"].clone();
    for i in 0..pods {
        let patch = expect(h, Method::PATCH, &format!("{p}/pods/broker-w-{i}"), echo).await;
        let role = if selected == format!("broker-w-{i}") {
            "master"
        } else {
            "slave"
        };
        assert_eq!(patch["metadata"]["labels"]["rocketmq.rs/role"], role);
    }
    let status = expect(
        h,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups/broker-w/status",
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
    assert_eq!(selected, status["status"]["masterPod"]);
    if switches {
        assert_eq!(
            recorded["status"]["masterPod"],
            status["status"]["masterPod"]
        );
        assert_eq!(recorded["status"]["epoch"], status["status"]["epoch"]);
    }
    (sts, status, event)
}

/// Sends until one succeeds on `addr`, then `n` more; their offset ids.
async fn write(client: &RemotingClient, addr: &str, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .invoke(addr, send("probe"), Duration::from_secs(3))
            .await;
        if r.is_ok_and(|r| r.code == ResponseCode::SUCCESS) {
            break;
        }
        assert!(Instant::now() < deadline, "{addr} never took a write");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids = Vec::new();
    for i in 0..n {
        let body = format!("{addr}-{i}");
        let r = client
            .invoke(addr, send(&body), Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
        let h: SendMessageResponseHeader = r.decode_header().unwrap();
        ids.push((body, h.msg_id));
    }
    ids
}

/// Waits until `b` holds all of `a`'s log.
async fn follows(a: &Broker, b: &Broker) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.inner().store.max_phy_offset() < a.inner().store.max_phy_offset() {
        assert!(
            Instant::now() < deadline,
            "no replication to the former master"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_there(b: &Broker, ids: &[(String, String)]) {
    for (body, id) in ids {
        let (_, offset) = rmq_remoting::message::decode_offset_msg_id(id).unwrap();
        let m = b
            .inner()
            .store
            .look_message_by_offset(offset)
            .unwrap_or_else(|| panic!("{body} cut"));
        assert_eq!(m.body.as_ref(), body.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_switches_a_live_master_then_scale_down_switches_back() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let base = free_base(32005);
    let b0 = broker(&ns_addr, dir.path(), base + 2, 0, "ASYNC_MASTER").await;
    let b1 = broker(&ns_addr, dir.path(), base + 5, 1, "SLAVE").await;
    let (a0, a1) = (
        format!("127.0.0.1:{}", base + 2),
        format!("127.0.0.1:{}", base + 5),
    );
    let client = rmq_testkit::admin_client();
    let first = write(&client, &a0, 30).await;

    // 1. Annotation on a live master: read-only, catch up, promote, step down.
    let bg = group(
        base,
        &ns_addr,
        2,
        json!({ "rocketmq.rs/promote": "broker-w-1" }),
        json!({ "masterPod": "broker-w-0", "epoch": 1, "observedGeneration": 2 }),
    );
    let (_, status, event) = reconcile(bg, 2, json!({}), true).await;
    let s = &status["status"];
    assert_eq!(
        (s["masterPod"].as_str(), s["epoch"].as_i64()),
        (Some("broker-w-1"), Some(2))
    );
    assert_eq!(s["replicas"][0]["brokerId"], 5, "ordinal 0 as a slave");
    let lead = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "MasterReady")
        .unwrap();
    assert_eq!(lead["reason"], "SwitchedOver");
    assert_eq!(event["reason"], "Promoted");
    assert!(
        event["note"].as_str().unwrap().contains("nothing cut"),
        "{event}"
    );
    assert!(!b1.inner().role.is_slave());
    assert_eq!(
        b1.inner().role.snapshot().epoch,
        rmq_remoting::role::Epoch(2)
    );
    {
        let s0 = b0.inner().current_settings();
        assert!(s0.broker.is_slave(), "the former master stepped down");
        assert_eq!(s0.broker.broker_id, 5);
        assert_eq!(
            s0.broker.broker_permission,
            rmq_remoting::role::Perm::READ_WRITE,
            "its permission is given back"
        );
    }
    all_there(&b1, &first);
    let second = write(&client, &a1, 30).await;
    follows(&b1, &b0).await;
    all_there(&b0, &first);
    all_there(&b0, &second);

    // 2. Scaling to one pod would remove the master (ordinal 1): the StatefulSet keeps two
    //    pods, and the master moves to ordinal 0 first.
    let bg = group(
        base,
        &ns_addr,
        1,
        json!({}),
        json!({ "masterPod": "broker-w-1", "epoch": 2, "observedGeneration": 2 }),
    );
    let (sts, status, _) = reconcile(bg, 2, json!({}), true).await;
    assert_eq!(sts["spec"]["replicas"], 2, "the master's pod stays for now");
    let s = &status["status"];
    assert_eq!(
        (s["masterPod"].as_str(), s["epoch"].as_i64()),
        (Some("broker-w-0"), Some(3))
    );
    assert!(!b0.inner().role.is_slave());
    assert!(b1.inner().role.is_slave());
    all_there(&b0, &second);
    // The next reconcile may shrink the StatefulSet: the master is within the spec.
    let mut bg = group(base, &ns_addr, 1, json!({}), json!({}));
    bg.status = serde_json::from_value(s.clone()).ok();
    let objects = rmq_operator::build::broker_group::build(
        &bg,
        &rmq_operator::controller::owner_of(&bg).unwrap(),
        &ns_addr,
    )
    .unwrap();
    assert_eq!(objects.stateful_set.spec.unwrap().replicas, Some(1));
    let _ = a1;
    b1.shutdown().await;
    b0.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_roll_waits_and_brings_the_master_back_to_ordinal_0_first() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let base = free_base(31505);
    // After an earlier failover: ordinal 1 leads, ordinal 0 follows as broker 5.
    let b1 = broker(&ns_addr, dir.path(), base + 5, 0, "ASYNC_MASTER").await;
    let b0 = broker(&ns_addr, dir.path(), base + 2, 5, "SLAVE").await;
    let client = rmq_testkit::admin_client();
    let written = write(&client, &format!("127.0.0.1:{}", base + 5), 30).await;
    follows(&b1, &b0).await;

    let status = json!({ "masterPod": "broker-w-1", "epoch": 1, "observedGeneration": 2,
                         "replicas": [{ "pod": "broker-w-0", "brokerId": 5, "role": "SLAVE",
                                        "ready": true },
                                      { "pod": "broker-w-1", "brokerId": 0, "role": "MASTER",
                                        "ready": true }] });
    let bg = group(base, &ns_addr, 2, json!({}), status);
    // A config change is staged: the StatefulSet has a revision its pods do not run.
    let (sts, status, event) = reconcile(
        bg,
        2,
        json!({ "replicas": 2, "currentRevision": "broker-w-a", "updateRevision": "broker-w-b" }),
        true,
    )
    .await;
    assert_eq!(
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 2,
        "no pod rolls while the master is not ordinal 0"
    );
    let s = &status["status"];
    assert_eq!(
        (s["masterPod"].as_str(), s["epoch"].as_i64()),
        (Some("broker-w-0"), Some(2))
    );
    assert_eq!(event["reason"], "Promoted");
    assert!(!b0.inner().role.is_slave());
    assert!(b1.inner().role.is_slave());
    all_there(&b0, &written);
    // Built again with ordinal 0 leading: the roll may go (ordinal 0 last).
    let mut bg = group(base, &ns_addr, 2, json!({}), json!({}));
    bg.status = serde_json::from_value(s.clone()).ok();
    assert_eq!(rmq_operator::build::broker_group::roll_partition(&bg), 0);
    b0.shutdown().await;
    b1.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_master_is_told_to_step_down() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let base = free_base(31005);
    // Ordinal 1 leads; ordinal 0 came back from a restart with a config from before the
    // switch and runs as a master too (registering as broker 0, as any master does; the 9
    // only names its store directory). A broker started as a master follows a newer master
    // it can see by itself; this one could not (its name server, restarted, knew nobody of
    // the group), so it confirmed its term: the operator tells it.
    let b1 = broker(&ns_addr, dir.path(), base + 5, 0, "ASYNC_MASTER").await;
    let blind = namesrv(&dir.path().join("blind")).await;
    let b0 = broker(
        &blind.local_addr().to_string(),
        dir.path(),
        base + 2,
        9,
        "ASYNC_MASTER",
    )
    .await;
    assert!(
        b0.inner().role.snapshot().writable(),
        "a confirmed second master"
    );
    let status = json!({ "masterPod": "broker-w-1", "epoch": 1, "observedGeneration": 2 });
    let bg = group(base, &ns_addr, 2, json!({}), status);
    let (_, status, event) = reconcile(bg, 2, json!({}), false).await;
    assert_eq!(status["status"]["masterPod"], "broker-w-1");
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("SecondMaster"))
    );
    {
        let s0 = b0.inner().current_settings();
        assert!(s0.broker.is_slave(), "the second master stepped down");
        assert_eq!(s0.broker.broker_id, 5);
    }
    assert!(!b1.inner().role.is_slave());
    // It now refuses writes and follows the recorded master.
    let client = rmq_testkit::admin_client();
    let r = client
        .invoke(
            &format!("127.0.0.1:{}", base + 2),
            send("to the former second master"),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    assert_ne!(r.code, ResponseCode::SUCCESS);
    b0.shutdown().await;
    b1.shutdown().await;
    blind.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_that_already_leads_is_adopted_not_promoted_again() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let base = free_base(30505);
    // The master (ordinal 0) is gone; ordinal 1 was promoted, but the answer never reached
    // the operator, so status still names ordinal 0.
    let b1 = broker(&ns_addr, dir.path(), base + 5, 0, "ASYNC_MASTER").await;
    let mut bg = group(
        base,
        &ns_addr,
        2,
        json!({}),
        json!({ "masterPod": "broker-w-0", "epoch": 1, "observedGeneration": 2 }),
    );
    bg.metadata.labels = Some([("test/pod-0-down".to_string(), "yes".to_string())].into());
    let (_, status, event) = reconcile(bg, 2, json!({}), true).await;
    let s = &status["status"];
    assert_eq!(
        (s["masterPod"].as_str(), s["epoch"].as_i64()),
        (Some("broker-w-1"), Some(1))
    );
    assert_eq!(event["reason"], "Promoted");
    // Adopted as it is: not asked again (which it would refuse), its epoch unchanged.
    assert_eq!(
        b1.inner().role.snapshot().epoch,
        rmq_remoting::role::Epoch(1)
    );
    assert!(!b1.inner().role.is_slave());
    b1.shutdown().await;
    ns.shutdown().await;
}
