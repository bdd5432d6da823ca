//! The broker over the wire with `rocketmq-client-rust` 1.0 (crates.io) as the client:
//! sync/batch/oneway sends, push consumers in clustering mode splitting queues, tag filters,
//! auto-created topics, and the errors clients expect.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cheetah_string::CheetahString;
use rocketmq_client_rust::{
    ClientConfig, ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;

use rmq_testkit::client::*;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(String, String)>>>);

impl MessageListenerConcurrently for Collect {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut got = self.0.lock().unwrap();
        for m in msgs {
            let body = m
                .body()
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default();
            let tag = m.get_tags().map(|t| t.to_string()).unwrap_or_default();
            got.push((body, tag));
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_with_an_unchanged_client() {
    let c = start_cluster(|_| {}).await;
    let rt = client_runtime("produce-consume");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .producer_group("pg_it")
        .build();
    producer.start().await.expect("producer starts");

    // Sync sends to a topic that does not exist yet: auto-created from TBW102.
    let mut sent = HashSet::new();
    for i in 0..60 {
        let tag = if i % 3 == 0 { "TagA" } else { "TagB" };
        let r = producer
            .send_with_timeout(message("ItTopic", tag, format!("m{i}")), 5000)
            .await
            .expect("send");
        let r = r.expect("a send result");
        assert_eq!(r.send_status, SendStatus::SendOk);
        assert!(r.msg_id.is_some());
        sent.insert(format!("m{i}"));
    }
    // A batch and oneway sends.
    let batch: Vec<Message> = (0..10)
        .map(|i| message("ItTopic", "TagB", format!("b{i}")))
        .collect();
    let r = producer
        .send_batch_with_timeout(batch, 5000)
        .await
        .expect("batch send");
    assert_eq!(r.send_status, SendStatus::SendOk);
    sent.extend((0..10).map(|i| format!("b{i}")));
    for i in 0..5 {
        producer
            .send_oneway(message("ItTopic", "TagB", format!("o{i}")))
            .await
            .expect("oneway");
        sent.insert(format!("o{i}"));
    }

    // Two consumers of one group split the queues and together get every message once.
    let got = Collect::default();
    let mut consumers = Vec::new();
    for n in 0..2 {
        let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
            .client_config(ClientConfig {
                instance_name: format!("it-consumer-{n}").into(),
                ..config(&c.ns_addr)
            })
            .consumer_group("cg_it")
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .build();
        consumer.subscribe("ItTopic", "*").await.expect("subscribe");
        consumer.register_message_listener_concurrently(got.clone());
        consumer.start().await.expect("consumer starts");
        consumers.push(consumer);
    }
    let all = wait_until(Duration::from_secs(60), || {
        let g = got.0.lock().unwrap();
        g.iter().map(|(b, _)| b.clone()).collect::<HashSet<_>>() == sent
    })
    .await;
    {
        let g = got.0.lock().unwrap();
        let distinct: HashSet<String> = g.iter().map(|(b, _)| b.clone()).collect();
        let missing: Vec<&String> = sent.difference(&distinct).collect();
        assert!(
            all,
            "received {} of {} distinct ({} deliveries), missing {missing:?}",
            distinct.len(),
            sent.len(),
            g.len()
        );
        assert_eq!(
            g.len(),
            sent.len(),
            "each message delivered once in a clean run"
        );
    }

    // A tag filter: another group sees only TagA.
    let tagged = Collect::default();
    let mut tag_consumer = DefaultMQPushConsumer::builder(rt.clone())
        .client_config(ClientConfig {
            instance_name: "it-tag-consumer".into(),
            ..config(&c.ns_addr)
        })
        .consumer_group("cg_tag")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    tag_consumer
        .subscribe("ItTopic", "TagA")
        .await
        .expect("subscribe");
    tag_consumer.register_message_listener_concurrently(tagged.clone());
    tag_consumer.start().await.expect("consumer starts");
    assert!(
        wait_until(Duration::from_secs(60), || tagged.0.lock().unwrap().len()
            >= 20)
        .await,
        "tagged messages"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let t = tagged.0.lock().unwrap();
        assert_eq!(t.len(), 20);
        assert!(t.iter().all(|(_, tag)| tag == "TagA"));
    }

    // The broker knows the group and its offsets.
    let ids = c.broker.inner().clients.consumer_ids("cg_it");
    assert_eq!(ids.len(), 2, "{ids:?}");
    for consumer in consumers.iter_mut() {
        consumer.shutdown().await;
    }
    tag_consumer.shutdown().await;
    producer.shutdown().await;
    let _ = CheetahString::from("x");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_consumers_each_get_everything() {
    let c = start_cluster(|_| {}).await;
    let rt = client_runtime("broadcast");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .producer_group("pg_bc")
        .build();
    producer.start().await.expect("producer starts");
    for i in 0..20 {
        producer
            .send_with_timeout(message("BcTopic", "T", format!("bc{i}")), 5000)
            .await
            .expect("send");
    }
    let group = format!("cg_bc_{}", std::process::id());
    let mut consumers = Vec::new();
    let mut sinks = Vec::new();
    for n in 0..2 {
        let got = Collect::default();
        let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
            .client_config(ClientConfig {
                instance_name: format!("bc-{n}-{}", std::process::id()).into(),
                ..config(&c.ns_addr)
            })
            .consumer_group(group.clone())
            .message_model(MessageModel::Broadcasting)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .build();
        consumer.subscribe("BcTopic", "*").await.expect("subscribe");
        consumer.register_message_listener_concurrently(got.clone());
        consumer.start().await.expect("consumer starts");
        consumers.push(consumer);
        sinks.push(got);
    }
    for (n, got) in sinks.iter().enumerate() {
        let ok = wait_until(Duration::from_secs(60), || {
            got.0
                .lock()
                .unwrap()
                .iter()
                .map(|(b, _)| b.clone())
                .collect::<HashSet<_>>()
                .len()
                == 20
        })
        .await;
        assert!(
            ok,
            "broadcast consumer {n} got {}",
            got.0.lock().unwrap().len()
        );
    }
    for consumer in consumers.iter_mut() {
        consumer.shutdown().await;
    }
    producer.shutdown().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_off_means_no_route() {
    let c = start_cluster(|s| s.broker.auto_create_topic_enable = false).await;
    let rt = client_runtime("no-auto-create");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .producer_group("pg_nac")
        .build();
    producer.start().await.expect("producer starts");
    let err = producer
        .send_with_timeout(message("NeverCreated", "T", "x".into()), 3000)
        .await
        .expect_err("no route for an unknown topic when auto-create is off");
    // The client redacts its messages in Display/Debug; the cause chain carries the text.
    let mut text = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = cur {
        text.push_str(&format!("{e} | {e:?} || "));
        cur = e.source();
    }
    assert!(text.contains("route info"), "{text}");
    producer.shutdown().await;
    c.stop().await;
}

/// A new group on queues whose first message is still in memory starts at 0 whatever its
/// consumeFromWhere, as with Apache RocketMQ (the broker answers its first offset query 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_groups_on_queues_in_memory_start_at_the_beginning() {
    new_groups_start_where(40, Expect::Everything).await;
}

/// Once a queue's first message is no longer in memory (here: a ratio of 0), a new group
/// starts where its consumeFromWhere says: the end (only what is sent after it starts), or
/// the first message stored at or after a timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_groups_start_from_last_or_from_a_timestamp() {
    new_groups_start_where(0, Expect::WhereTheyAsk).await;
}

#[derive(PartialEq)]
enum Expect {
    Everything,
    WhereTheyAsk,
}

async fn new_groups_start_where(in_memory_ratio: u32, expect: Expect) {
    let c = start_cluster(|s| s.store.access_message_in_memory_max_ratio = in_memory_ratio).await;
    let rt = client_runtime("from-where");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .producer_group("pg_fw")
        .build();
    producer.start().await.expect("producer starts");
    for i in 0..10 {
        producer
            .send_with_timeout(message("FwTopic", "T", format!("old{i}")), 5000)
            .await
            .expect("send");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // consumeTimestamp has second resolution (yyyyMMddHHmmss, local time).
    let stamp = {
        let now = rmq_remoting::util::now_millis() / 1000;
        // SAFETY: localtime_r writes into the struct we own.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            libc::localtime_r(&(now as libc::time_t), &mut tm);
            tm
        };
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..5 {
        producer
            .send_with_timeout(message("FwTopic", "T", format!("mid{i}")), 5000)
            .await
            .expect("send");
    }
    let from_last = Collect::default();
    let from_time = Collect::default();
    let mut consumers = Vec::new();
    for (n, (sink, wh)) in [
        (from_last.clone(), ConsumeFromWhere::ConsumeFromLastOffset),
        (from_time.clone(), ConsumeFromWhere::ConsumeFromTimestamp),
    ]
    .into_iter()
    .enumerate()
    {
        let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
            .client_config(ClientConfig {
                instance_name: format!("fw-{n}-{}", std::process::id()).into(),
                ..config(&c.ns_addr)
            })
            .consumer_group(format!("cg_fw_{n}"))
            .consume_from_where(wh)
            .consume_timestamp(stamp.clone())
            .build();
        consumer.subscribe("FwTopic", "*").await.expect("subscribe");
        consumer.register_message_listener_concurrently(sink);
        consumer.start().await.expect("consumer starts");
        consumers.push(consumer);
    }
    // Let both take their queues before the last batch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..5 {
        producer
            .send_with_timeout(message("FwTopic", "T", format!("new{i}")), 5000)
            .await
            .expect("send");
    }
    let bodies = |c: &Collect| {
        let mut v: Vec<String> = c.0.lock().unwrap().iter().map(|(b, _)| b.clone()).collect();
        v.sort();
        v
    };
    let all_but = |skip: &[&str]| {
        let mut v: Vec<String> = ["old", "mid", "new"]
            .iter()
            .filter(|p| !skip.contains(p))
            .flat_map(|p| (0..if *p == "old" { 10 } else { 5 }).map(move |i| format!("{p}{i}")))
            .collect();
        v.sort();
        v
    };
    let (want_last, want_time) = match expect {
        Expect::Everything => (all_but(&[]), all_but(&[])),
        Expect::WhereTheyAsk => (all_but(&["old", "mid"]), all_but(&["old"])),
    };
    assert!(
        wait_until(Duration::from_secs(60), || bodies(&from_last).len()
            >= want_last.len()
            && bodies(&from_time).len() >= want_time.len())
        .await,
        "last {:?} time {:?}",
        bodies(&from_last),
        bodies(&from_time)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bodies(&from_last), want_last);
    assert_eq!(bodies(&from_time), want_time);
    for consumer in consumers.iter_mut() {
        consumer.shutdown().await;
    }
    producer.shutdown().await;
    c.stop().await;
}

/// The tutorial race: push consumers start before their topics exist, then a producer
/// auto-creates each topic with its first 200 messages. The consumers find the topics at their
/// next route refresh, after the sends, and — as with Apache RocketMQ — still get every message
/// (the broker answers a new group's first offset query 0 while the queue's first message is in
/// memory). Three rounds of four topics each, so the race is run twelve times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_started_before_their_topic_get_every_message() {
    const TOPICS: usize = 4;
    const MESSAGES: usize = 200;
    let c = start_cluster(|_| {}).await;
    let rt = client_runtime("race");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr))
        .producer_group("pg_race")
        .build();
    producer.start().await.expect("producer starts");
    for round in 0..3 {
        let mut consumers = Vec::new();
        let mut sinks = Vec::new();
        for t in 0..TOPICS {
            let sink = Collect::default();
            let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
                .client_config(ClientConfig {
                    instance_name: format!("race-{round}-{t}-{}", std::process::id()).into(),
                    // The shortest refresh the client accepts: the topic is found after the sends.
                    poll_name_server_interval: 10_000,
                    ..config(&c.ns_addr)
                })
                .consumer_group(format!("cg_race_{round}_{t}"))
                .build();
            consumer
                .subscribe(&format!("Race_{round}_{t}"), "*")
                .await
                .expect("subscribe");
            consumer.register_message_listener_concurrently(sink.clone());
            consumer.start().await.expect("consumer starts");
            consumers.push(consumer);
            sinks.push(sink);
        }
        // The consumers have looked for their routes (none yet) before the first send.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for t in 0..TOPICS {
            for i in 0..MESSAGES {
                producer
                    .send_with_timeout(
                        message(
                            &format!("Race_{round}_{t}"),
                            "T",
                            format!("r{round}t{t}m{i}"),
                        ),
                        5000,
                    )
                    .await
                    .expect("send");
            }
        }
        let distinct = |s: &Collect| {
            s.0.lock()
                .unwrap()
                .iter()
                .map(|(b, _)| b.clone())
                .collect::<HashSet<_>>()
                .len()
        };
        let all = wait_until(Duration::from_secs(60), || {
            sinks.iter().all(|s| distinct(s) == MESSAGES)
        })
        .await;
        assert!(
            all,
            "round {round}: received {:?} of {MESSAGES} per topic",
            sinks.iter().map(distinct).collect::<Vec<_>>()
        );
        for consumer in consumers.iter_mut() {
            consumer.shutdown().await;
        }
    }
    producer.shutdown().await;
    c.stop().await;
}
