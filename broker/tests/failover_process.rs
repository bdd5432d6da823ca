//! Failover with real processes: a SYNC_MASTER `mqbroker` and its slave under a stream of
//! sends; the master is killed with SIGKILL, the slave promoted (NOTIFY_BROKER_ROLE_CHANGED,
//! as `mqadmin promote` sends it), and every send the master acknowledged is readable on the
//! new master, which takes writes; and unchanged `rocketmq-client-rust` producers and
//! consumers carry on through such a failover after their route refresh.

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
