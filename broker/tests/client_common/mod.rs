//! What the client-level broker tests share: a name server and a broker on 127.0.0.1, and
//! `rocketmq-client-rust` set up as its users would.
#![allow(dead_code)]

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use rmq_broker::{Broker, BrokerSettings};
use rmq_nameserver::{NameServer, NamesrvConfig};
use rocketmq_client_rust::{ClientConfig, ClientRuntime, ClientRuntimeConfig, TelemetryHandle};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

pub static OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    let mut config = RuntimeConfig {
        thread_name: "broker-it".to_string(),
        ..Default::default()
    };
    // The client runs each consume request on this lane; its default depth (8 × cores) makes
    // it treat a burst of pulled messages as consume failures on a 2-core machine.
    config.blocking_lane_policies.metadata_io.max_queue_depth = 4096;
    RuntimeOwner::plan(config)
        .expect("runtime plan")
        .build()
        .expect("runtime owner")
});

pub fn client_runtime(scope: &'static str) -> Arc<ClientRuntime> {
    ClientRuntime::try_new(
        OWNER.root_context().component(scope),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime")
}

pub fn free_port() -> u16 {
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The broker also takes port - 2 (VIP channel).
        if p > 1030 && std::net::TcpListener::bind(("127.0.0.1", p - 2)).is_ok() {
            return p;
        }
    }
}

pub struct Cluster {
    pub namesrv: NameServer,
    pub broker: Broker,
    pub ns_addr: String,
    pub settings: BrokerSettings,
    pub dir: tempfile::TempDir,
}

pub async fn start_cluster(tweak: impl FnOnce(&mut BrokerSettings)) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = NameServer::start(NamesrvConfig {
        listen_port: 0,
        bind_address: "127.0.0.1".into(),
        kv_config_path: dir.path().join("kv.json").display().to_string(),
        config_store_path: dir.path().join("ns.properties").display().to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let ns_addr = namesrv.local_addr().to_string();
    let mut settings = BrokerSettings::default();
    settings.broker.namesrv_addr = ns_addr.clone();
    settings.broker.broker_ip1 = "127.0.0.1".into();
    settings.broker.bind_address = "127.0.0.1".into();
    settings.broker.listen_port = free_port();
    settings.broker.broker_name = "broker-a".into();
    settings.store.store_path_root_dir = dir.path().join("store").display().to_string();
    settings.store.mapped_file_size_commit_log = 16 << 20;
    settings.store.mapped_file_size_consume_queue = 20 * 10_000;
    settings.store.max_hash_slot_num = 4096;
    settings.store.max_index_num = 16_384;
    tweak(&mut settings);
    let broker = Broker::start(settings.clone()).await.unwrap();
    Cluster {
        namesrv,
        broker,
        ns_addr,
        settings,
        dir,
    }
}

impl Cluster {
    /// Stops the broker cleanly and starts it again on the same store and port.
    pub async fn restart_broker(self) -> Cluster {
        let Cluster {
            namesrv,
            broker,
            ns_addr,
            settings,
            dir,
        } = self;
        broker.shutdown().await;
        let broker = Broker::start(settings.clone()).await.unwrap();
        Cluster {
            namesrv,
            broker,
            ns_addr,
            settings,
            dir,
        }
    }

    pub async fn stop(self) {
        self.broker.shutdown().await;
        self.namesrv.shutdown().await;
    }
}

pub fn config(ns: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: Some(ns.to_string().into()),
        vip_channel_enabled: false,
        ..Default::default()
    }
}

pub fn message(topic: &str, tag: &str, body: String) -> Message {
    Message::builder()
        .topic(topic.to_string())
        .tags(tag.to_string())
        .keys(vec![format!("key-{body}")])
        .body_slice(body.as_bytes())
        .build_unchecked()
}

pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}
