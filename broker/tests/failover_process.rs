//! Failover with real processes: a SYNC_MASTER `mqbroker` and its slave under a stream of
//! sends; the master is killed with SIGKILL, the slave promoted (NOTIFY_BROKER_ROLE_CHANGED,
//! as `mqadmin promote` sends it), and every send the master acknowledged is readable on the
//! new master, which takes writes; unchanged `rocketmq-client-rust` producers and
//! consumers carry on through such a failover after their route refresh; and the former
//! master, restarted with its stale config (SYNC_MASTER, brokerId 0), takes no write at any
//! moment and follows the new master, losing no acknowledged send through the next failover.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmq_remoting::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
    ViewMessageRequestHeader,
};
use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};
use rmq_testkit::free_port;
use rocketmq_client_rust::{
    ClientConfig, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;

const MQBROKER: &str = env!("CARGO_BIN_EXE_mqbroker");

/// Kills the child on drop so a failing test leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, ns: &str, port: u16, id: i64, role: &str) -> Proc {
    let conf = dir.join(format!("broker-{id}.conf"));
    std::fs::write(
        &conf,
        format!(
            "brokerName=fo-broker\nbrokerId={id}\nbrokerRole={role}\nbrokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nlistenPort={port}\nnamesrvAddr={ns}\nstorePathRootDir={}\nmappedFileSizeCommitLog=4194304\nmappedFileSizeConsumeQueue=20000\nmaxHashSlotNum=1024\nmaxIndexNum=4096\n",
            dir.join(format!("store-{id}")).display()
        ),
    )
    .unwrap();
    Proc(
        Command::new(MQBROKER)
            .arg("-c")
            .arg(&conf)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mqbroker"),
    )
}

fn promote_req(addr: &str, epoch: i32, role: &str) -> RemotingCommand {
    let mut promote = RemotingCommand::request(RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    for (k, v) in [
        ("masterAddress", addr.to_string()),
        ("masterEpoch", epoch.to_string()),
        ("brokerRole", role.to_string()),
    ] {
        promote.ext_fields.insert(k.into(), v);
    }
    promote
}

fn send(body: &str) -> RemotingCommand {
    let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "FoTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        ..Default::default()
    });
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &h)
        .with_body(body.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_sync_master_promote_and_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let (mport, sport) = (free_port(), free_port());
    let master = start(dir.path(), &ns_addr, mport, 0, "SYNC_MASTER");
    let _slave = start(dir.path(), &ns_addr, sport, 1, "SLAVE");
    let (maddr, saddr) = (format!("127.0.0.1:{mport}"), format!("127.0.0.1:{sport}"));
    let client = rmq_testkit::admin_client();
    let t = Duration::from_secs(3);

    // Sends until the slave is in: then every SUCCESS is on both.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.invoke(&maddr, send("probe"), t).await {
            if r.code == ResponseCode::SUCCESS {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the SYNC_MASTER never acknowledged a send"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A stream of sends, killed in the middle.
    let sender = {
        let client = client.clone();
        let maddr = maddr.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..100_000 {
                match client
                    .invoke(&maddr, send(&format!("m{i}")), Duration::from_secs(2))
                    .await
                {
                    Ok(r) if r.code == ResponseCode::SUCCESS => {
                        let h: SendMessageResponseHeader = r.decode_header().unwrap();
                        acked.push((format!("m{i}"), h.msg_id));
                    }
                    Ok(_) => {}
                    Err(_) => break, // the master is gone
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SAFETY: plain syscall on our own child.
    unsafe {
        libc::kill(master.0.id() as i32, libc::SIGKILL);
    }
    let killed_at = Instant::now();
    let acked = sender.await.unwrap();
    assert!(
        acked.len() > 50,
        "only {} acknowledged before the kill",
        acked.len()
    );

    // Promote the slave (what `mqadmin promote` sends) and write to it.
    let mut promote = RemotingCommand::request(RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    promote
        .ext_fields
        .insert("masterAddress".into(), saddr.clone());
    promote.ext_fields.insert("masterEpoch".into(), "2".into());
    promote
        .ext_fields
        .insert("brokerRole".into(), "ASYNC_MASTER".into());
    let r = client.invoke(&saddr, promote, t).await.unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.invoke(&saddr, send("after"), t).await {
            if r.code == ResponseCode::SUCCESS {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the promoted slave never took a write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let switched = killed_at.elapsed();
    // Every acknowledged message, by its offset id, on the new master.
    for (body, id) in &acked {
        let (_, offset) = rmq_remoting::message::decode_offset_msg_id(id).unwrap();
        let view = RemotingCommand::request_with_header(
            RequestCode::VIEW_MESSAGE_BY_ID,
            &ViewMessageRequestHeader {
                offset,
                topic: None,
            },
        );
        let r = client.invoke(&saddr, view, t).await.unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{body} lost");
        let m = rmq_remoting::message::MessageExt::decode_all(r.body).unwrap();
        assert_eq!(m[0].body.as_ref(), body.as_bytes());
    }
    eprintln!(
        "{} acknowledged before the kill, 0 lost; first write on the new master {:?} after the kill",
        acked.len(),
        switched
    );
    ns.shutdown().await;
}

fn client_config(ns: &str, instance: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: Some(ns.to_string().into()),
        instance_name: instance.to_string().into(),
        vip_channel_enabled: false,
        // The client's lower bound; RocketMQ's default is 30 s.
        poll_name_server_interval: 10_000,
        heartbeat_broker_interval: 10_000,
        persist_consumer_offset_interval: 1_000,
        ..Default::default()
    }
}

async fn client_send(producer: &DefaultMQProducer, body: &str) -> bool {
    let msg = Message::builder()
        .topic("FoClientTopic".to_string())
        .tags("T".to_string())
        .body_slice(body.as_bytes())
        .build_unchecked();
    matches!(
        producer.send_with_timeout(msg, 3000).await,
        Ok(Some(r)) if r.send_status == SendStatus::SendOk
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_clients_carry_on_after_the_master_is_killed_and_its_slave_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let (mport, sport) = (free_port(), free_port());
    let master = start(dir.path(), &ns_addr, mport, 0, "SYNC_MASTER");
    let _slave = start(dir.path(), &ns_addr, sport, 1, "SLAVE");
    let saddr = format!("127.0.0.1:{sport}");

    let rt = rmq_testkit::client::client_runtime("failover-clients");
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .client_config(client_config(&ns_addr, "fo-producer"))
        .producer_group("pg_fo")
        .build();
    producer.start().await.expect("producer starts");
    // SendOk from a SYNC_MASTER: the slave holds it too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client_send(&producer, "warm-up").await {
        assert!(
            Instant::now() < deadline,
            "the SYNC_MASTER never sent SendOk"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut acked = vec!["warm-up".to_string()];
    for i in 0..50 {
        let body = format!("before-{i}");
        assert!(client_send(&producer, &body).await, "{body}");
        acked.push(body);
    }
    let got = rmq_testkit::client::Bodies::default();
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .client_config(client_config(&ns_addr, "fo-consumer"))
        .consumer_group("cg_fo")
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer
        .subscribe("FoClientTopic", "*")
        .await
        .expect("subscribe");
    consumer.register_message_listener_concurrently(got.clone());
    consumer.start().await.expect("consumer starts");

    // SAFETY: plain syscall on our own child.
    unsafe {
        libc::kill(master.0.id() as i32, libc::SIGKILL);
    }
    let mut promote = RemotingCommand::request(RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    for (k, v) in [
        ("masterAddress", saddr.clone()),
        ("masterEpoch", "2".to_string()),
        ("brokerRole", "ASYNC_MASTER".to_string()),
    ] {
        promote.ext_fields.insert(k.into(), v);
    }
    let r = rmq_testkit::admin_client()
        .invoke(&saddr, promote, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);

    // The same producer, after its route refresh, sends to the promoted broker.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !client_send(&producer, "first-after").await {
        assert!(
            Instant::now() < deadline,
            "the producer never reached the promoted broker"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    acked.push("first-after".into());
    for i in 0..50 {
        let body = format!("after-{i}");
        assert!(client_send(&producer, &body).await, "{body}");
        acked.push(body);
    }
    // The same consumer gets every acknowledged message, from before and after the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<String> = {
            let g = got.0.lock().unwrap();
            acked.iter().filter(|b| !g.contains(*b)).cloned().collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer never got {} acknowledged messages: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.shutdown().await;
    producer.shutdown().await;
    ns.shutdown().await;
}

/// Answers that mean the broker stored the message: a write accepted.
fn stored(code: i32) -> bool {
    [
        ResponseCode::SUCCESS,
        ResponseCode::SLAVE_NOT_AVAILABLE,
        ResponseCode::FLUSH_SLAVE_TIMEOUT,
        ResponseCode::FLUSH_DISK_TIMEOUT,
    ]
    .contains(&code)
}

async fn acked_sends(
    client: &rmq_remoting::RemotingClient,
    addr: &str,
    prefix: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for i in 0..n {
        let body = format!("{prefix}-{i}");
        let r = client
            .invoke(addr, send(&body), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{body}: {:?}", r.remark);
        let h: SendMessageResponseHeader = r.decode_header().unwrap();
        acked.push((body, h.msg_id));
    }
    acked
}

async fn holds(client: &rmq_remoting::RemotingClient, addr: &str, acked: &[(String, String)]) {
    for (body, id) in acked {
        let (_, offset) = rmq_remoting::message::decode_offset_msg_id(id).unwrap();
        let view = RemotingCommand::request_with_header(
            RequestCode::VIEW_MESSAGE_BY_ID,
            &ViewMessageRequestHeader {
                offset,
                topic: None,
            },
        );
        let r = client
            .invoke(addr, view, Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{body} lost");
        let m = rmq_remoting::message::MessageExt::decode_all(r.body).unwrap();
        assert_eq!(m[0].body.as_ref(), body.as_bytes(), "{body} lost");
    }
}

async fn info(client: &rmq_remoting::RemotingClient, addr: &str) -> rmq_admin::broker::RuntimeInfo {
    rmq_admin::broker::runtime_info(client, addr)
        .await
        .unwrap_or_default()
}

/// Issue 16: after a failover, the former master's pod restarted with its stale config and
/// took writes until fenced. Here it is restarted the same way — as in Kubernetes, at a new
/// address (the new master's step-down notices go to the old one), and with one of its name
/// servers hanging (the refusal that fenced it used to wait for every name server) — while
/// sends hammer its port from before it listens: none is stored, it follows the new master,
/// the new master's SYNC sends are acknowledged once it holds them, and after the next
/// failover (the new master killed, the former one promoted) every acknowledged send is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_master_restarted_with_its_stale_config_takes_no_write_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let (mport, sport) = (free_port(), free_port());
    let a = start(dir.path(), &ns_addr, mport, 0, "SYNC_MASTER");
    let _b = start(dir.path(), &ns_addr, sport, 1, "SLAVE");
    let (aaddr, baddr) = (format!("127.0.0.1:{mport}"), format!("127.0.0.1:{sport}"));
    let client = rmq_testkit::admin_client();
    let t = Duration::from_secs(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(client.invoke(&aaddr, send("probe"), t).await, Ok(r) if r.code == ResponseCode::SUCCESS)
    {
        assert!(Instant::now() < deadline, "A never acknowledged a send");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut acked = acked_sends(&client, &aaddr, "a", 30).await;

    // A dies; B is promoted as a SYNC_MASTER (epoch 2) and stores sends no slave holds yet.
    // SAFETY: plain syscall on our own child.
    unsafe {
        libc::kill(a.0.id() as i32, libc::SIGKILL);
    }
    drop(a);
    let r = client
        .invoke(&baddr, promote_req(&baddr, 2, "SYNC_MASTER"), t)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..5 {
        loop {
            let r = client
                .invoke(&baddr, send(&format!("b-alone-{i}")), t)
                .await;
            if matches!(&r, Ok(r) if r.code == ResponseCode::SLAVE_NOT_AVAILABLE) {
                break;
            }
            assert!(Instant::now() < deadline, "B never took a write: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Sends hammer A's new port from before it listens.
    let aport = free_port();
    let aaddr = format!("127.0.0.1:{aport}");
    // A name server that accepts connections and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let namesrvs = format!("{ns_addr};{}", hung.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let hammer = {
        let (client, aaddr, stop) = (client.clone(), aaddr.clone(), stop.clone());
        tokio::spawn(async move {
            let mut codes = std::collections::BTreeMap::<i32, usize>::new();
            let mut stored_by_a = Vec::new();
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                let body = format!("to-the-former-master-{i}");
                match client
                    .invoke(&aaddr, send(&body), Duration::from_secs(2))
                    .await
                {
                    Ok(r) => {
                        *codes.entry(r.code).or_default() += 1;
                        if stored(r.code) {
                            stored_by_a.push((body, r.code, r.remark));
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            (codes, stored_by_a)
        })
    };
    // A restarts with the config it had: SYNC_MASTER, brokerId 0, its store at epoch 1.
    let _a = start(dir.path(), &namesrvs, aport, 0, "SYNC_MASTER");
    let deadline = Instant::now() + Duration::from_secs(60);
    let following = loop {
        let (ia, ib) = (info(&client, &aaddr).await, info(&client, &baddr).await);
        if ia.is_slave()
            && ib.get("haSlaveCount") == Some("1")
            && ia.max_offset().is_some()
            && ia.max_offset() == ib.max_offset()
        {
            break Ok(());
        }
        if Instant::now() >= deadline {
            break Err(format!("A never followed B: A {:?} B {:?}", ia.0, ib.0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    let (codes, stored_by_a) = hammer.await.unwrap();
    assert!(
        stored_by_a.is_empty(),
        "the restarted former master stored {} sends: {:?}",
        stored_by_a.len(),
        &stored_by_a[..stored_by_a.len().min(5)]
    );
    assert!(!codes.is_empty(), "the hammer never reached A");
    eprintln!("answers of the restarted former master, by code: {codes:?}");
    following.unwrap();

    // B's SYNC sends are acknowledged again: A holds them.
    acked.extend(acked_sends(&client, &baddr, "b", 30).await);
    holds(&client, &aaddr, &acked).await;

    // The next failover: B dies, A is promoted (epoch 3): nothing acknowledged is lost.
    drop(_b);
    let r = client
        .invoke(&aaddr, promote_req(&aaddr, 3, "ASYNC_MASTER"), t)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    holds(&client, &aaddr, &acked).await;
    let r = client.invoke(&aaddr, send("after"), t).await.unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    drop(hung);
    ns.shutdown().await;
}
