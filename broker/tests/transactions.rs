//! Transactional messages through `rocketmq-client-rust`'s TransactionMQProducer: commit and
//! rollback, an unknown outcome settled by the broker's check, one that stays unknown and is
//! discarded after `transactionCheckMax` checks, and a half left open across a broker restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocketmq_client_rust::{
    ClientConfig, ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQPushConsumer, LocalTransactionState, MQPushConsumer, MessageListenerConcurrently,
    TransactionListener, TransactionMQProducer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;

use rmq_testkit::client::*;

fn body_of(bytes: Option<&bytes::Bytes>) -> String {
    bytes
        .map(|b| String::from_utf8_lossy(b).to_string())
        .unwrap_or_default()
}

/// The local transactions: the message body says how each ends.
#[derive(Clone, Default)]
struct Local {
    checks: Arc<Mutex<HashMap<String, u32>>>,
}

impl TransactionListener for Local {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let body = body_of(msg.get_body());
        if body.starts_with("commit") {
            LocalTransactionState::CommitMessage
        } else if body.starts_with("rollback") {
            LocalTransactionState::RollbackMessage
        } else {
            LocalTransactionState::Unknown
        }
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let body = body_of(msg.body().as_ref());
        *self.checks.lock().unwrap().entry(body.clone()).or_default() += 1;
        if body.starts_with("unknown-then-commit") {
            LocalTransactionState::CommitMessage
        } else {
            LocalTransactionState::Unknown
        }
    }
}

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
            b.push(body_of(m.body().as_ref()));
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

fn fast_client(ns: &str, name: &str) -> ClientConfig {
    ClientConfig {
        instance_name: format!("{name}-{}", std::process::id()).into(),
        // Heartbeats tell a restarted broker where the producer is: as often as allowed.
        heartbeat_broker_interval: 10_000,
        ..config(ns)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_check_and_discard_across_a_restart() {
    let c = start_cluster(|s| {
        s.broker.transaction_check_interval = 300;
        s.broker.transaction_time_out = 1000;
        s.broker.transaction_check_max = 3;
    })
    .await;
    let local = Local::default();
    let mut producer = TransactionMQProducer::builder(client_runtime("tx-producer"))
        .client_config(fast_client(&c.ns_addr, "tx-producer"))
        .producer_group("pg_tx")
        .transaction_listener(local.clone())
        .build();
    producer.start().await.expect("producer starts");

    let send = |body: &str| message("TxTopic", "T", body.to_string());
    for body in [
        "commit-1",
        "rollback-1",
        "unknown-then-commit",
        "unknown-forever",
    ] {
        producer
            .send_message_in_transaction::<(), _>(send(body), None)
            .await
            .expect("half sent");
    }
    let got = Bodies::default();
    let mut consumer = DefaultMQPushConsumer::builder(client_runtime("tx-consumer"))
        .client_config(fast_client(&c.ns_addr, "tx-consumer"))
        .consumer_group("cg_tx")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe("TxTopic", "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(got.clone());
    consumer.start().await.expect("consumer starts");

    // The committed one at once; the unknown one once the check commits it.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let g = got.0.lock().unwrap();
            g.contains(&"commit-1".to_string()) && g.contains(&"unknown-then-commit".to_string())
        })
        .await,
        "got {:?}, checks {:?}",
        got.0.lock().unwrap(),
        local.checks.lock().unwrap()
    );
    // The one that stays unknown is asked about transactionCheckMax (3) times, then dropped.
    assert!(
        wait_until(Duration::from_secs(30), || local
            .checks
            .lock()
            .unwrap()
            .get("unknown-forever")
            .copied()
            .unwrap_or(0)
            >= 3)
        .await,
        "checks {:?}",
        local.checks.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(local.checks.lock().unwrap()["unknown-forever"], 3);

    // A half still open when the broker restarts is checked, and committed, afterwards.
    producer
        .send_message_in_transaction::<(), _>(send("unknown-then-commit-after-restart"), None)
        .await
        .expect("half sent");
    // Until the producer's next heartbeat (up to 10 s) the restarted broker has nobody to ask,
    // and unanswered checks count, as in RocketMQ: allow enough of them.
    let mut c = c;
    c.settings.broker.transaction_check_max = 30;
    c.settings.broker.transaction_check_interval = 1000;
    let c = c.restart_broker().await;
    assert!(
        wait_until(Duration::from_secs(60), || got
            .0
            .lock()
            .unwrap()
            .contains(&"unknown-then-commit-after-restart".to_string()))
        .await,
        "got {:?}, checks {:?}",
        got.0.lock().unwrap(),
        local.checks.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let g = got.0.lock().unwrap().clone();
    for body in [
        "commit-1",
        "unknown-then-commit",
        "unknown-then-commit-after-restart",
    ] {
        assert_eq!(
            g.iter().filter(|b| *b == body).count(),
            1,
            "{body} once: {g:?}"
        );
    }
    assert!(
        !g.iter()
            .any(|b| b.starts_with("rollback") || b == "unknown-forever"),
        "{g:?}"
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    c.stop().await;
}
