//! Helpers shared by the name server's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use rmq_nameserver::{NameServer, NamesrvConfig};
use rmq_remoting::header::RegisterBrokerRequestHeader;
use rmq_remoting::protocol::topic::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
use rmq_remoting::protocol::DataVersion;
use rmq_remoting::{JsonBody, RemotingClient, RemotingCommand, RequestCode};

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A name server on an ephemeral loopback port with its own KV directory.
pub struct TestNamesrv {
    pub server: NameServer,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

pub async fn start_namesrv(tweak: impl FnOnce(&mut NamesrvConfig)) -> TestNamesrv {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = NamesrvConfig {
        listen_port: 0,
        bind_address: "127.0.0.1".into(),
        kv_config_path: dir.path().join("kvConfig.json").display().to_string(),
        config_store_path: dir.path().join("namesrv.properties").display().to_string(),
        ..Default::default()
    };
    tweak(&mut config);
    let server = NameServer::start(config).await.expect("name server starts");
    let addr = server.local_addr().to_string();
    TestNamesrv { server, addr, dir }
}

/// A broker registration as a Java broker sends it.
pub fn register_request(
    cluster: &str,
    name: &str,
    id: i64,
    addr: &str,
    topics: &[(&str, i32)],
    version: i64,
) -> RemotingCommand {
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: topics
                .iter()
                .map(|(t, q)| (t.to_string(), TopicConfig::new(*t, *q, 6)))
                .collect(),
            data_version: DataVersion {
                state_version: 0,
                timestamp: 1_700_000_000_000 + version,
                counter: version,
            },
            ..Default::default()
        },
        filter_server_list: vec![],
    }
    .encode();
    let header = RegisterBrokerRequestHeader {
        broker_name: name.into(),
        broker_addr: addr.into(),
        cluster_name: cluster.into(),
        ha_server_addr: format!("{}:{}", addr.split(':').next().unwrap_or(""), 10912),
        broker_id: id,
        enable_acting_master: Some(false),
        compressed: Some(false),
        body_crc32: Some((crc32fast::hash(&body) & 0x7FFF_FFFF) as i32),
        heartbeat_timeout_millis: None,
    };
    RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &header).with_body(body)
}

/// Registers and asserts success.
pub async fn register(
    client: &RemotingClient,
    namesrv: &str,
    cluster: &str,
    name: &str,
    id: i64,
    addr: &str,
    topics: &[(&str, i32)],
) -> RemotingCommand {
    client
        .invoke(
            namesrv,
            register_request(cluster, name, id, addr, topics, 1),
            TIMEOUT,
        )
        .await
        .expect("register answered")
        .ensure_success()
        .expect("register succeeds")
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
