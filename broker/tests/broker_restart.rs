//! The broker restarted under unchanged `rocketmq-client-rust` 1.0 clients: a push consumer
//! kept alive across a broker restart resumes from its offsets and loses nothing, async
//! (callback) and oneway sends are all stored, and acknowledged messages survive a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmq_broker::{Broker, BrokerSettings};
use rmq_nameserver::NameServer;
use rocketmq_client_rust::{
    ClientConfig, ClientError, ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently,
    SendResult,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;

use rmq_testkit::client::client_runtime;
use rmq_testkit::wait_until;

struct Cluster {
    namesrv: NameServer,
    broker: Option<Broker>,
    settings: BrokerSettings,
    ns_addr: String,
    _dir: tempfile::TempDir,
}

async fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = namesrv.local_addr().to_string();
    let mut settings = rmq_testkit::broker_settings(dir.path(), &ns_addr, "broker-a");
    settings.store.mapped_file_size_commit_log = 16 << 20;
    settings.store.mapped_file_size_consume_queue = 20 * 10_000;
    settings.store.max_hash_slot_num = 4096;
    settings.store.max_index_num = 16_384;
    let broker = Broker::start(settings.clone()).await.unwrap();
    Cluster {
        namesrv,
        broker: Some(broker),
        settings,
        ns_addr,
        _dir: dir,
    }
}

impl Cluster {
    fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("a running broker")
    }

    /// Stops the broker cleanly (unregister, offsets persisted, store closed) and starts a new
    /// one with the same settings: same port, same store directory, same name server.
    async fn restart_broker(&mut self) -> Duration {
        let t0 = Instant::now();
        self.broker
            .take()
            .expect("a running broker")
            .shutdown()
            .await;
        let broker = Broker::start(self.settings.clone())
            .await
            .expect("the broker restarts on the same port and store directory");
        self.broker = Some(broker);
        t0.elapsed()
    }

    async fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
        self.namesrv.shutdown().await;
    }

    /// Messages stored in `topic`, summed over its queues.
    fn stored(&self, topic: &str) -> i64 {
        let inner = self.broker().inner();
        let queues = inner
            .topics
            .get(topic)
            .map(|t| t.write_queue_nums.max(t.read_queue_nums))
            .unwrap_or(0);
        (0..queues)
            .map(|q| inner.store.max_offset_in_queue(topic, q, false))
            .sum()
    }

    /// Consumer offsets the broker holds for `group` on `topic`, summed over queues.
    fn committed(&self, group: &str, topic: &str) -> i64 {
        self.broker()
            .inner()
            .offsets
            .offsets(group, topic)
            .values()
            .sum()
    }
}

fn config(ns: &str, instance: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: Some(ns.to_string().into()),
        instance_name: instance.to_string().into(),
        vip_channel_enabled: false,
        // The client's lower bounds (10 s for both) — RocketMQ's defaults are 30 s.
        poll_name_server_interval: 10_000,
        heartbeat_broker_interval: 10_000,
        persist_consumer_offset_interval: 1_000,
        ..Default::default()
    }
}

fn message(topic: &str, body: &str) -> Message {
    Message::builder()
        .topic(topic.to_string())
        .tags("T".to_string())
        .keys(vec![format!("key-{body}")])
        .body_slice(body.as_bytes())
        .build_unchecked()
}

/// Every delivery, in order (duplicates kept).
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl Collect {
    fn deliveries(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn distinct(&self) -> HashSet<String> {
        self.0.lock().unwrap().iter().cloned().collect()
    }

    /// (distinct, deliveries, bodies delivered more than once with their counts)
    fn summary(&self) -> (usize, usize, Vec<(String, usize)>) {
        let g = self.0.lock().unwrap();
        let mut counts: HashMap<&String, usize> = HashMap::new();
        for b in g.iter() {
            *counts.entry(b).or_default() += 1;
        }
        let mut dups: Vec<(String, usize)> = counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(b, n)| ((*b).clone(), *n))
            .collect();
        dups.sort();
        (counts.len(), g.len(), dups)
    }
}

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
            got.push(body);
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// The client redacts its messages in Display/Debug; the cause chain carries the text.
fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        text.push_str(&format!("{e} | {e:?} || "));
        cur = e.source();
    }
    text
}

async fn sync_send_all(producer: &DefaultMQProducer, topic: &str, bodies: &[String]) {
    for body in bodies {
        let r = producer
            .send_with_timeout(message(topic, body), 5000)
            .await
            .unwrap_or_else(|e| panic!("sync send of {body} failed: {}", error_text(&e)))
            .unwrap_or_else(|| panic!("sync send of {body}: no send result"));
        assert_eq!(
            r.send_status,
            SendStatus::SendOk,
            "sync send of {body}: {r:?}"
        );
    }
}

fn missing(sent: &HashSet<String>, got: &HashSet<String>) -> Vec<String> {
    let mut m: Vec<String> = sent.difference(got).cloned().collect();
    m.sort();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_offsets_survive_a_broker_restart_mid_stream() {
    const TOPIC: &str = "RestartTopic";
    const GROUP: &str = "cg_restart";
    let t0 = Instant::now();
    let mut c = start_cluster().await;
    let rt = client_runtime("restart-mid-stream");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr, "restart-producer"))
        .producer_group("pg_restart")
        .build();
    producer.start().await.expect("producer starts");

    let first: Vec<String> = (0..200).map(|i| format!("before-{i}")).collect();
    sync_send_all(&producer, TOPIC, &first).await;
    assert_eq!(c.stored(TOPIC), 200, "200 stored before the restart");

    // Small pulls, spaced out, so that the restart falls in the middle of the stream: about
    // 4 queues × 2 messages every 100 ms.
    let got = Collect::default();
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .client_config(config(&c.ns_addr, "restart-consumer"))
        .consumer_group(GROUP)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .pull_batch_size(2)
        .pull_interval(100)
        .build();
    consumer.subscribe(TOPIC, "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(got.clone());
    consumer.start().await.expect("consumer starts");

    let half = wait_until(Duration::from_secs(30), || got.distinct().len() >= 100).await;
    assert!(
        half,
        "before the restart the consumer got only {} of 200 distinct",
        got.distinct().len()
    );
    let delivered_at_stop = got.deliveries();
    let distinct_at_stop = got.distinct().len();
    let committed_at_stop = c.committed(GROUP, TOPIC);
    assert!(
        distinct_at_stop < 200,
        "the restart should fall mid-stream, but all 200 were already consumed"
    );
    let restart_took = c.restart_broker().await;
    let committed_after_restart = c.committed(GROUP, TOPIC);
    // Pulls in flight while the old broker stopped may have committed a little more.
    assert!(
        committed_after_restart >= committed_at_stop
            && committed_after_restart <= got.deliveries() as i64,
        "the new broker loaded consumer offsets summing to {committed_after_restart}; the old \
         one held {committed_at_stop} just before shutdown and {} had been delivered",
        got.deliveries()
    );
    assert_eq!(c.stored(TOPIC), 200, "200 stored after the restart");

    // The same producer, kept alive, sends 200 more to the new broker.
    let second: Vec<String> = (0..200).map(|i| format!("after-{i}")).collect();
    let t_send = Instant::now();
    sync_send_all(&producer, TOPIC, &second).await;
    let send_took = t_send.elapsed();
    assert_eq!(c.stored(TOPIC), 400, "400 stored in all");

    let sent: HashSet<String> = first.iter().chain(second.iter()).cloned().collect();
    // Until the client heartbeats the new broker (every 10 s at the least), the broker does not
    // know the group and answers its pulls SUBSCRIPTION_NOT_EXIST, as RocketMQ does.
    let mut heartbeat_seen = None;
    let all = wait_until(Duration::from_secs(45), || {
        if heartbeat_seen.is_none() && !c.broker().inner().clients.consumer_ids(GROUP).is_empty() {
            heartbeat_seen = Some(t_send.elapsed());
        }
        got.distinct() == sent
    })
    .await;
    let caught_up = t_send.elapsed();
    let (distinct, deliveries, dups) = got.summary();
    let duplicates = deliveries - distinct;
    let report = format!(
        "before the restart: {delivered_at_stop} deliveries ({distinct_at_stop} distinct), \
         broker held committed offsets summing to {committed_at_stop}; restart took \
         {restart_took:?} (offsets loaded: {committed_after_restart}); second batch sent in \
         {send_took:?}; the new broker saw the consumer's heartbeat {heartbeat_seen:?} and \
         everything was consumed {caught_up:?} after that batch started; now: \
         {distinct} distinct of \
         {} in {deliveries} deliveries ({duplicates} duplicates: {dups:?}); broker offsets \
         now sum to {}",
        sent.len(),
        c.committed(GROUP, TOPIC)
    );
    assert!(
        all,
        "messages lost across the restart: missing {:?}; {report}",
        missing(&sent, &got.distinct())
    );
    let unexpected: Vec<String> = got.distinct().difference(&sent).cloned().collect();
    assert!(unexpected.is_empty(), "unexpected bodies {unexpected:?}");
    assert!(duplicates <= 200, "too many duplicates: {report}");
    eprintln!("consumer_offsets_survive_a_broker_restart_mid_stream: {report}");

    // The consumer's progress reaches the new broker.
    let progressed = wait_until(Duration::from_secs(10), || c.committed(GROUP, TOPIC) == 400).await;
    assert!(
        progressed,
        "the new broker's offsets for {GROUP} sum to {} of 400",
        c.committed(GROUP, TOPIC)
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    c.stop().await;
    eprintln!(
        "consumer_offsets_survive_a_broker_restart_mid_stream took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_send_with_callback_and_oneway() {
    const TOPIC: &str = "AsyncTopic";
    let t0 = Instant::now();
    let c = start_cluster().await;
    let rt = client_runtime("async-oneway");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr, "async-producer"))
        .producer_group("pg_async")
        .build();
    producer.start().await.expect("producer starts");

    type Outcome = (String, Result<(SendStatus, Option<String>), String>);
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let mut sent = HashSet::new();
    for i in 0..50 {
        let body = format!("async-{i}");
        let sink = outcomes.clone();
        let tag = body.clone();
        producer
            .send_with_callback(
                message(TOPIC, &body),
                move |r: Option<&SendResult>, e: Option<&ClientError>| {
                    let outcome = match (r, e) {
                        (Some(r), _) => {
                            Ok((r.send_status, r.msg_id.as_ref().map(|m| m.to_string())))
                        }
                        (None, Some(e)) => Err(error_text(e)),
                        (None, None) => Err("callback with neither result nor error".to_string()),
                    };
                    sink.lock().unwrap().push((tag.clone(), outcome));
                },
            )
            .await
            .unwrap_or_else(|e| panic!("async send of {body} not accepted: {}", error_text(&e)));
        sent.insert(body);
    }
    let called = wait_until(Duration::from_secs(30), || {
        outcomes.lock().unwrap().len() >= 50
    })
    .await;
    {
        let o = outcomes.lock().unwrap();
        assert!(called, "only {} of 50 send callbacks ran: {o:?}", o.len());
        assert_eq!(o.len(), 50, "each callback runs once: {o:?}");
        let bad: Vec<&Outcome> = o
            .iter()
            .filter(|(_, r)| !matches!(r, Ok((SendStatus::SendOk, Some(_)))))
            .collect();
        assert!(
            bad.is_empty(),
            "async sends not SendOk with a msg id: {bad:?}"
        );
        let called_for: HashSet<String> = o.iter().map(|(b, _)| b.clone()).collect();
        assert_eq!(called_for, sent, "one callback per message");
    }

    for i in 0..20 {
        let body = format!("oneway-{i}");
        producer
            .send_oneway(message(TOPIC, &body))
            .await
            .unwrap_or_else(|e| panic!("oneway send of {body}: {}", error_text(&e)));
        sent.insert(body);
    }
    // Oneway sends get no answer: wait for the store to have them.
    let stored = wait_until(Duration::from_secs(10), || c.stored(TOPIC) >= 70).await;
    assert!(stored, "stored {} of 70", c.stored(TOPIC));
    assert_eq!(c.stored(TOPIC), 70, "exactly 70 stored");

    let got = Collect::default();
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .client_config(config(&c.ns_addr, "async-consumer"))
        .consumer_group("cg_async")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe(TOPIC, "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(got.clone());
    consumer.start().await.expect("consumer starts");
    let all = wait_until(Duration::from_secs(30), || got.distinct() == sent).await;
    let (distinct, deliveries, dups) = got.summary();
    assert!(
        all,
        "consumed {distinct} distinct of 70 ({deliveries} deliveries), missing {:?}",
        missing(&sent, &got.distinct())
    );
    assert_eq!(deliveries, 70, "each delivered once; duplicates {dups:?}");

    consumer.shutdown().await;
    producer.shutdown().await;
    c.stop().await;
    eprintln!(
        "async_send_with_callback_and_oneway took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_broker_keeps_acknowledged_messages() {
    const TOPIC: &str = "DurableTopic";
    let t0 = Instant::now();
    let mut c = start_cluster().await;
    let rt = client_runtime("restart-durable");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(config(&c.ns_addr, "durable-producer"))
        .producer_group("pg_durable")
        .build();
    producer.start().await.expect("producer starts");
    let bodies: Vec<String> = (0..100).map(|i| format!("durable-{i}")).collect();
    sync_send_all(&producer, TOPIC, &bodies).await;
    producer.shutdown().await;
    assert_eq!(c.stored(TOPIC), 100, "100 stored before the restart");

    c.restart_broker().await;
    assert_eq!(
        c.stored(TOPIC),
        100,
        "the restarted broker's store has all 100 acknowledged messages"
    );

    let sent: HashSet<String> = bodies.into_iter().collect();
    let got = Collect::default();
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .client_config(config(&c.ns_addr, "durable-consumer"))
        .consumer_group("cg_durable_fresh")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe(TOPIC, "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(got.clone());
    consumer.start().await.expect("consumer starts");
    let all = wait_until(Duration::from_secs(30), || got.distinct() == sent).await;
    let (distinct, deliveries, dups) = got.summary();
    assert!(
        all,
        "after the restart a fresh group consumed {distinct} distinct of 100 ({deliveries} \
         deliveries), missing {:?}",
        missing(&sent, &got.distinct())
    );
    assert_eq!(deliveries, 100, "each delivered once; duplicates {dups:?}");

    consumer.shutdown().await;
    c.stop().await;
    eprintln!(
        "kill_and_restart_broker_keeps_acknowledged_messages took {:?}",
        t0.elapsed()
    );
}
