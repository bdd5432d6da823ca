//! Master and slave partitioned from each other, for real: each `mqbroker` runs in its own
//! network namespace; the two talk over a direct veth link (replication, metadata sync,
//! role notifications) that the test takes down and brings back, while the test itself (the
//! clients) and the name server, in the root namespace, reach both all along over links of
//! their own. Needs root and iproute2 (CI runs as root; `scripts/test-deps` installs it).
//!
//! ```text
//!   root ns: name server on 10.8K.0.1 (on lo), clients
//!     ├── 10.8K.1.0/24 ── ns M (master)  10.8K.3.1 ─┐
//!     └── 10.8K.2.0/24 ── ns S (slave)   10.8K.3.2 ─┘ direct link: the one that goes down
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmq_remoting::header::{
    GetRouteInfoRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader, ViewMessageRequestHeader,
};
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::{JsonBody, RemotingClient, RemotingCommand, RequestCode, ResponseCode};

const MQBROKER: &str = env!("CARGO_BIN_EXE_mqbroker");
const T: Duration = Duration::from_secs(3);

fn ip(args: &[&str]) {
    let st = Command::new("ip")
        .args(args)
        .status()
        .expect("iproute2 `ip` is installed");
    assert!(st.success(), "ip {args:?} failed (needs root)");
}

/// The two namespaces and their links; `k` keeps concurrent tests' subnets apart.
struct Net {
    k: u8,
    m: String,
    s: String,
    root_links: [String; 2],
}

impl Net {
    fn create(k: u8) -> Net {
        let pid = std::process::id();
        let net = Net {
            k,
            m: format!("rmqpm{k}-{pid}"),
            s: format!("rmqps{k}-{pid}"),
            root_links: [format!("rpm{k}{pid}"), format!("rps{k}{pid}")],
        };
        let n = |x: u8, h: u8| format!("10.8{k}.{x}.{h}");
        ip(&["addr", "add", &format!("{}/32", n(0, 1)), "dev", "lo"]);
        for (i, (ns, dev)) in [(&net.m, "m0"), (&net.s, "s0")].into_iter().enumerate() {
            let subnet = i as u8 + 1;
            let root = &net.root_links[i];
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&[
                "link", "add", root, "type", "veth", "peer", "name", dev, "netns", ns,
            ]);
            ip(&["addr", "add", &format!("{}/24", n(subnet, 1)), "dev", root]);
            ip(&["link", "set", root, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", n(subnet, 2)),
                "dev",
                dev,
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "route", "add", &n(0, 1), "via", &n(subnet, 1)]);
        }
        // The direct link; each broker reaches the other's client-facing address over it.
        ip(&[
            "-n", &net.m, "link", "add", "mr", "type", "veth", "peer", "name", "sr", "netns",
            &net.s,
        ]);
        ip(&[
            "-n",
            &net.m,
            "addr",
            "add",
            &format!("{}/24", n(3, 1)),
            "dev",
            "mr",
        ]);
        ip(&[
            "-n",
            &net.s,
            "addr",
            "add",
            &format!("{}/24", n(3, 2)),
            "dev",
            "sr",
        ]);
        net.link(true);
        net
    }

    fn addr(&self, x: u8, h: u8) -> String {
        format!("10.8{}.{x}.{h}", self.k)
    }

    fn namesrv_ip(&self) -> String {
        self.addr(0, 1)
    }

    fn master_addr(&self) -> String {
        format!("{}:10911", self.addr(1, 2))
    }

    fn slave_addr(&self) -> String {
        format!("{}:10911", self.addr(2, 2))
    }

    /// Takes the direct link down (`false`) or brings it (and the routes over it, which
    /// the kernel drops with the link) back.
    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.m, "link", "set", "mr", state]);
        ip(&["-n", &self.s, "link", "set", "sr", state]);
        if up {
            let (to_s, to_m) = (
                format!("{}/24", self.addr(2, 0)),
                format!("{}/24", self.addr(1, 0)),
            );
            ip(&[
                "-n",
                &self.m,
                "route",
                "replace",
                &to_s,
                "via",
                &self.addr(3, 2),
            ]);
            ip(&[
                "-n",
                &self.s,
                "route",
                "replace",
                &to_m,
                "via",
                &self.addr(3, 1),
            ]);
        }
    }

    /// `mqbroker` inside `ns` (the `ip netns exec` child execs the broker: same PID).
    fn broker(&self, dir: &std::path::Path, master: bool, role: &str, namesrv: &str) -> Proc {
        let (ns, subnet, id, tag) = if master {
            (&self.m, 1, 0, "m")
        } else {
            (&self.s, 2, 1, "s")
        };
        let conf = dir.join(format!("broker-{tag}.conf"));
        std::fs::write(
            &conf,
            format!(
                "brokerName=part-broker\nbrokerId={id}\nbrokerRole={role}\nbrokerIP1={}\nbrokerIP2={}\n\
                 namesrvAddr={namesrv}\nstorePathRootDir={}\nmappedFileSizeCommitLog=4194304\n\
                 mappedFileSizeConsumeQueue=20000\nmaxHashSlotNum=1024\nmaxIndexNum=4096\n\
                 haHousekeepingInterval=3000\nsyncFlushTimeout=1500\nregisterNameServerPeriod=10000\n",
                self.addr(subnet, 2),
                self.addr(3, subnet),
                dir.join(format!("store-{tag}")).display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("broker-{tag}.log"))).unwrap();
        Proc(
            Command::new("ip")
                .args(["netns", "exec", ns, MQBROKER, "-c"])
                .arg(&conf)
                .env("RUST_LOG", "info,rmq_broker::failover=debug")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn mqbroker in its namespace"),
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.m, &self.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args([
                "addr",
                "del",
                &format!("{}/32", self.namesrv_ip()),
                "dev",
                "lo",
            ])
            .status();
    }
}

/// Kills the broker on drop so a failing test leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send(body: &str) -> RemotingCommand {
    let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "PartTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        ..Default::default()
    });
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &h)
        .with_body(body.as_bytes().to_vec())
}

/// Sends `body`; `(code, offset message id)`.
async fn send_one(client: &RemotingClient, addr: &str, body: &str) -> (i32, String) {
    match client
        .invoke(addr, send(body), Duration::from_secs(5))
        .await
    {
        Ok(r) => {
            let id = r
                .decode_header::<SendMessageResponseHeader>()
                .map(|h| h.msg_id)
                .unwrap_or_default();
            (r.code, id)
        }
        Err(_) => (-1, String::new()),
    }
}

/// GET_BROKER_EPOCH_CACHE: (brokerId, current epoch, commit-log max offset).
async fn epoch_cache(client: &RemotingClient, addr: &str) -> Option<(i64, i64, i64)> {
    let r = client
        .invoke(
            addr,
            RemotingCommand::request(RequestCode::GET_BROKER_EPOCH_CACHE),
            T,
        )
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let epoch = v["epochList"]
        .as_array()?
        .last()
        .and_then(|e| e["epoch"].as_i64())
        .unwrap_or(0);
    Some((v["brokerId"].as_i64()?, epoch, v["maxOffset"].as_i64()?))
}

/// The message at `id`'s offset on `addr`, if any.
async fn view(client: &RemotingClient, addr: &str, id: &str) -> Option<Vec<u8>> {
    let (_, offset) = rmq_remoting::message::decode_offset_msg_id(id).unwrap();
    let req = RemotingCommand::request_with_header(
        RequestCode::VIEW_MESSAGE_BY_ID,
        &ViewMessageRequestHeader {
            offset,
            topic: None,
        },
    );
    let r = client.invoke(addr, req, T).await.ok()?;
    if r.code != ResponseCode::SUCCESS {
        return None;
    }
    let m = rmq_remoting::message::MessageExt::decode_all(r.body).ok()?;
    m.into_iter().next().map(|m| m.body.to_vec())
}

async fn wait_for(what: &str, secs: u64, logs: &std::path::Path, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if Instant::now() > deadline {
            let log = |t: &str| {
                std::fs::read_to_string(logs.join(format!("broker-{t}.log"))).unwrap_or_default()
            };
            panic!(
                "{what}: not within {secs} s\n--- master log ---\n{}\n--- slave log ---\n{}",
                log("m"),
                log("s")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_namesrv(net: &Net, dir: &std::path::Path) -> rmq_nameserver::NameServer {
    rmq_nameserver::NameServer::start(rmq_nameserver::NamesrvConfig {
        listen_port: 0,
        bind_address: net.namesrv_ip(),
        kv_config_path: dir.join("kv.json").display().to_string(),
        config_store_path: dir.join("ns.properties").display().to_string(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The slave holds everything the master has.
async fn caught_up(client: &RemotingClient, net: &Net) -> bool {
    match (
        epoch_cache(client, &net.master_addr()).await,
        epoch_cache(client, &net.slave_addr()).await,
    ) {
        (Some(m), Some(s)) => m.2 > 0 && m.2 == s.2,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_master_cut_off_from_its_slave_refuses_acks_then_recovers() {
    let net = Net::create(1);
    let dir = tempfile::tempdir().unwrap();
    let ns = start_namesrv(&net, dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let _master = net.broker(dir.path(), true, "SYNC_MASTER", &ns_addr);
    let _slave = net.broker(dir.path(), false, "SLAVE", &ns_addr);
    let client = rmq_testkit::admin_client();
    let maddr = net.master_addr();

    wait_for(
        "a send the slave acknowledges",
        30,
        dir.path(),
        async || send_one(&client, &maddr, "probe").await.0 == ResponseCode::SUCCESS,
    )
    .await;
    for i in 0..20 {
        let (code, _) = send_one(&client, &maddr, &format!("before-{i}")).await;
        assert_eq!(
            code,
            ResponseCode::SUCCESS,
            "send {i} with the slave connected"
        );
    }

    net.link(false);
    // No acknowledgement without the slave: FLUSH_SLAVE_TIMEOUT while the master still waits
    // for the slave's reports, SLAVE_NOT_AVAILABLE once it gave up on it
    // (haHousekeepingInterval, 3 s here). These are SendStatus values clients know.
    let mut codes = Vec::new();
    let cut_at = Instant::now();
    while codes.last() != Some(&ResponseCode::SLAVE_NOT_AVAILABLE) {
        assert!(
            cut_at.elapsed() < Duration::from_secs(20),
            "the master never gave up on its slave: {codes:?}"
        );
        codes.push(send_one(&client, &maddr, "during").await.0);
    }
    assert_eq!(
        codes[0],
        ResponseCode::FLUSH_SLAVE_TIMEOUT,
        "first answer after the cut: {codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| *c == ResponseCode::FLUSH_SLAVE_TIMEOUT
                || *c == ResponseCode::SLAVE_NOT_AVAILABLE),
        "only the slave codes while cut off: {codes:?}"
    );

    net.link(true);
    wait_for(
        "a send acknowledged after the link is back",
        30,
        dir.path(),
        async || send_one(&client, &maddr, "after").await.0 == ResponseCode::SUCCESS,
    )
    .await;
    // What the master stored while cut off (answered FLUSH_SLAVE_TIMEOUT / SLAVE_NOT_AVAILABLE,
    // as RocketMQ does, it is stored) reaches the slave too.
    wait_for("the slave catches up", 30, dir.path(), async || {
        caught_up(&client, &net).await
    })
    .await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_master_cut_off_keeps_writing_then_steps_down_with_its_tail_cut() {
    let net = Net::create(2);
    let dir = tempfile::tempdir().unwrap();
    let ns = start_namesrv(&net, dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let _master = net.broker(dir.path(), true, "ASYNC_MASTER", &ns_addr);
    let _slave = net.broker(dir.path(), false, "SLAVE", &ns_addr);
    let client = rmq_testkit::admin_client();
    let (maddr, saddr) = (net.master_addr(), net.slave_addr());

    wait_for("the master takes sends", 30, dir.path(), async || {
        send_one(&client, &maddr, "probe").await.0 == ResponseCode::SUCCESS
    })
    .await;
    let mut before = Vec::new();
    for i in 0..20 {
        let body = format!("before-{i}");
        let (code, id) = send_one(&client, &maddr, &body).await;
        assert_eq!(code, ResponseCode::SUCCESS);
        before.push((body, id));
    }
    wait_for("the slave catches up", 30, dir.path(), async || {
        caught_up(&client, &net).await
    })
    .await;

    net.link(false);
    // ASYNC_MASTER answers after its own append: sends go on without the slave. These are
    // the tail the slave never gets.
    let mut tail = Vec::new();
    for i in 0..20 {
        let body = format!("tail-{i}");
        let (code, id) = send_one(&client, &maddr, &body).await;
        assert_eq!(code, ResponseCode::SUCCESS, "ASYNC send {i} while cut off");
        tail.push((body, id));
    }

    // The slave is promoted (as the operator or `mqadmin promote` would) and takes writes.
    let (_, epoch, _) = epoch_cache(&client, &saddr).await.unwrap();
    let mut promote = RemotingCommand::request(RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    for (k, v) in [
        ("masterAddress", saddr.clone()),
        ("masterEpoch", (epoch + 1).to_string()),
        ("brokerRole", "ASYNC_MASTER".into()),
    ] {
        promote.ext_fields.insert(k.into(), v);
    }
    let r = client.invoke(&saddr, promote, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    let mut after = Vec::new();
    wait_for(
        "the promoted slave takes writes",
        30,
        dir.path(),
        async || send_one(&client, &saddr, "first").await.0 == ResponseCode::SUCCESS,
    )
    .await;
    for i in 0..20 {
        let body = format!("new-master-{i}");
        let (code, id) = send_one(&client, &saddr, &body).await;
        assert_eq!(code, ResponseCode::SUCCESS);
        after.push((body, id));
    }

    // Still cut off from the new master, the old one learns from the name server (which it
    // still reaches) that a newer epoch leads: it stops taking writes at its next
    // registration (every 10 s here), so it cannot diverge further.
    wait_for(
        "the old master fenced by the name server",
        20,
        dir.path(),
        async || send_one(&client, &maddr, "still there?").await.0 == ResponseCode::NO_PERMISSION,
    )
    .await;

    // The link comes back: the new master reaches its former master, which steps down,
    // cuts its tail and follows.
    net.link(true);
    wait_for(
        "the former master rejoins as a slave",
        30,
        dir.path(),
        async || {
            matches!(epoch_cache(&client, &maddr).await, Some((1, e, _)) if e == epoch + 1)
                && caught_up(&client, &net).await
        },
    )
    .await;
    let (code, _) = send_one(&client, &maddr, "to the former master").await;
    assert_ne!(code, ResponseCode::SUCCESS, "a demoted master took a write");

    // Both logs are the new master's: what the old master wrote alone is gone, everything
    // else is on both.
    for (body, id) in before.iter().chain(&after) {
        for addr in [&maddr, &saddr] {
            assert_eq!(
                view(&client, addr, id).await.as_deref(),
                Some(body.as_bytes()),
                "{body} on {addr}"
            );
        }
    }
    for (body, id) in &tail {
        assert_ne!(
            view(&client, &maddr, id).await.as_deref(),
            Some(body.as_bytes()),
            "{body} survived on the former master"
        );
    }

    // The name servers see one master again, the promoted one, and the former as slave 1.
    wait_for(
        "the route shows the new arrangement",
        40,
        dir.path(),
        async || {
            let req = RemotingCommand::request_with_header(
                RequestCode::GET_ROUTEINFO_BY_TOPIC,
                &GetRouteInfoRequestHeader {
                    topic: "PartTopic".into(),
                    accept_standard_json_only: None,
                },
            );
            let Ok(r) = client.invoke(&ns_addr, req, T).await else {
                return false;
            };
            let Ok(route) = TopicRouteData::decode(&r.body) else {
                return false;
            };
            let addrs = &route.broker_datas[0].broker_addrs;
            addrs.get(&0) == Some(&saddr) && addrs.get(&1) == Some(&maddr)
        },
    )
    .await;
    ns.shutdown().await;
}
