//! The attacks of issue 14 against a real `mqbroker` process on 127.0.0.1, each followed by
//! an honest client that must still be served: a client that pipelines large responses and
//! never reads, a heartbeat naming 80,000 groups, floods of long polls that are then dropped,
//! thousands of connections with half-sent frames, and a retry queue count of 2^31 - 1. The
//! broker's anonymous memory (RssAnon) is read after each and printed; the bounds asserted
//! are generous (a debug build), what matters is that memory stops growing with the attack.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmq_remoting::header::PullMessageRequestHeader;
use rmq_remoting::protocol::admin::SubscriptionGroupConfig;
use rmq_remoting::protocol::heartbeat::{ConsumerData, HeartbeatData, ProducerData};
use rmq_remoting::{JsonBody, RemotingClient, RemotingCodec, RemotingCommand, RequestCode};
use rmq_remoting::{ResponseCode, SerializeType};
use rmq_testkit::free_port;
use tokio_util::codec::Encoder;

const MQBROKER: &str = env!("CARGO_BIN_EXE_mqbroker");
const T: Duration = Duration::from_secs(10);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Anonymous resident memory of `pid`, MiB.
fn rss_anon_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn encode(cmds: impl IntoIterator<Item = RemotingCommand>) -> Vec<u8> {
    let mut codec = RemotingCodec::default();
    let mut buf = bytes::BytesMut::new();
    for c in cmds {
        codec.encode(c, &mut buf).unwrap();
    }
    buf.to_vec()
}

/// A socket from `ip` (any 127/8 address) to `port` on 127.0.0.1.
fn connect_from(ip: [u8; 4], port: u16) -> std::io::Result<std::net::TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((ip, 0)).into())?;
    s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    Ok(s.into())
}

fn pull(group: &str, topic: &str, queue_id: i32, suspend_ms: i64) -> RemotingCommand {
    RemotingCommand::request_with_header(
        RequestCode::PULL_MESSAGE,
        &PullMessageRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id,
            queue_offset: 0,
            max_msg_nums: 32,
            sys_flag: 2 | 4, // SUSPEND | SUBSCRIPTION
            commit_offset: 0,
            suspend_timeout_millis: suspend_ms,
            subscription: Some("*".into()),
            expression_type: Some("TAG".into()),
            ..Default::default()
        },
    )
}

fn heartbeat(groups: impl Iterator<Item = String>) -> RemotingCommand {
    let hb = HeartbeatData {
        client_id: "attacker@1".into(),
        consumer_data_set: groups
            .map(|g| ConsumerData {
                group_name: g,
                ..Default::default()
            })
            .collect(),
        producer_data_set: vec![ProducerData {
            group_name: "CLIENT_INNER_PRODUCER".into(),
        }],
        ..Default::default()
    };
    RemotingCommand::request(RequestCode::HEART_BEAT).with_body(hb.encode())
}

struct Honest {
    client: RemotingClient,
    addr: String,
    sent: usize,
}

impl Honest {
    /// One send and one pull of it, each within a few seconds.
    async fn served(&mut self, when: &str) {
        let started = Instant::now();
        let r = self
            .client
            .invoke(
                &self.addr,
                rmq_testkit::send_request("Honest", format!("m{}", self.sent).as_bytes()),
                T,
            )
            .await
            .unwrap_or_else(|e| panic!("{when}: honest send failed: {e}"));
        assert_eq!(r.code, ResponseCode::SUCCESS, "{when}: {:?}", r.remark);
        self.sent += 1;
        let r = self
            .client
            .invoke(&self.addr, pull("honest", "Honest", 0, 0), T)
            .await
            .unwrap_or_else(|e| panic!("{when}: honest pull failed: {e}"));
        assert!(
            r.code == ResponseCode::SUCCESS || r.code == ResponseCode::PULL_NOT_FOUND,
            "{when}: pull {} {:?}",
            r.code,
            r.remark
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{when}: the honest client waited {:?}",
            started.elapsed()
        );
    }
}

async fn scrape(port: u16, name: &str) -> f64 {
    let text = reqwest_lite(port).await;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing"))
}

/// GET /metrics over a plain socket (no HTTP client needed for one line of protocol).
async fn reqwest_lite(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_serves_honest_clients_through_every_attack_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let port = free_port();
    let metrics_port = free_port();
    let store = dir.path().join("store");
    let conf = dir.path().join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerName=hostile\nbrokerIP1=127.0.0.1\nlistenPort={port}\nmetricsPort={metrics_port}\n\
             storePathRootDir={}\nmappedFileSizeCommitLog=4194304\nmappedFileSizeConsumeQueue=20000\n\
             maxHashSlotNum=1024\nmaxIndexNum=4096\nmaxHeldPulls=8000\npullSuspendMaxTimeMillis=600000\n\
             serverWriteTimeoutMillis=5000\n",
            store.display()
        ),
    )
    .unwrap();
    let child = Proc(
        Command::new(MQBROKER)
            .arg("-c")
            .arg(&conf)
            .args(["-n", &ns.local_addr().to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ns.processor().route.live_broker_count() == 0 {
        assert!(
            Instant::now() < deadline,
            "broker never registered: {}",
            std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = format!("127.0.0.1:{port}");
    let admin = rmq_testkit::admin_client();
    let mut honest = Honest {
        client: RemotingClient::default(),
        addr: addr.clone(),
        sent: 0,
    };
    honest.served("at start").await;
    let mut figures = vec![("idle".to_string(), rss_anon_mib(pid))];

    // 1. 256 topics, then 20,000 pipelined GET_ALL_TOPIC_CONFIG that are never read.
    for i in 0..256 {
        let r = admin
            .invoke(
                &addr,
                rmq_testkit::create_topic_request(&format!("Topic{i:03}"), 8, 6),
                T,
            )
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    }
    let flood = encode((0..20_000).map(|_| {
        let mut c = RemotingCommand::request(RequestCode::GET_ALL_TOPIC_CONFIG);
        c.serialize_type = SerializeType::Json;
        c
    }));
    let writer = std::thread::spawn(move || {
        let mut s = connect_from([127, 0, 0, 2], port).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(&flood);
        // Held open, never read, until the broker gives up on it.
        std::thread::sleep(Duration::from_secs(8));
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    honest
        .served("while a client pipelines and never reads")
        .await;
    let during = rss_anon_mib(pid);
    figures.push((
        "20,000 pipelined GET_ALL_TOPIC_CONFIG, unread".into(),
        during,
    ));
    assert!(
        during - figures[0].1 < 200.0,
        "the unread responses grew the broker from {:.0} to {during:.0} MiB",
        figures[0].1
    );
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();

    // 2. A heartbeat naming 80,000 groups, twice: refused at once, nothing created.
    for round in 0..2 {
        let started = Instant::now();
        let r = honest
            .client
            .invoke(
                &addr,
                heartbeat((0..80_000).map(|i| format!("G{round}_{i}"))),
                T,
            )
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::INVALID_PARAMETER, "{:?}", r.remark);
        assert!(started.elapsed() < Duration::from_secs(5));
        honest.served("after an 80,000-group heartbeat").await;
    }
    figures.push((
        "HEART_BEAT of 80,000 groups, twice".into(),
        rss_anon_mib(pid),
    ));
    // Many honest-sized heartbeats: auto-creation stops at the limit, registration goes on.
    for batch in 0..11 {
        let r = honest
            .client
            .invoke(
                &addr,
                // 999 consumer groups and the producer group: at the per-heartbeat limit.
                heartbeat((batch * 999..(batch + 1) * 999).map(|i| format!("CG_{i}"))),
                T,
            )
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    }
    let r = admin
        .invoke(
            &addr,
            RemotingCommand::request(RequestCode::GET_ALL_SUBSCRIPTIONGROUP_CONFIG),
            T,
        )
        .await
        .unwrap();
    let groups: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let n = groups["subscriptionGroupTable"].as_object().unwrap().len();
    assert_eq!(
        n, 10_000,
        "auto-creation stops at autoCreateSubscriptionGroupLimit"
    );
    let r = honest
        .client
        .invoke(&addr, pull("CG_10988", "Honest", 0, 0), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST);
    assert!(r
        .remark
        .unwrap()
        .contains("autoCreateSubscriptionGroupLimit"));
    // The registration of ~10,300 topics still reaches the name server.
    let deadline = Instant::now() + Duration::from_secs(40);
    while ns.processor().route.topic_route("%RETRY%CG_9900").is_none() {
        assert!(
            Instant::now() < deadline,
            "a broker at its limits no longer registers its topics"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    honest.served("at the group limit").await;
    figures.push((
        "10,000 groups auto-created (the limit)".into(),
        rss_anon_mib(pid),
    ));

    // 3. Long polls that never end, from 100 connections, dropped; twice.
    // (Under a group that exists: the broker is at its group limit.)
    for round in 0..2 {
        let mut conns = Vec::new();
        for c in 0..100 {
            let mut s = connect_from([127, 0, 0, 3], port).unwrap();
            let polls =
                encode((0..80).map(|k| pull("honest", &format!("Topic{:03}", c), k % 8, 600_000)));
            s.write_all(&polls).unwrap();
            conns.push(s);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while scrape(metrics_port, "rocketmq_held_pull_requests").await < 8000.0 {
            assert!(
                Instant::now() < deadline,
                "the polls were not held: {}",
                scrape(metrics_port, "rocketmq_held_pull_requests").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Over maxHeldPulls: refused with SYSTEM_BUSY, so clients back off.
        let r = honest
            .client
            .invoke(&addr, pull("honest", "Topic000", 0, 600_000), T)
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SYSTEM_BUSY, "{:?}", r.remark);
        honest.served("with 8,000 held pulls").await;
        let held_rss = rss_anon_mib(pid);
        drop(conns);
        let deadline = Instant::now() + Duration::from_secs(10);
        while scrape(metrics_port, "rocketmq_held_pull_requests").await > 0.0 {
            assert!(
                Instant::now() < deadline,
                "holds outlived their connections"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        figures.push((format!("8,000 held pulls (round {})", round + 1), held_rss));
        figures.push((
            format!("after their connections closed (round {})", round + 1),
            rss_anon_mib(pid),
        ));
    }
    let (r1, r2) = (figures[figures.len() - 3].1, figures[figures.len() - 1].1);
    assert!(
        r2 - r1 < 40.0,
        "memory kept growing over rounds: {r1:.0} → {r2:.0} MiB"
    );

    // 4. 10,000 connections, some with half a frame, from ten addresses.
    let mut socks = Vec::new();
    for ip in 10..20u8 {
        for k in 0..1000 {
            let mut s = connect_from([127, 0, 0, ip], port).unwrap();
            if k % 25 == 0 {
                // A length word promising 1,000 bytes, and 10 of them.
                s.write_all(&1000u32.to_be_bytes()).unwrap();
                s.write_all(&[0u8; 10]).unwrap();
            }
            socks.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    honest.served("with 10,000 idle connections").await;
    figures.push((
        "10,000 idle connections + 400 half frames".into(),
        rss_anon_mib(pid),
    ));
    drop(socks);
    // Over the per-address cap: the 2,001st connection from one address is closed at once.
    let mut same: Vec<_> = (0..2000)
        .map(|_| connect_from([127, 0, 0, 9], port).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut over = connect_from([127, 0, 0, 9], port).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(std::io::Read::read(&mut over, &mut b), Ok(0) | Err(_)),
        "the connection over serverMaxConnectionsPerAddress was kept"
    );
    honest
        .served("with one address at its connection cap")
        .await;
    same.clear();

    // 5. retryQueueNums = 2^31 - 1 is refused.
    let g = SubscriptionGroupConfig {
        group_name: "huge-retry".into(),
        retry_queue_nums: i32::MAX,
        ..Default::default()
    };
    let r = admin
        .invoke(
            &addr,
            RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(g.encode()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::INVALID_PARAMETER, "{:?}", r.remark);

    eprintln!("broker RssAnon under attack (debug build):");
    for (what, mib) in &figures {
        eprintln!("  {what:<50} {mib:>7.1} MiB");
    }
    drop(child);
    ns.shutdown().await;
}
