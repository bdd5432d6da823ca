//! The `mqbroker` binary as users run it: `-p`, `-m`, `-c`, `-n`, and SIGTERM (unregister,
//! flush, clean checkpoint).

use rmq_testkit::free_port;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MQBROKER: &str = env!("CARGO_BIN_EXE_mqbroker");

#[test]
fn print_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker.conf");
    std::fs::write(&conf, "brokerName=broker-x\nflushDiskType=SYNC_FLUSH\n").unwrap();
    let out = Command::new(MQBROKER)
        .arg("-c")
        .arg(&conf)
        .args(["-n", "10.0.0.1:9876", "-p"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "brokerName=broker-x",
        "flushDiskType=SYNC_FLUSH",
        "listenPort=10911",
        "namesrvAddr=10.0.0.1:9876",
        "mappedFileSizeCommitLog=1073741824",
        "fileReservedTime=72",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    let out = Command::new(MQBROKER).arg("-m").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("brokerClusterName=DefaultCluster") && !text.contains("frameMaxLength"),
        "{text}"
    );
    // A malformed name server address is refused, as RocketMQ refuses it.
    let out = Command::new(MQBROKER)
        .args(["-n", "no-port-here", "-p"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// `mqbroker -c <conf> -p` with `conf` written under `dir`.
fn print_config_of(dir: &std::path::Path, conf: &str) -> std::process::Output {
    let path = dir.join("broker.conf");
    std::fs::write(&path, conf).unwrap();
    Command::new(MQBROKER)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .output()
        .unwrap()
}

/// A misspelt role, flush type or permission stops the broker with the property named, where
/// it used to fall back to a default silently (`SYNC_FLSUH` meant ASYNC_FLUSH).
#[test]
fn bad_role_flush_type_or_permission_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (line, key) in [
        ("flushDiskType=SYNC_FLSUH", "flushDiskType"),
        ("brokerRole=MASTER", "brokerRole"),
        ("brokerPermission=16", "brokerPermission"),
        ("brokerPermission=rw", "brokerPermission"),
    ] {
        let out = print_config_of(dir.path(), &format!("brokerName=broker-x\n{line}\n"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{line} was accepted");
        assert!(err.contains(key), "{line}: {err}");
    }
    // Any case is read, and printed as RocketMQ writes it.
    let out = print_config_of(
        dir.path(),
        "brokerRole=sync_master\nflushDiskType=sync_flush\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.lines().any(|l| l == "brokerRole=SYNC_MASTER"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "flushDiskType=SYNC_FLUSH"),
        "{text}"
    );
}

#[tokio::test]
async fn sigterm_unregisters_and_leaves_a_clean_store() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let port = free_port();
    let store = dir.path().join("store");
    let conf = dir.path().join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerName=proc-broker\nbrokerIP1=127.0.0.1\nlistenPort={port}\nstorePathRootDir={}\nmappedFileSizeCommitLog=4194304\nmappedFileSizeConsumeQueue=20000\nmaxHashSlotNum=1024\nmaxIndexNum=4096\n",
            store.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(MQBROKER)
        .arg("-c")
        .arg(&conf)
        .args(["-n", &ns.local_addr().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ns.processor().route.live_broker_count() == 0 {
        assert!(Instant::now() < deadline, "broker never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        store.join("abort").exists(),
        "a running store has its abort file"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "broker did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(
        ns.processor().route.live_broker_count(),
        0,
        "unregistered on the way out"
    );
    assert!(
        !store.join("abort").exists(),
        "clean shutdown removes the abort file"
    );
    assert!(store.join("config/topics.json").exists());
    ns.shutdown().await;
}
