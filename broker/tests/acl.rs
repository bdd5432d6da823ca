//! The plain ACL (`aclEnable=true`) with `rocketmq-client-rust`'s own ACL hook as the client:
//! the right keys produce and consume; a wrong secret, an unknown key, a missing permission
//! and an address outside the white lists are refused with RocketMQ's code and text; an edit
//! of `plain_acl.yml` takes effect without a restart.

use std::collections::HashSet;
use std::time::Duration;

use rocketmq_client_rust::{DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;

use rmq_remoting::{Credentials, RemotingClient, RemotingCommand, ResponseCode};
use rmq_testkit::client::*;

const T: Duration = Duration::from_secs(5);

const ACL: &str = r#"
globalWhiteRemoteAddresses:
accounts:
  - accessKey: producer-ak
    secretKey: producer-secret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - Orders=PUB
      - Secret=DENY
  - accessKey: consumer-ak
    secretKey: consumer-secret
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms:
      - Orders=SUB
    groupPerms:
      - readers=SUB
  - accessKey: office-ak
    secretKey: office-secret
    whiteRemoteAddress: 10.1.1.*
    defaultTopicPerm: PUB
"#;

fn send_req(topic: &str) -> RemotingCommand {
    rmq_testkit::send_request(topic, b"m")
}

fn create_topic(topic: &str) -> RemotingCommand {
    rmq_testkit::create_topic_request(topic, 4, 6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_with_their_acl_hook_and_every_refusal() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("conf")).unwrap();
    let acl_file = home.path().join("conf/plain_acl.yml");
    std::fs::write(&acl_file, ACL).unwrap();
    let c = start_cluster(|s| {
        s.broker.acl_enable = true;
        s.broker.rocketmq_home = home.path().display().to_string();
        // The ACL files are looked at with the offset flush.
        s.broker.flush_consumer_offset_interval = 200;
    })
    .await;
    let addr = c.broker.local_addr().to_string();
    // The admin credential passes the ACL (it is how brokers and the operator talk).
    let admin = rmq_testkit::admin_client();
    for t in ["Orders", "Secret"] {
        let r = admin.invoke(&addr, create_topic(t), T).await.unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    }

    // The right keys, through the client's own hook: produce, then consume.
    let rt = client_runtime("acl");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .producer_group("acl_pg")
        .rpc_hook(acl_hook("producer-ak", "producer-secret"))
        .build();
    producer.start().await.expect("producer starts");
    let sent: HashSet<String> = (0..20).map(|i| format!("order-{i}")).collect();
    for body in &sent {
        producer
            .send_with_timeout(message("Orders", "A", body.clone()), 5000)
            .await
            .expect("a send with the right keys is accepted");
    }
    let got = Bodies::default();
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .consumer_group("readers")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .rpc_hook(Some(acl_hook("consumer-ak", "consumer-secret")))
        .build();
    consumer.subscribe("Orders", "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(got.clone());
    consumer.start().await.expect("consumer starts");
    assert!(
        wait_until(Duration::from_secs(60), || *got.0.lock().unwrap() == sent).await,
        "the consumer got {} of {}",
        got.0.lock().unwrap().len(),
        sent.len()
    );
    consumer.shutdown().await;

    // The same client with a wrong secret: refused, and its user sees RocketMQ's words.
    let mut wrong = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .producer_group("acl_pg_wrong")
        .rpc_hook(acl_hook("producer-ak", "not-the-secret"))
        .build();
    wrong.start().await.expect("producer starts");
    let e = wrong
        .send_with_timeout(message("Orders", "A", "x".into()), 5000)
        .await
        .expect_err("a wrong secret is refused");
    // The client redacts the broker's remark in its error; the wire cases below check it.
    assert!(
        format!("{e:?}").contains("broker.operation.failed"),
        "{e:?}"
    );
    wrong.shutdown().await;
    producer.shutdown().await;

    // Each refusal on the wire: SYSTEM_ERROR with the AclException text, as RocketMQ.
    let refused = |ak: Option<(&str, &str)>, req: RemotingCommand| {
        let client =
            RemotingClient::default().with_credentials(ak.map(|(a, s)| Credentials::new(a, s)));
        let addr = addr.clone();
        async move {
            let r = client.invoke(&addr, req, T).await.unwrap();
            assert_eq!(r.code, ResponseCode::SYSTEM_ERROR, "{:?}", r.remark);
            r.remark.unwrap_or_default()
        }
    };
    let cases = [
        (
            Some(("producer-ak", "wrong-secret")),
            send_req("Orders"),
            "Check signature failed for accessKey=producer-ak",
        ),
        (
            Some(("nobody-ak", "whatever-secret")),
            send_req("Orders"),
            "No acl config for nobody-ak",
        ),
        (
            Some(("producer-ak", "producer-secret")),
            send_req("Secret"),
            "No permission for topic:Secret",
        ),
        (
            Some(("producer-ak", "producer-secret")),
            send_req("Elsewhere"),
            "No default permission for topic:Elsewhere",
        ),
        (
            Some(("consumer-ak", "consumer-secret")),
            send_req("Orders"),
            "No permission for topic:Orders",
        ),
        (
            Some(("producer-ak", "producer-secret")),
            create_topic("Mine"),
            "Need admin permission for request code=17, but accessKey=producer-ak is not",
        ),
        // Not on the global white list and no key at all.
        (None, send_req("Orders"), "No accessKey is configured"),
    ];
    for (ak, req, want) in cases {
        let remark = refused(ak, req).await;
        assert_eq!(
            remark,
            format!("org.apache.rocketmq.acl.common.AclException: {want}")
        );
    }
    // An account's white list that does not hold this address: its signature is checked,
    // and an unsigned request fails it.
    let mut unsigned = send_req("Orders");
    unsigned
        .ext_fields
        .insert("AccessKey".into(), "office-ak".into());
    assert!(refused(None, unsigned)
        .await
        .ends_with("Check signature failed for accessKey=office-ak"));

    // An edit takes effect without a restart: 127.0.0.1 on the global white list.
    std::fs::write(
        &acl_file,
        ACL.replace(
            "globalWhiteRemoteAddresses:",
            "globalWhiteRemoteAddresses:\n  - 127.0.0.1",
        ),
    )
    .unwrap();
    let anyone = RemotingClient::default();
    let mut reloaded = false;
    for _ in 0..100 {
        let r = anyone.invoke(&addr, send_req("Orders"), T).await.unwrap();
        if r.code == ResponseCode::SUCCESS {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloaded,
        "the white-listed address is let in after the reload"
    );
    c.stop().await;
}
