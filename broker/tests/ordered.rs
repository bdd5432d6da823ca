//! Orderly consumption through `rocketmq-client-rust`: queue locks (LOCK_BATCH_MQ /
//! UNLOCK_BATCH_MQ) keep each queue with one consumer at a time, so every queue is consumed
//! in order while a second consumer joins and the first leaves mid-stream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmq_remoting::protocol::heartbeat::{
    LockBatchRequestBody, LockBatchResponseBody, MessageQueue as Mq,
};
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode};
use rocketmq_client_rust::{
    ClientConfig, ClientResult, ConsumeOrderlyContext, ConsumeOrderlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, MQPushConsumer, MessageListenerOrderly,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::message::MessageQueue;

use rmq_testkit::client::*;

const QUEUES: i32 = 4;

/// (consumer, queue, sequence number) in the order consumed.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(usize, i32, u32)>>>);

struct Orderly {
    me: usize,
    log: Log,
}

impl MessageListenerOrderly for Orderly {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &mut ConsumeOrderlyContext,
    ) -> ClientResult<ConsumeOrderlyStatus> {
        for m in msgs {
            let body = m
                .body()
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default();
            if body.starts_with("warmup") {
                continue; // sent before the queues were known, to create the topic
            }
            let seq: u32 = body.split(':').nth(1).unwrap().parse().unwrap();
            self.log
                .0
                .lock()
                .unwrap()
                .push((self.me, m.queue_id(), seq));
        }
        // Slow enough that queues change hands while messages are in flight.
        std::thread::sleep(Duration::from_millis(5));
        Ok(ConsumeOrderlyStatus::Success)
    }
}

async fn orderly_consumer(c: &Cluster, me: usize, log: Log) -> DefaultMQPushConsumer {
    let mut consumer = DefaultMQPushConsumer::builder(client_runtime("orderly"))
        .client_config(ClientConfig {
            instance_name: format!("orderly-{me}-{}", std::process::id()).into(),
            ..config(&c.ns_addr)
        })
        .consumer_group("cg_orderly")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer
        .subscribe("OrderTopic", "*")
        .await
        .expect("subscribe");
    consumer.register_message_listener_orderly(Orderly { me, log });
    consumer.start().await.expect("consumer starts");
    consumer
}

async fn send_round(producer: &DefaultMQProducer, from: u32, to: u32) {
    for seq in from..to {
        let q = (seq % QUEUES as u32) as i32;
        let mq = MessageQueue::from_parts("OrderTopic", "broker-a", q);
        producer
            .send_to_queue_with_timeout(message("OrderTopic", "T", format!("{q}:{seq}")), mq, 5000)
            .await
            .expect("send")
            .expect("result");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_queue_in_order_while_consumers_come_and_go() {
    let c = start_cluster(|s| s.broker.default_topic_queue_nums = QUEUES).await;
    let mut producer = DefaultMQProducer::builder(client_runtime("orderly-producer"))
        .client_config(config(&c.ns_addr))
        .producer_group("pg_orderly")
        .build();
    producer.start().await.expect("producer starts");
    // Create the topic with its queues, then send ordered streams, one per queue.
    producer
        .send_with_timeout(message("OrderTopic", "T", "warmup".into()), 5000)
        .await
        .expect("send");
    send_round(&producer, 0, 200).await;

    let log = Log::default();
    let mut first = orderly_consumer(&c, 0, log.clone()).await;
    assert!(
        wait_until(Duration::from_secs(60), || log.0.lock().unwrap().len()
            >= 100)
        .await,
        "the first orderly consumer never got going"
    );
    // A second consumer joins; more messages; then the first leaves; more messages.
    let mut second = orderly_consumer(&c, 1, log.clone()).await;
    send_round(&producer, 200, 400).await;
    wait_until(Duration::from_secs(60), || {
        let l = log.0.lock().unwrap();
        l.iter().any(|(who, _, _)| *who == 1) && l.len() >= 300
    })
    .await;
    first.shutdown().await;
    send_round(&producer, 400, 600).await;
    let all_seen = wait_until(Duration::from_secs(90), || {
        let l = log.0.lock().unwrap();
        (0..600).all(|seq| l.iter().any(|(_, _, s)| *s == seq))
    })
    .await;

    let l = log.0.lock().unwrap().clone();
    assert!(
        all_seen,
        "not every message was consumed ({} deliveries)",
        l.len()
    );
    assert!(
        l.iter().any(|(who, _, _)| *who == 1),
        "the second consumer got no queue"
    );
    // Per queue: in order within each consumer, and the stream as a whole only steps back
    // where a queue changes hands (redelivery from the last committed offset).
    let mut per_queue: BTreeMap<i32, Vec<(usize, u32)>> = BTreeMap::new();
    for (who, q, seq) in &l {
        assert_eq!(
            *seq % QUEUES as u32,
            *q as u32,
            "message on the wrong queue"
        );
        per_queue.entry(*q).or_default().push((*who, *seq));
    }
    for (q, stream) in &per_queue {
        for w in stream.windows(2) {
            let ((a, s1), (b, s2)) = (w[0], w[1]);
            if a == b {
                assert!(s2 > s1, "queue {q}: consumer {a} went from {s1} to {s2}");
            }
        }
    }
    second.shutdown().await;
    producer.shutdown().await;

    // The locks themselves, on the wire: one holder per queue; the holder may renew;
    // release lets another in.
    let client = rmq_testkit::admin_client();
    let addr = c.broker.local_addr().to_string();
    let lock = |who: &str, code: i32| {
        let body = LockBatchRequestBody {
            consumer_group: "cg_wire".into(),
            client_id: who.into(),
            only_this_broker: true,
            mq_set: [Mq {
                topic: "OrderTopic".into(),
                broker_name: "broker-a".into(),
                queue_id: 0,
            }]
            .into(),
        };
        RemotingCommand::request(code).with_body(body.encode())
    };
    let held = |r: RemotingCommand| {
        LockBatchResponseBody::decode(&r.body)
            .unwrap()
            .lock_ok_mq_set
            .len()
    };
    let t = Duration::from_secs(5);
    let r = client
        .invoke(&addr, lock("a", RequestCode::LOCK_BATCH_MQ), t)
        .await
        .unwrap();
    assert_eq!(held(r), 1);
    let r = client
        .invoke(&addr, lock("b", RequestCode::LOCK_BATCH_MQ), t)
        .await
        .unwrap();
    assert_eq!(held(r), 0, "held by a");
    let r = client
        .invoke(&addr, lock("a", RequestCode::LOCK_BATCH_MQ), t)
        .await
        .unwrap();
    assert_eq!(held(r), 1, "a renews");
    client
        .invoke(&addr, lock("a", RequestCode::UNLOCK_BATCH_MQ), t)
        .await
        .unwrap();
    let r = client
        .invoke(&addr, lock("b", RequestCode::LOCK_BATCH_MQ), t)
        .await
        .unwrap();
    assert_eq!(held(r), 1, "released to b");
    c.stop().await;
}
