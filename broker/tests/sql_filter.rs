//! SQL92 filtering (`enablePropertyFilter`) through `rocketmq-client-rust`: a consumer with
//! `MessageSelector.bySql` gets exactly the messages whose properties match; a broker without
//! the flag, or a bad expression, is refused with RocketMQ's codes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmq_remoting::protocol::heartbeat::{CheckClientRequestBody, SubscriptionData};
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode, ResponseCode};
use rocketmq_client_rust::{
    ClientConfig, ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently,
    MessageSelector,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;

use rmq_testkit::client::*;

#[derive(Clone, Default)]
struct Bodies(Arc<Mutex<Vec<String>>>);

impl MessageListenerConcurrently for Bodies {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut b = self.0.lock().unwrap();
        for m in msgs {
            b.push(
                m.body()
                    .map(|x| String::from_utf8_lossy(&x).to_string())
                    .unwrap_or_default(),
            );
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

fn check_request(expr: &str) -> RemotingCommand {
    let body = CheckClientRequestBody {
        client_id: "c1".into(),
        group: "cg_sql".into(),
        subscription_data: Some(SubscriptionData {
            topic: "SqlTopic".into(),
            sub_string: expr.into(),
            expression_type: "SQL92".into(),
            ..Default::default()
        }),
        namespace: None,
    };
    RemotingCommand::request(RequestCode::CHECK_CLIENT_CONFIG).with_body(body.encode())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_selects_exactly_the_matching_messages() {
    let c = start_cluster(|s| s.broker.enable_property_filter = true).await;
    let mut producer = DefaultMQProducer::builder(client_runtime("sql-producer"))
        .client_config(config(&c.ns_addr))
        .producer_group("pg_sql")
        .build();
    producer.start().await.expect("producer starts");
    let mut want = BTreeSet::new();
    for i in 0..40u32 {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        let m = Message::builder()
            .topic("SqlTopic")
            .tags(if i % 3 == 0 { "TagA" } else { "TagB" })
            .body_slice(format!("m{i}").as_bytes())
            .raw_property("region", region)
            .unwrap()
            .raw_property("price", (i * 10).to_string())
            .unwrap()
            .build()
            .unwrap();
        producer
            .send_with_timeout(m, 5000)
            .await
            .expect("send")
            .expect("result");
        if region == "eu" && (100..=300).contains(&(i * 10)) && i % 3 != 0 {
            want.insert(format!("m{i}"));
        }
    }
    let got = Bodies::default();
    let mut consumer = DefaultMQPushConsumer::builder(client_runtime("sql-consumer"))
        .client_config(ClientConfig {
            instance_name: format!("sql-{}", std::process::id()).into(),
            ..config(&c.ns_addr)
        })
        .consumer_group("cg_sql")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer
        .subscribe_with_selector(
            "SqlTopic",
            Some(MessageSelector::by_sql(
                "region = 'eu' AND price BETWEEN 100 AND 300 AND TAGS <> 'TagA'",
            )),
        )
        .await
        .expect("subscribe");
    consumer.register_message_listener_concurrently(got.clone());
    consumer.start().await.expect("consumer starts");
    assert!(
        wait_until(Duration::from_secs(60), || got.0.lock().unwrap().len()
            >= want.len())
        .await,
        "got {:?}, want {want:?}",
        got.0.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let g: Vec<String> = got.0.lock().unwrap().clone();
    assert_eq!(g.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(g.len(), want.len(), "each once: {g:?}");
    consumer.shutdown().await;
    producer.shutdown().await;

    // The client's pre-start check: good and bad expressions.
    let client = rmq_testkit::admin_client();
    let addr = c.broker.local_addr().to_string();
    let t = Duration::from_secs(5);
    let r = client
        .invoke(&addr, check_request("a > 1"), t)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    let r = client
        .invoke(&addr, check_request("a >> 1 ("), t)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUBSCRIPTION_PARSE_FAILED);
    c.stop().await;

    // A broker without enablePropertyFilter refuses SQL92, as RocketMQ's does.
    let c = start_cluster(|_| {}).await;
    let r = rmq_testkit::admin_client()
        .invoke(
            &c.broker.local_addr().to_string(),
            check_request("a > 1"),
            t,
        )
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SYSTEM_ERROR);
    assert_eq!(
        r.remark.as_deref(),
        Some("The broker does not support consumer to filter message by SQL92")
    );
    c.stop().await;
}
