//! Delay levels and consumer retries through `rocketmq-client-rust`: delayed messages arrive
//! when due and never early, also across a broker restart; a message the consumer keeps
//! failing comes back with growing reconsume counts, the same id and properties, and ends on
//! the group's dead-letter queue.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cheetah_string::CheetahString;
use rmq_broker::store::SCHEDULE_TOPIC;
use rocketmq_client_rust::{
    ClientConfig, ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    ConsumerAdmin, DefaultMQAdminExt, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;

use rmq_testkit::client::*;

/// One delivery as the consumer saw it.
#[derive(Clone, Debug)]
struct Seen {
    body: String,
    msg_id: String,
    topic: String,
    reconsume_times: i32,
    at: Instant,
}

/// Records every delivery; fails (RECONSUME_LATER) every time when `fail` is set.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    fail: bool,
}

impl MessageListenerConcurrently for Recorder {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut seen = self.seen.lock().unwrap();
        for m in msgs {
            seen.push(Seen {
                body: m
                    .body()
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_default(),
                // The id users see: UNIQ_KEY (msg_id() is the offset id of this copy).
                msg_id: m
                    .properties()
                    .get(&cheetah_string::CheetahString::from("UNIQ_KEY"))
                    .map(|k| k.to_string())
                    .unwrap_or_default(),
                topic: m.topic().to_string(),
                reconsume_times: m.reconsume_times(),
                at: Instant::now(),
            });
        }
        Ok(if self.fail {
            ConsumeConcurrentlyStatus::ReconsumeLater
        } else {
            ConsumeConcurrentlyStatus::ConsumeSuccess
        })
    }
}

async fn consumer(c: &Cluster, group: &str, topic: &str, rec: Recorder) -> DefaultMQPushConsumer {
    let rt = client_runtime("retry-delay");
    let mut consumer = DefaultMQPushConsumer::builder(rt)
        .client_config(ClientConfig {
            instance_name: format!("{group}-{}", std::process::id()).into(),
            ..config(&c.ns_addr)
        })
        .consumer_group(group.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .max_reconsume_times(2)
        .build();
    consumer.subscribe(topic, "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(rec);
    consumer.start().await.expect("consumer starts");
    consumer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_arrive_when_due_never_early_and_survive_a_restart() {
    let c = start_cluster(|s| s.store.message_delay_level = "1s 2s 3s".into()).await;
    let rt = client_runtime("delay-producer");
    let mut producer = DefaultMQProducer::builder(rt)
        .client_config(config(&c.ns_addr))
        .producer_group("pg_delay")
        .build();
    producer.start().await.expect("producer starts");
    // A plain message first: the topic exists and the consumer has its queues before the
    // clock starts for the delayed ones.
    producer
        .send_with_timeout(message("DelayTopic", "T", "warmup".into()), 5000)
        .await
        .expect("send")
        .expect("result");
    let rec = Recorder::default();
    let mut cons = consumer(&c, "cg_delay", "DelayTopic", rec.clone()).await;
    assert!(
        wait_until(Duration::from_secs(60), || !rec
            .seen
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "the consumer never got going"
    );

    // Level 2 (2 s) and a level above the highest (capped to level 3, 3 s).
    let mut sent_at = Vec::new();
    for (body, level) in [("two", 2), ("capped", 9)] {
        let mut m = message("DelayTopic", "T", body.to_string());
        m.set_delay_time_level(level);
        let t = Instant::now();
        producer
            .send_with_timeout(m, 5000)
            .await
            .expect("send")
            .expect("result");
        sent_at.push((body, t));
    }
    assert!(
        wait_until(Duration::from_secs(20), || rec.seen.lock().unwrap().len()
            >= 3)
        .await,
        "delayed messages never arrived"
    );
    {
        let seen = rec.seen.lock().unwrap();
        for (body, t, due) in [("two", sent_at[0].1, 2000), ("capped", sent_at[1].1, 3000)] {
            let s = seen.iter().find(|s| s.body == body).expect(body);
            let after = s.at.duration_since(t).as_millis();
            assert!(
                after >= due,
                "{body} arrived after {after} ms, due at {due}"
            );
            assert!(after < due + 3000, "{body} arrived after {after} ms");
            assert_eq!(s.topic, "DelayTopic");
        }
    }
    cons.shutdown().await;

    // A restart while one message waits: it is delivered once, when due; what was delivered
    // before the restart is not delivered again.
    let mut m = message("DelayTopic", "T", "after-restart".into());
    m.set_delay_time_level(3);
    let t = Instant::now();
    producer
        .send_with_timeout(m, 5000)
        .await
        .expect("send")
        .expect("result");
    // A plain message to look up by id once the broker has restarted.
    let plain = producer
        .send_with_timeout(message("DelayTopic", "T", "look-me-up".into()), 5000)
        .await
        .expect("send")
        .expect("result");
    let offset_id = plain.offset_msg_id.clone().expect("offset msg id");
    producer.shutdown().await;
    let c = c.restart_broker().await;
    // The client's admin API finds it by id (VIEW_MESSAGE_BY_ID) after the restart.
    let mut admin = DefaultMQAdminExt::with_admin_ext_group_and_timeout(
        client_runtime("delay-admin"),
        "delay_admin_group",
        Duration::from_secs(3),
    );
    admin.set_namesrv_addr(c.ns_addr.as_str());
    admin
        .client_config_mut()
        .set_instance_name(CheetahString::from(format!(
            "delay-admin-{}",
            std::process::id()
        )));
    admin.start().await.expect("admin starts");
    let found = admin
        .query_message(
            CheetahString::from("DefaultCluster"),
            CheetahString::from("DelayTopic"),
            CheetahString::from(offset_id.as_str()),
        )
        .await
        .expect("view by id");
    assert_eq!(found.body().as_deref(), Some(&b"look-me-up"[..]));
    admin.shutdown().await;
    let store = c.broker.inner().store.clone();
    let total = || {
        (0..4)
            .map(|q| store.max_offset_in_queue("DelayTopic", q, true))
            .sum::<i64>()
    };
    assert!(
        wait_until(Duration::from_secs(15), || total() >= 5).await,
        "the waiting message was not delivered after the restart"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(3000),
        "delivered early"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(total(), 5, "a message was delivered twice");
    // Progress per level is on disk, as GET_ALL_DELAY_OFFSET reports it.
    let offsets = c.broker.inner().schedule.encode();
    assert!(offsets.contains("\"3\":2"), "{offsets}");
    assert_eq!(store.max_offset_in_queue(SCHEDULE_TOPIC, 2, true), 2);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_retry_with_growing_counts_then_dead_letter() {
    // Every level 1 s, so the retries (levels 3, 4, ...) come quickly.
    let c = start_cluster(|s| s.store.message_delay_level = ["1s"; 18].join(" ")).await;
    let rt = client_runtime("retry-producer");
    let mut producer = DefaultMQProducer::builder(rt)
        .client_config(config(&c.ns_addr))
        .producer_group("pg_retry")
        .build();
    producer.start().await.expect("producer starts");
    let sent = producer
        .send_with_timeout(message("RetryTopic", "T", "fragile".into()), 5000)
        .await
        .expect("send")
        .expect("result");
    let id = sent.msg_id.clone().expect("msg id").to_string();
    let rec = Recorder {
        fail: true,
        ..Default::default()
    };
    let mut cons = consumer(&c, "cg_retry", "RetryTopic", rec.clone()).await;

    // First delivery and two retries (maxReconsumeTimes 2), then the dead-letter queue.
    let store = c.broker.inner().store.clone();
    assert!(
        wait_until(Duration::from_secs(40), || store.max_offset_in_queue(
            "%DLQ%cg_retry",
            0,
            true
        ) >= 1)
        .await,
        "never reached the DLQ; seen {:?}",
        rec.seen.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        let seen = rec.seen.lock().unwrap();
        let counts: Vec<i32> = seen.iter().map(|s| s.reconsume_times).collect();
        assert_eq!(counts, vec![0, 1, 2], "{seen:?}");
        assert!(
            seen.iter()
                .all(|s| s.msg_id == id && s.topic == "RetryTopic" && s.body == "fragile"),
            "{seen:?}"
        );
        // Retries wait their delay level (1 s here).
        for w in seen.windows(2) {
            assert!(
                w[1].at.duration_since(w[0].at) >= Duration::from_millis(1000),
                "retried early: {seen:?}"
            );
        }
    }
    let dlq = store
        .look_message_by_offset(
            store
                .queue_unit("%DLQ%cg_retry", 0, 0)
                .expect("DLQ unit")
                .commit_log_offset,
        )
        .expect("DLQ message");
    assert_eq!(dlq.uniq_key(), Some(id.as_str()), "same message id");
    assert_eq!(dlq.reconsume_times, 3);
    assert_eq!(dlq.properties["RETRY_TOPIC"], "RetryTopic");
    assert_eq!(dlq.properties["KEYS"], "key-fragile");
    assert!(dlq.properties.contains_key("ORIGIN_MESSAGE_ID"));
    assert_eq!(dlq.body.as_ref(), b"fragile");
    // Consume stats of the group cover its retry topic too (what consumerProgress shows).
    assert!(
        c.broker
            .inner()
            .offsets
            .topics_of_group("cg_retry")
            .contains(&"%RETRY%cg_retry".to_string()),
        "{:?}",
        c.broker.inner().offsets.topics_of_group("cg_retry")
    );
    // Retry and dead-letter topics are routed like any other.
    let topics = c.broker.inner().topics.topic_names();
    assert!(topics.iter().any(|t| t == "%RETRY%cg_retry"), "{topics:?}");
    assert!(topics.iter().any(|t| t == "%DLQ%cg_retry"), "{topics:?}");
    cons.shutdown().await;
    producer.shutdown().await;
    c.stop().await;
}
