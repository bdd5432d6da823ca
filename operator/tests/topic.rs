//! The Topic reconciler against a mock Kubernetes API and a real name server and broker on
//! 127.0.0.1: created on the master, deleted per policy, DeleteIfEmpty refusing while
//! messages are unconsumed, ordered topics writing their order config to the name servers.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rmq_broker::Broker;
use rmq_nameserver::{NameServer as Namesrv, NamesrvConfig};
use rmq_operator::controller::{topic, Context, Error};
use rmq_operator::crd::Topic;
use serde_json::{json, Value};

mod common;
use common::{expect, mock, Handle};

fn topic_obj(policy: &str, deleting: bool) -> Value {
    let mut meta = json!({ "name": "orders", "namespace": "default", "uid": "t-1", "generation": 1,
                           "finalizers": ["rocketmq.rs/topic"] });
    if deleting {
        meta["deletionTimestamp"] = json!("2026-11-21T00:00:00Z");
    }
    json!({ "apiVersion": "rocketmq.rs/v1alpha1", "kind": "Topic", "metadata": meta,
            "spec": { "clusterName": "DefaultCluster", "readQueueNums": 4, "writeQueueNums": 4, "deletionPolicy": policy } })
}

fn broker_groups(addr: &str, ns: &str) -> Value {
    json!({ "apiVersion": "rocketmq.rs/v1alpha1", "kind": "BrokerGroupList", "metadata": {}, "items": [{
        "apiVersion": "rocketmq.rs/v1alpha1", "kind": "BrokerGroup",
        "metadata": { "name": "broker-a", "namespace": "default" },
        "spec": { "nameServer": { "address": ns }, "storage": { "size": "1Gi" } },
        "status": { "replicas": [{ "pod": "broker-a-0", "brokerId": 0, "role": "MASTER", "address": addr, "ready": true }] }
    }]})
}

/// Answers the broker-group list every Topic/ConsumerGroup reconcile starts with.
/// Answers the next request, an Event POST, and checks its type and reason.
async fn expect_event(handle: &mut Handle, type_: &str, reason: &str) -> Value {
    let event = expect(
        handle,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        |b| b.clone(),
    )
    .await;
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some(type_), Some(reason)),
        "{event}"
    );
    event
}

async fn expect_broker_groups(handle: &mut Handle, addr: &str, ns_addr: &str) {
    let (a, n) = (addr.to_string(), ns_addr.to_string());
    expect(
        handle,
        Method::GET,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/brokergroups",
        move |_| broker_groups(&a, &n),
    )
    .await;
}

async fn cluster(dir: &std::path::Path) -> (Namesrv, Broker, String, String) {
    let ns = Namesrv::start(NamesrvConfig {
        listen_port: 0,
        bind_address: "127.0.0.1".into(),
        kv_config_path: dir.join("kv.json").display().to_string(),
        config_store_path: dir.join("ns.properties").display().to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let ns_addr = ns.local_addr().to_string();
    let s = rmq_testkit::broker_settings(dir, &ns_addr, "broker-a");
    let addr = format!("127.0.0.1:{}", s.broker.listen_port);
    let broker = Broker::start(s).await.unwrap();
    (ns, broker, addr, ns_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_created_then_deleted_per_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker, addr, ns_addr) = cluster(dir.path()).await;
    let (client, mut handle) = mock();
    let ctx = Arc::new(Context::new(client));

    // Apply: list broker groups, create on the master, write status.
    let t: Topic = serde_json::from_value(topic_obj("Delete", false)).unwrap();
    let task = tokio::spawn(topic::reconcile(Arc::new(t), ctx.clone()));
    expect_broker_groups(&mut handle, &addr, &ns_addr).await;
    let status = expect(
        &mut handle,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/topics/orders/status",
        |_| topic_obj("Delete", false),
    )
    .await;
    let event = expect_event(&mut handle, "Normal", "Created").await;
    assert_eq!(event["note"], "on 1/1 brokers");
    task.await.unwrap().expect("apply succeeds");
    assert_eq!(
        status["status"]["brokers"]["broker-a"], "Created",
        "{status}"
    );
    let tc = broker
        .inner()
        .topics
        .get("orders")
        .expect("topic created on the broker");
    assert_eq!(
        (tc.read_queue_nums, tc.write_queue_nums, tc.perm),
        (4, 4, 6)
    );

    // Delete: the topic goes from the broker, then the finalizer is removed.
    let t: Topic = serde_json::from_value(topic_obj("Delete", true)).unwrap();
    let task = tokio::spawn(topic::reconcile(Arc::new(t), ctx.clone()));
    expect_broker_groups(&mut handle, &addr, &ns_addr).await;
    expect_event(&mut handle, "Normal", "Deleted").await;
    let patch = expect(
        &mut handle,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/topics/orders",
        |_| topic_obj("Delete", true),
    )
    .await;
    assert!(
        patch.to_string().contains("finalizers"),
        "finalizer removal: {patch}"
    );
    task.await.unwrap().expect("cleanup succeeds");
    assert!(
        broker.inner().topics.get("orders").is_none(),
        "topic deleted on the broker"
    );

    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_empty_refuses_while_messages_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker, addr, ns_addr) = cluster(dir.path()).await;
    let (client, mut handle) = mock();
    let ctx = Arc::new(Context::new(client));
    // The topic exists with one unconsumed message.
    let remoting = rmq_testkit::admin_client();
    let create = rmq_remoting::RemotingCommand::request_with_header(
        rmq_remoting::RequestCode::UPDATE_AND_CREATE_TOPIC,
        &rmq_remoting::header::CreateTopicRequestHeader {
            topic: "orders".into(),
            default_topic: "TBW102".into(),
            read_queue_nums: 1,
            write_queue_nums: 1,
            perm: 6,
            topic_filter_type: "SINGLE_TAG".into(),
            ..Default::default()
        },
    );
    remoting
        .invoke(&addr, create, Duration::from_secs(5))
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let send = rmq_remoting::RemotingCommand::request_with_header(
        rmq_remoting::RequestCode::SEND_MESSAGE_V2,
        &rmq_remoting::header::SendMessageRequestHeaderV2::from_v1(
            rmq_remoting::header::SendMessageRequestHeader {
                producer_group: "pg".into(),
                topic: "orders".into(),
                default_topic: "TBW102".into(),
                default_topic_queue_nums: 1,
                queue_id: 0,
                born_timestamp: 1,
                ..Default::default()
            },
        ),
    )
    .with_body(&b"pending"[..]);
    remoting
        .invoke(&addr, send, Duration::from_secs(5))
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let t: Topic = serde_json::from_value(topic_obj("DeleteIfEmpty", true)).unwrap();
    let task = tokio::spawn(topic::reconcile(Arc::new(t), ctx.clone()));
    expect_broker_groups(&mut handle, &addr, &ns_addr).await;
    let status = expect(
        &mut handle,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/topics/orders/status",
        |_| topic_obj("DeleteIfEmpty", true),
    )
    .await;
    expect_event(&mut handle, "Warning", "DeletionRefused").await;
    let result = task.await.unwrap();
    assert!(
        matches!(result, Err(Error::DeletionRefused(_))),
        "{result:?}"
    );
    let cond = &status["status"]["conditions"][0];
    assert_eq!(cond["type"], "DeletionBlocked");
    assert!(
        cond["message"].as_str().unwrap().contains("1 messages"),
        "{status}"
    );
    assert!(broker.inner().topics.get("orders").is_some(), "topic kept");

    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_is_declared_on_the_master() {
    use rmq_operator::controller::consumer_group;
    use rmq_operator::crd::ConsumerGroup;
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker, addr, ns_addr) = cluster(dir.path()).await;
    let (client, mut handle) = mock();
    let ctx = Arc::new(Context::new(client));
    let obj = json!({ "apiVersion": "rocketmq.rs/v1alpha1", "kind": "ConsumerGroup",
        "metadata": { "name": "order-processor", "namespace": "default", "uid": "g-1", "generation": 2,
                      "finalizers": ["rocketmq.rs/consumergroup"] },
        "spec": { "retryMaxTimes": 5, "consumeMessageOrderly": true } });
    let g: ConsumerGroup = serde_json::from_value(obj.clone()).unwrap();
    let task = tokio::spawn(consumer_group::reconcile(Arc::new(g), ctx.clone()));
    expect_broker_groups(&mut handle, &addr, &ns_addr).await;
    let status = expect(
        &mut handle,
        Method::PATCH,
        "/apis/rocketmq.rs/v1alpha1/namespaces/default/consumergroups/order-processor/status",
        move |_| obj,
    )
    .await;
    expect_event(&mut handle, "Normal", "Created").await;
    task.await.unwrap().expect("apply succeeds");
    assert_eq!(status["status"]["brokers"]["broker-a"], "Created");
    let cfg = broker
        .inner()
        .groups
        .get("order-processor")
        .expect("group on the broker");
    assert_eq!(cfg.retry_max_times, 5);
    assert!(cfg.consume_message_orderly);
    broker.shutdown().await;
    ns.shutdown().await;
}

/// The name server's ORDER_TOPIC_CONFIG entry for `topic`, if any.
async fn order_conf(ctx: &Context, ns_addr: &str, topic: &str) -> Option<String> {
    use rmq_remoting::header::{GetKvConfigRequestHeader, GetKvConfigResponseHeader};
    use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};
    let req = RemotingCommand::request_with_header(
        RequestCode::GET_KV_CONFIG,
        &GetKvConfigRequestHeader {
            namespace: "ORDER_TOPIC_CONFIG".into(),
            key: topic.into(),
        },
    );
    let r = ctx
        .remoting
        .invoke(ns_addr, req, Duration::from_secs(5))
        .await
        .unwrap();
    (r.code == ResponseCode::SUCCESS)
        .then(|| {
            r.decode_header::<GetKvConfigResponseHeader>()
                .unwrap()
                .value
        })
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_topic_writes_order_config_on_the_name_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker, addr, ns_addr) = cluster(dir.path()).await;
    let (client, mut handle) = mock();
    let ctx = Arc::new(Context::new(client));

    for order in [true, false] {
        let mut obj = topic_obj("Delete", false);
        obj["spec"]["order"] = json!(order);
        if !order {
            // The second pass sees the Ready status the first one wrote: no new event.
            obj["status"] = json!({ "conditions": [{ "type": "Ready", "status": "True",
                "reason": "Created", "message": "1/1 brokers",
                "lastTransitionTime": "2026-01-01T00:00:00Z" }] });
        }
        let t: Topic = serde_json::from_value(obj.clone()).unwrap();
        let task = tokio::spawn(topic::reconcile(Arc::new(t), ctx.clone()));
        expect_broker_groups(&mut handle, &addr, &ns_addr).await;
        let status = expect(
            &mut handle,
            Method::PATCH,
            "/apis/rocketmq.rs/v1alpha1/namespaces/default/topics/orders/status",
            move |_| obj,
        )
        .await;
        if order {
            expect_event(&mut handle, "Normal", "Created").await;
        }
        task.await.unwrap().expect("apply succeeds");
        let ready = status["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "True", "{status}");
        let conf = order_conf(&ctx, &ns_addr, "orders").await;
        if order {
            // One master with 4 write queues, as `updateTopic -o true` would write it.
            assert_eq!(conf.as_deref(), Some("broker-a:4"));
            assert!(broker.inner().topics.get("orders").unwrap().order);
        } else {
            assert_eq!(conf, None, "order: false removes the entry");
        }
    }
    broker.shutdown().await;
    ns.shutdown().await;
}

#[test]
fn order_conf_names_every_master_once() {
    let masters = [
        ("broker-b".to_string(), "10.0.0.2:10911".to_string()),
        ("broker-a".to_string(), "10.0.0.1:10911".to_string()),
        ("broker-b".to_string(), "10.0.0.2:10911".to_string()),
    ];
    assert_eq!(topic::order_conf(&masters, 8), "broker-a:8;broker-b:8");
    assert_eq!(topic::order_conf(&[], 8), "");
}
