//! Conformance with real clients' frames: every request in `tests/corpus/*.toml`, written as
//! each RocketMQ client writes it (read from the client's source: see `tests/corpus/README.md`),
//! is replayed byte for byte over TCP to a real name server and broker on 127.0.0.1, and the
//! response and what the broker stored are checked. Each client runs its own scenario
//! (routes, heartbeats, sends of every kind, offsets, pulls with a broker-side tag filter,
//! send-back, transactions, locks, queries, unregister) and every failure is reported with the
//! frame and the client source it came from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use rmq_broker::broker::BrokerInner;
use rmq_broker::Broker;
use rmq_nameserver::NameServer;
use rmq_remoting::header::*;
use rmq_remoting::message::{
    decode_offset_msg_id, property, MessageExt, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR,
};
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::{
    RemotingClient, RemotingCodec, RemotingCommand, RequestCode, ResponseCode, SerializeType,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

const T: Duration = Duration::from_secs(10);
const CLUSTER: &str = "DefaultCluster";
const BROKER_NAME: &str = "broker-conf";
/// The subscription every corpus consumer holds on `${topic}`.
const SUBSCRIBED: [&str; 2] = ["A", "C"];

#[path = "conformance/frames.rs"]
mod frames;
#[path = "conformance/run.rs"]
mod run;
#[path = "conformance/scenario.rs"]
mod scenario;
#[path = "conformance/wire.rs"]
mod wire;

use frames::*;
use run::*;
use wire::*;

async fn start(dir: &Path) -> (NameServer, Broker) {
    let namesrv = rmq_testkit::start_namesrv(dir).await;
    let mut s = rmq_testkit::broker_settings(dir, &namesrv.local_addr().to_string(), BROKER_NAME);
    s.broker.broker_cluster_name = CLUSTER.into();
    // Checks would race the harness's own END_TRANSACTION frames.
    s.broker.transaction_time_out = 600_000;
    s.broker.transaction_check_interval = 600_000;
    // Every level one second: delayed sends and retries arrive within the test.
    s.store.message_delay_level = vec!["1s"; 18].join(" ");
    let broker = Broker::start(s).await.unwrap();
    (namesrv, broker)
}

/// Replays one client's corpus file; panics with every failure found.
async fn replay(file: &str) {
    let corpus = load(file);
    let dir = tempfile::tempdir().unwrap();
    let (namesrv, broker) = start(dir.path()).await;
    let id: String = corpus
        .client
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let broker_addr = broker.local_addr().to_string();
    let now = rmq_remoting::util::now_millis();
    let vars: BTreeMap<&'static str, String> = [
        ("topic", format!("Conf_{id}")),
        ("producer_group", format!("PG_{id}")),
        ("consumer_group", format!("CG_{id}")),
        ("retry_topic", format!("%RETRY%CG_{id}")),
        ("client_id", format!("127.0.0.1@{id}")),
        ("broker_name", BROKER_NAME.to_string()),
        ("broker_addr", broker_addr.clone()),
        ("cluster", CLUSTER.to_string()),
        ("queue_id", "0".to_string()),
        // One instant for the whole run: a subscription's version in the heartbeat and in the
        // pulls must agree, as a client's do.
        ("sub_version", now.to_string()),
        ("key", format!("key-{id}")),
        ("queue_offset", "0".to_string()),
        ("next_offset", "0".to_string()),
        ("commit_log_offset", "0".to_string()),
        ("msg_id", String::new()),
        ("tran_state_table_offset", "0".to_string()),
    ]
    .into_iter()
    .collect();
    let n = corpus.frame.len();
    let mut run = Run {
        client: corpus.client.clone(),
        frames: corpus.frame,
        vars,
        inner: broker.inner().clone(),
        ns_addr: namesrv.local_addr().to_string(),
        wire: Wire::connect(&broker_addr).await,
        broker_addr,
        admin: rmq_testkit::admin_client(),
        stored: Vec::new(),
        failures: Vec::new(),
        done: vec![false; n],
        next_opaque: 0,
    };
    run.routes(false).await;
    run.heartbeats().await;
    run.query_offsets("before any message").await;
    run.sends().await;
    run.transactions().await;
    run.query_offsets("after the first messages").await;
    run.pulls().await;
    run.offsets().await;
    run.send_backs().await;
    run.dead_letters().await;
    run.locks().await;
    run.lookups().await;
    run.unregister().await;
    // The broker registers new topics with the name server at once (register_soon).
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.routes(true).await;
    for (i, done) in run.done.clone().into_iter().enumerate() {
        if !done {
            run.fail(i, "op not replayed by the harness");
        }
    }
    run.admin.close_all();
    broker.shutdown().await;
    namesrv.shutdown().await;
    assert!(
        run.failures.is_empty(),
        "{} of {n} frames of {file} failed:\n{}",
        run.failures.len(),
        run.failures.join("\n")
    );
}

macro_rules! corpus_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                replay($file).await;
            }
        )*

        /// Every corpus file has a test above.
        #[test]
        fn every_corpus_file_is_replayed() {
            let known = [$($file),*];
            for entry in std::fs::read_dir(corpus_dir()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".toml") {
                    assert!(known.contains(&name.as_str()), "{name} has no test in conformance.rs");
                }
            }
        }
    };
}

corpus_tests! {
    java_4_9_8 => "java-4.9.8.toml",
    java_5_3_3 => "java-5.3.3.toml",
    cpp_1_2_5 => "cpp-1.2.5.toml",
    cpp_2_2_0 => "cpp-2.2.0.toml",
    ali_ons_3_12_2 => "ali-ons-3.12.2.toml",
    go_2_1_2 => "go-2.1.2.toml",
    rust_client_1_0_0 => "rust-client-1.0.0.toml",
}
