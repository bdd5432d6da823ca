//! A real name server in-process, fake brokers registered with it, and the `mqadmin` binary
//! run as a process against them.

use std::time::Duration;

use rmq_nameserver::{NameServer, NamesrvConfig};
use rmq_remoting::header::GetRouteInfoRequestHeader;
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode};

use crate::fake_broker::FakeBroker;

pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const CLUSTER: &str = "DefaultCluster";

/// A name server on an ephemeral loopback port with its own KV directory.
pub struct Namesrv {
    _server: NameServer,
    pub addr: String,
    _dir: tempfile::TempDir,
}

pub async fn start_namesrv() -> Namesrv {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = NamesrvConfig {
        listen_port: 0,
        bind_address: "127.0.0.1".into(),
        kv_config_path: dir.path().join("kv.json").display().to_string(),
        config_store_path: dir.path().join("ns.properties").display().to_string(),
        ..Default::default()
    };
    let server = NameServer::start(config).await.expect("name server starts");
    let addr = server.local_addr().to_string();
    Namesrv {
        _server: server,
        addr,
        _dir: dir,
    }
}

/// A name server and, registered with it in `DefaultCluster`: `broker-a` (master and slave)
/// and `broker-b` (master), each serving topic `T` (4 queues) and `%RETRY%G`.
pub struct Cluster {
    pub ns: Namesrv,
    pub a: FakeBroker,
    pub a_slave: FakeBroker,
    pub b: FakeBroker,
}

pub const TOPICS: &[(&str, i32)] = &[("T", 4), ("%RETRY%G", 1)];

pub async fn start_cluster() -> Cluster {
    let ns = start_namesrv().await;
    let a = FakeBroker::start(CLUSTER, "broker-a", 0, &[&ns.addr], TOPICS).await;
    let a_slave = FakeBroker::start(CLUSTER, "broker-a", 1, &[&ns.addr], TOPICS).await;
    let b = FakeBroker::start(CLUSTER, "broker-b", 0, &[&ns.addr], TOPICS).await;
    Cluster { ns, a, a_slave, b }
}

/// What a run of `mqadmin` printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Prints the run when `MQADMIN_TEST_SHOW` is set (with `--nocapture`, to eyeball output).
    fn show(&self) {
        if std::env::var_os("MQADMIN_TEST_SHOW").is_some() {
            eprintln!("--- exit {}\n{}{}", self.code, self.stdout, self.stderr);
        }
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        self.show();
        assert_eq!(self.code, 0, "mqadmin failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn failed(self) -> Self {
        self.show();
        assert_eq!(self.code, 1, "mqadmin should fail: {self:#?}");
        self
    }

    /// The stdout line that starts with `prefix`.
    #[track_caller]
    pub fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{}", self.stdout))
    }
}

/// Runs `mqadmin args...` with `NAMESRV_ADDR` unset.
pub async fn mqadmin(args: &[&str]) -> Run {
    mqadmin_env(args, None).await
}

pub async fn mqadmin_env(args: &[&str], namesrv_env: Option<&str>) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqadmin"));
    cmd.args(args)
        .env_remove("NAMESRV_ADDR")
        .env("RMQ_LOG", "error");
    if let Some(ns) = namesrv_env {
        cmd.env("NAMESRV_ADDR", ns);
    }
    let out = tokio::time::timeout(Duration::from_secs(15), cmd.output())
        .await
        .expect("mqadmin finishes")
        .expect("mqadmin runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends `req` to `addr` and returns the answer (whatever its code).
pub async fn invoke(addr: &str, req: RemotingCommand) -> RemotingCommand {
    rmq_testkit::admin_client()
        .invoke(addr, req, TIMEOUT)
        .await
        .expect("answered")
}

/// The route of `topic` as the name server serves it, `None` without one.
pub async fn route(namesrv: &str, topic: &str) -> Option<TopicRouteData> {
    let header = GetRouteInfoRequestHeader {
        topic: topic.into(),
        accept_standard_json_only: Some(true),
    };
    let resp = invoke(
        namesrv,
        RemotingCommand::request_with_header(RequestCode::GET_ROUTEINFO_BY_TOPIC, &header),
    )
    .await;
    (resp.code == 0).then(|| TopicRouteData::decode(&resp.body).expect("route body"))
}
