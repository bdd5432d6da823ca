//! The `mqnamesrv` binary as users run it: `-p`, `-c`, SIGTERM; and a broker from another
//! RocketMQ implementation (rocketmq-rust's `rocketmq-broker-rust`, installed by `scripts/test-deps`)
//! registering with it, seen by a standard admin client, and removed when killed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use cheetah_string::CheetahString;
use common::*;
use rmq_remoting::header::PutKvConfigRequestHeader;
use rmq_remoting::{RemotingCommand, RequestCode};
use rmq_testkit::free_port;
use rocketmq_client_rust::{
    ClientRuntime, ClientRuntimeConfig, DefaultMQAdminExt, RouteAdmin, TelemetryHandle, TopicAdmin,
};
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

const NAMESRV: &str = env!("CARGO_BIN_EXE_mqnamesrv");

/// Kills the child on drop so a failing test leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.0.id() as i32, sig);
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Used space as an unprivileged process sees it: blocks not available to it count as used.
fn used_percent_for_unprivileged(path: &Path) -> f64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs fills the struct we pass; the path is NUL-terminated.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 || s.f_blocks == 0 {
        return 0.0;
    }
    (s.f_blocks - s.f_bavail) as f64 / s.f_blocks as f64 * 100.0
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn write_namesrv_conf(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("namesrv.conf");
    std::fs::write(
        &path,
        format!(
            "# mqnamesrv -c\nlistenPort={port}\nbindAddress=127.0.0.1\nkvConfigPath={kv}\nconfigStorePath={cs}\nscanNotActiveBrokerInterval=500\n",
            kv = dir.join("kvConfig.json").display(),
            cs = dir.join("namesrv.properties").display(),
        ),
    )
    .unwrap();
    path
}

fn start_mqnamesrv(conf: &Path, port: u16) -> Proc {
    let child = Command::new(NAMESRV)
        .arg("-c")
        .arg(conf)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mqnamesrv");
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mqnamesrv did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

#[test]
fn print_config_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_namesrv_conf(dir.path(), 19876);
    let out = Command::new(NAMESRV)
        .args(["-c"])
        .arg(&conf)
        .arg("-p")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listenPort=19876\n"), "{text}");
    assert!(text.contains("brokerChannelExpiredTime=120000\n"), "{text}");
    assert!(text.contains("orderMessageEnable=false\n"), "{text}");

    let out = Command::new(NAMESRV).arg("-p").output().unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("listenPort=9876\n"));

    std::fs::write(dir.path().join("bad.conf"), "listenPort=ninety\n").unwrap();
    let out = Command::new(NAMESRV)
        .arg("-c")
        .arg(dir.path().join("bad.conf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listenPort"));
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_keeps_kv_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = write_namesrv_conf(dir.path(), port);
    let mut ns = start_mqnamesrv(&conf, port);
    let addr = format!("127.0.0.1:{port}");
    let client = rmq_testkit::admin_client();
    let put = RemotingCommand::request_with_header(
        RequestCode::PUT_KV_CONFIG,
        &PutKvConfigRequestHeader {
            namespace: "ORDER_TOPIC_CONFIG".into(),
            key: "T".into(),
            value: "broker-a:8".into(),
        },
    );
    client
        .invoke(&addr, put, TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    ns.signal(libc::SIGTERM);
    let status = ns
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let kv = std::fs::read_to_string(dir.path().join("kvConfig.json")).unwrap();
    assert!(kv.contains("broker-a:8"));
    // A restart reads it back.
    let _ns = start_mqnamesrv(&conf, port);
    let get = RemotingCommand::request_with_header(
        RequestCode::GET_KV_CONFIG,
        &rmq_remoting::header::GetKvConfigRequestHeader {
            namespace: "ORDER_TOPIC_CONFIG".into(),
            key: "T".into(),
        },
    );
    let client = rmq_testkit::admin_client();
    let resp = client
        .invoke(&addr, get, TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        resp.ext_fields.get("value").map(String::as_str),
        Some("broker-a:8")
    );
}

static OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    RuntimeOwner::plan(RuntimeConfig {
        thread_name: "process-admin".to_string(),
        ..Default::default()
    })
    .expect("runtime plan")
    .build()
    .expect("runtime owner")
});

fn foreign_broker_binary() -> PathBuf {
    let path = std::env::var_os("RMQ_FOREIGN_BROKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/rmq-foreign/bin/rocketmq-broker-rust")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/test-deps, or `cargo install rocketmq-broker --version 1.0.0 --locked --root ~/.cache/rmq-foreign`",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_broker_registers_and_admin_tool_sees_it() {
    let broker_bin = foreign_broker_binary();
    let dir = tempfile::tempdir().unwrap();
    let ns_port = free_port();
    let conf = write_namesrv_conf(dir.path(), ns_port);
    // That broker cannot sign its registrations with our admin credential: a name server
    // serving it opens its control plane, by choice (what the README tells such users).
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("controlPlaneAuthEnable=false\n");
    std::fs::write(&conf, text).unwrap();
    let mut ns = start_mqnamesrv(&conf, ns_port);
    let ns_addr = format!("127.0.0.1:{ns_port}");

    // Two free ports below the broker's: it also listens on listenPort - 2 (the VIP channel).
    let (broker_port, ha_port) = loop {
        let p = free_port();
        if p > 1030 && std::net::TcpListener::bind(("127.0.0.1", p - 2)).is_ok() {
            break (p, free_port());
        }
    };
    let store = dir.path().join("store").display().to_string();
    let broker_conf = dir.path().join("broker.toml");
    std::fs::write(
        &broker_conf,
        format!(
            "[broker]\nbrokerIp1 = \"127.0.0.1\"\nlistenPort = {broker_port}\nnamesrvAddr = \"{ns_addr}\"\nstorePathRootDir = \"{store}\"\n\n\
             [broker.brokerServerConfig]\nbindAddress = \"127.0.0.1\"\n\n\
             [broker.brokerIdentity]\nbrokerName = \"foreign-broker\"\nbrokerClusterName = \"ForeignCluster\"\nbrokerId = 0\n\n\
             [store]\nbrokerRole = \"ASYNC_MASTER\"\nflushDiskType = \"ASYNC_FLUSH\"\nhaListenAddress = \"127.0.0.1\"\nhaListenPort = {ha_port}\nstorePathRootDir = \"{store}\"\n"
        ),
    )
    .unwrap();
    // That broker will not start on a file system it sees as 90 % full (its
    // diskSpaceWarningLevelRatio is capped at 90 and counts root-reserved blocks as used):
    // say so rather than wait for a registration that cannot come.
    let used = used_percent_for_unprivileged(dir.path());
    assert!(
        used < 89.0,
        "the file system holding {} is {used:.1} % full; the foreign broker refuses to start at 90 %: free some space",
        dir.path().display()
    );
    let log_path = dir.path().join("foreign-broker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut broker = Proc(
        Command::new(&broker_bin)
            .arg("-c")
            .arg(&broker_conf)
            .env("ROCKETMQ_HOME", dir.path())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .env_remove("NAMESRV_ADDR")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn foreign broker"),
    );

    let rt = ClientRuntime::try_new(
        OWNER.root_context().component("process-admin"),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .unwrap();
    let rt: Arc<ClientRuntime> = rt;
    let mut admin = DefaultMQAdminExt::with_admin_ext_group_and_timeout(
        rt.clone(),
        "process_admin_group",
        Duration::from_secs(3),
    );
    admin.set_namesrv_addr(ns_addr.as_str());
    admin
        .client_config_mut()
        .set_instance_name(CheetahString::from("process-admin"));
    admin.start().await.expect("admin starts");

    // clusterList shows the foreign broker once it has registered.
    let expected_addr = format!("127.0.0.1:{broker_port}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let info = admin
            .examine_broker_cluster_info()
            .await
            .expect("cluster info");
        let found = info
            .broker_addr_table
            .as_ref()
            .and_then(|t| t.get(&CheetahString::from("foreign-broker")))
            .map(|b| b.broker_addrs().get(&0).map(|a| a.as_str().to_string()));
        if let Some(Some(addr)) = found {
            assert_eq!(addr, expected_addr);
            let clusters = info.cluster_addr_table.unwrap();
            assert!(clusters[&CheetahString::from("ForeignCluster")]
                .contains(&CheetahString::from("foreign-broker")));
            break;
        }
        let exited = broker.0.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "foreign broker never registered (exit: {exited:?}); the end of its log:\n{}",
            log_tail(&log_path, 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // topicRoute: the topics the broker registered resolve to it.
    let topics = admin.fetch_all_topic_list().await.expect("topic list");
    assert!(
        topics
            .topic_list
            .iter()
            .any(|t| t.as_str() == "foreign-broker"),
        "{:?}",
        topics.topic_list
    );
    let route = admin
        .examine_topic_route_info(CheetahString::from("foreign-broker"))
        .await
        .expect("route")
        .expect("route exists");
    assert_eq!(
        route.broker_datas[0]
            .broker_addrs()
            .get(&0)
            .map(|a| a.as_str()),
        Some(expected_addr.as_str())
    );
    assert_eq!(route.queue_datas[0].broker_name.as_str(), "foreign-broker");

    // kill -9 the broker: its connection closes and the name server drops it at once,
    // long before the 120 s expiry.
    broker.signal(libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = admin
            .examine_broker_cluster_info()
            .await
            .expect("cluster info");
        let gone = info
            .broker_addr_table
            .as_ref()
            .map(|t| t.is_empty())
            .unwrap_or(true);
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "killed broker still listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admin
        .examine_topic_route_info("foreign-broker".into())
        .await
        .unwrap()
        .is_none());
    admin.shutdown().await;
    drop(broker);
    ns.signal(libc::SIGTERM);
    assert!(ns
        .wait_exit(Duration::from_secs(10))
        .expect("exits")
        .success());
}
