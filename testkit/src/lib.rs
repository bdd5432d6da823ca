//! Fixtures for the workspace's tests, in one place: free ports, a name server and brokers on
//! 127.0.0.1 with small store files, a running cluster, the store on its own ([`store`]), a fault-injecting file system
//! ([`faultfs`]), and `rocketmq-client-rust` set up as its users would ([`client`]).

pub mod client;
pub mod faultfs;
pub mod ha;
pub mod store;
pub mod tls;

use std::path::Path;
use std::time::{Duration, Instant};

use rmq_broker::{Broker, BrokerSettings};
use rmq_nameserver::{NameServer, NamesrvConfig};

/// The admin credential every name server and broker started here uses (they leave
/// `adminCredentialFile` at its default): created on first use.
pub fn admin_credential() -> rmq_remoting::Credentials {
    rmq_acl::credential::load_or_create(&rmq_acl::credential::default_path())
        .expect("the local admin credential")
}

/// A client that signs every request with [`admin_credential`], as mqadmin, the operator
/// and other brokers do: control-plane requests from it are accepted.
pub fn admin_client() -> rmq_remoting::RemotingClient {
    rmq_remoting::RemotingClient::default().with_credentials(Some(admin_credential()))
}

/// SEND_MESSAGE_V2 of `body` to `topic` (tag `A`, producer group `pg`), as a raw request.
pub fn send_request(topic: &str, body: &[u8]) -> rmq_remoting::RemotingCommand {
    use rmq_remoting::header::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
    let mut props = std::collections::HashMap::new();
    props.insert("TAGS".to_string(), "A".to_string());
    let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        born_timestamp: rmq_remoting::util::now_millis(),
        properties: Some(rmq_remoting::message::encode_properties(&props)),
        ..Default::default()
    });
    rmq_remoting::RemotingCommand::request_with_header(
        rmq_remoting::RequestCode::SEND_MESSAGE_V2,
        &h,
    )
    .with_body(body.to_vec())
}

/// UPDATE_AND_CREATE_TOPIC of `topic` with `queues` read and write queues and `perm`, as
/// `mqadmin updateTopic` sends it (sign it: send with [`admin_client`]).
pub fn create_topic_request(topic: &str, queues: i32, perm: i32) -> rmq_remoting::RemotingCommand {
    rmq_remoting::RemotingCommand::request_with_header(
        rmq_remoting::RequestCode::UPDATE_AND_CREATE_TOPIC,
        &rmq_remoting::header::CreateTopicRequestHeader {
            topic: topic.into(),
            default_topic: "TBW102".into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm,
            topic_filter_type: "SINGLE_TAG".into(),
            ..Default::default()
        },
    )
}

/// A free port on 127.0.0.1 for a broker: the ports it also takes — the VIP channel
/// (`port - 2`) and the HA port (`port + 1`) — are free too.
///
/// Checked on the wildcard address: a broker may bind `0.0.0.0`, and a port that is free on
/// 127.0.0.1 can still be held on another loopback address (a test's clients bound to
/// 127.0.0.2 leave TIME_WAIT sockets there, which a wildcard bind collides with).
pub fn free_port() -> u16 {
    loop {
        let p = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p > 1030
            && p < u16::MAX
            && std::net::TcpListener::bind(("0.0.0.0", p - 2)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", p + 1)).is_ok()
        {
            return p;
        }
    }
}

/// A name server's config on an ephemeral port of 127.0.0.1, its files under `dir`.
pub fn namesrv_config(dir: &Path) -> NamesrvConfig {
    NamesrvConfig {
        listen_port: 0,
        bind_address: "127.0.0.1".into(),
        kv_config_path: dir.join("kv.json").display().to_string(),
        config_store_path: dir.join("ns.properties").display().to_string(),
        ..Default::default()
    }
}

/// A name server started with [`namesrv_config`].
pub async fn start_namesrv(dir: &Path) -> NameServer {
    NameServer::start(namesrv_config(dir))
        .await
        .expect("name server starts")
}

/// A broker's settings: `name` on a free port of 127.0.0.1, registering with `namesrv`, its
/// store under `dir/store` with small files (4 MiB commit-log files, 1,000-unit queue files,
/// a small index).
pub fn broker_settings(dir: &Path, namesrv: &str, name: &str) -> BrokerSettings {
    let mut s = BrokerSettings::default();
    s.broker.namesrv_addr = namesrv.to_string();
    s.broker.broker_ip1 = "127.0.0.1".into();
    s.broker.bind_address = "127.0.0.1".into();
    s.broker.listen_port = free_port();
    s.broker.broker_name = name.into();
    s.store.store_path_root_dir = dir.join("store").display().to_string();
    s.store.mapped_file_size_commit_log = 4 << 20;
    s.store.mapped_file_size_consume_queue = 20 * 1000;
    s.store.max_hash_slot_num = 1024;
    s.store.max_index_num = 4096;
    s
}

/// A name server and one broker on 127.0.0.1, in a temporary directory.
pub struct Cluster {
    pub namesrv: NameServer,
    pub broker: Broker,
    pub ns_addr: String,
    pub settings: BrokerSettings,
    pub dir: tempfile::TempDir,
}

/// Starts a [`Cluster`]: broker `broker-a` with [`broker_settings`] (16 MiB commit-log files,
/// 10,000-unit queue files), changed by `tweak`.
pub async fn start_cluster(tweak: impl FnOnce(&mut BrokerSettings)) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(dir.path()).await;
    let ns_addr = namesrv.local_addr().to_string();
    let mut settings = broker_settings(dir.path(), &ns_addr, "broker-a");
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

/// Polls `f` every 100 ms until it holds or `timeout` passes; the last answer.
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
