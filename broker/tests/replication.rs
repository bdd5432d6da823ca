//! A master and a slave broker on 127.0.0.1: the slave finds its master's HA port through the
//! name server, catches up on what the master already holds, follows new appends, keeps its
//! own consume queues, and resumes after a restart.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_broker::store::PutMessage;
use rmq_broker::{Broker, BrokerSettings};
use rmq_nameserver::NameServer;

async fn namesrv(dir: &std::path::Path) -> NameServer {
    rmq_testkit::start_namesrv(dir).await
}

fn settings(dir: &std::path::Path, ns: &str, id: i64, role: &str) -> BrokerSettings {
    let mut s = rmq_testkit::broker_settings(dir, ns, "broker-r");
    s.store.store_path_root_dir = dir.display().to_string();
    s.broker.broker_id = id;
    s.broker.broker_role = role.parse().unwrap();
    s.store.mapped_file_size_commit_log = 64 * 1024;
    s
}

fn message(i: usize, store_host: std::net::SocketAddr) -> PutMessage {
    PutMessage {
        topic: "Replicated".into(),
        queue_id: (i % 4) as i32,
        flag: 0,
        body: Bytes::from(format!("message-{i}-{}", "x".repeat(i % 700))),
        properties: rmq_remoting::message::Properties::from_iter([("KEYS", format!("k{i}"))]),
        sys_flag: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        born_host: "127.0.0.1:1".parse().unwrap(),
        store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: true,
    }
}

async fn put(master: &Broker, from: usize, to: usize) {
    let host = master.inner().store_host;
    for i in from..to {
        let r = master.inner().store.put_message(message(i, host)).await;
        assert!(r.status.is_stored());
    }
}

async fn caught_up(master: &Broker, slave: &Broker) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = master.inner().store.max_phy_offset();
    while slave.inner().store.max_phy_offset() < want {
        assert!(
            Instant::now() < deadline,
            "slave at {} of {want}",
            slave.inner().store.max_phy_offset()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The master hears the slave's report shortly after.
    while master.inner().ha.max_slave_offset() < want {
        assert!(
            Instant::now() < deadline,
            "the master never heard the slave caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for q in 0..4 {
        let s = &slave.inner().store;
        let m = &master.inner().store;
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.max_offset_in_queue("Replicated", q, true)
            < m.max_offset_in_queue("Replicated", q, true)
        {
            assert!(Instant::now() < deadline, "slave queue {q} not dispatched");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let last = m.max_offset_in_queue("Replicated", q, true) - 1;
        let unit_m = m.queue_unit("Replicated", q, last).unwrap();
        let unit_s = s.queue_unit("Replicated", q, last).unwrap();
        assert_eq!(
            (unit_m.commit_log_offset, unit_m.size),
            (unit_s.commit_log_offset, unit_s.size)
        );
        assert_eq!(
            m.look_message_by_offset(unit_m.commit_log_offset)
                .unwrap()
                .body,
            s.look_message_by_offset(unit_s.commit_log_offset)
                .unwrap()
                .body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slave_follows_the_master_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let master = Broker::start(settings(&dir.path().join("m"), &ns_addr, 0, "ASYNC_MASTER"))
        .await
        .unwrap();
    master
        .inner()
        .topics
        .put(rmq_remoting::protocol::topic::TopicConfig::new(
            "Replicated",
            4,
            6,
        ));
    // History before the slave exists: several commit-log files.
    put(&master, 0, 400).await;
    let slave_settings = settings(&dir.path().join("s"), &ns_addr, 1, "SLAVE");
    let slave = Broker::start(slave_settings.clone()).await.unwrap();
    caught_up(&master, &slave).await;

    // New appends follow.
    put(&master, 400, 600).await;
    caught_up(&master, &slave).await;

    // The slave restarts and resumes from its own offset.
    slave.shutdown().await;
    put(&master, 600, 700).await;
    let slave = Broker::start(slave_settings).await.unwrap();
    caught_up(&master, &slave).await;
    assert_eq!(master.inner().ha.slave_count(), 1, "one slave connection");

    // Topic configs, groups, consumer offsets follow the master.
    let m = master.inner();
    m.topics
        .put(rmq_remoting::protocol::topic::TopicConfig::new(
            "Declared", 8, 6,
        ));
    m.groups
        .put(rmq_remoting::protocol::admin::SubscriptionGroupConfig {
            group_name: "cg_declared".into(),
            retry_max_times: 5,
            ..Default::default()
        });
    m.offsets.commit("cg_declared", "Replicated", 0, 42);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = slave.inner();
        if s.topics.get("Declared").is_some()
            && s.groups
                .get("cg_declared")
                .is_some_and(|g| g.retry_max_times == 5)
            && s.offsets.query("cg_declared", "Replicated", 0) == 42
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metadata never reached the slave"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // While the master is there, a slave (slaveReadEnable false) sends consumers back to it.
    let slave_addr = slave.local_addr().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slave.inner().topics.get("Replicated").is_none() {
        assert!(Instant::now() < deadline, "topic config never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = pull(&slave_addr).await;
    assert_eq!(
        (r.code, suggested(&r)),
        (rmq_remoting::ResponseCode::PULL_RETRY_IMMEDIATELY, 0)
    );

    // The master goes away: the slave keeps what it has and keeps trying, and serves reads;
    // consumers commit offsets on the slave meanwhile, and the master gets them when it
    // returns.
    let held = slave.inner().store.max_phy_offset();
    let master_settings = master_settings_of(&master);
    master.shutdown().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slave.inner().store.max_phy_offset(), held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = pull(&slave_addr).await;
        if r.code == rmq_remoting::ResponseCode::SUCCESS {
            assert_eq!(suggested(&r), 1);
            let msgs = rmq_remoting::message::MessageExt::decode_all(r.body).unwrap();
            assert_eq!(msgs[0].queue_offset, 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slave never served reads: {}",
            r.code
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let commit = rmq_remoting::RemotingCommand::request_with_header(
        rmq_remoting::RequestCode::UPDATE_CONSUMER_OFFSET,
        &rmq_remoting::header::UpdateConsumerOffsetRequestHeader {
            consumer_group: "cg_declared".into(),
            topic: "Replicated".into(),
            queue_id: 0,
            commit_offset: 99,
        },
    );
    rmq_testkit::admin_client()
        .invoke(
            &slave.local_addr().to_string(),
            commit,
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let master = Broker::start(master_settings).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while master.inner().offsets.query("cg_declared", "Replicated", 0) != 99 {
        assert!(
            Instant::now() < deadline,
            "the slave's offsets never reached the master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        slave.inner().offsets.query("cg_declared", "Replicated", 0),
        99
    );
    master.shutdown().await;
    slave.shutdown().await;
    ns.shutdown().await;
}

fn master_settings_of(b: &Broker) -> BrokerSettings {
    b.inner().current_settings()
}

fn send_req(topic: &str, body: &str) -> rmq_remoting::RemotingCommand {
    use rmq_remoting::header::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
    let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        ..Default::default()
    });
    rmq_remoting::RemotingCommand::request_with_header(
        rmq_remoting::RequestCode::SEND_MESSAGE_V2,
        &h,
    )
    .with_body(body.as_bytes().to_vec())
}

/// SYNC_MASTER: a send is acknowledged only once the slave holds it; with no slave the
/// client is told SLAVE_NOT_AVAILABLE (the message is kept on the master, as in RocketMQ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_master_acknowledges_what_a_slave_holds() {
    use rmq_remoting::header::SendMessageResponseHeader;
    use rmq_remoting::ResponseCode;
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let ms = settings(&dir.path().join("m"), &ns_addr, 0, "SYNC_MASTER");
    let master = Broker::start(ms.clone()).await.unwrap();
    let addr = format!("127.0.0.1:{}", ms.broker.listen_port);
    let client = rmq_testkit::admin_client();
    let t = Duration::from_secs(10);

    let r = client
        .invoke(&addr, send_req("SyncTopic", "alone"), t)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SLAVE_NOT_AVAILABLE, "{:?}", r.remark);
    let h: SendMessageResponseHeader = r.decode_header().unwrap();
    assert!(!h.msg_id.is_empty(), "stored on the master all the same");

    let mut ss = settings(&dir.path().join("s"), &ns_addr, 1, "SLAVE");
    // Found directly this time, not through the name server.
    ss.broker.ha_master_address = format!("127.0.0.1:{}", ms.broker.ha_listen_port());
    let slave = Broker::start(ss).await.unwrap();
    caught_up_offsets(&master, &slave).await;
    for i in 0..50 {
        let r = client
            .invoke(&addr, send_req("SyncTopic", &format!("m{i}")), t)
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
        // Acknowledged means the slave has it already.
        let h: SendMessageResponseHeader = r.decode_header().unwrap();
        let (_, offset) = rmq_remoting::message::decode_offset_msg_id(&h.msg_id).unwrap();
        assert!(slave.inner().store.max_phy_offset() > offset);
    }
    slave.shutdown().await;
    // The slave's connection is gone: back to SLAVE_NOT_AVAILABLE, at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let r = client
            .invoke(&addr, send_req("SyncTopic", "after"), t)
            .await
            .unwrap();
        if r.code == ResponseCode::SLAVE_NOT_AVAILABLE {
            assert!(started.elapsed() < Duration::from_secs(2));
            break;
        }
        assert!(Instant::now() < deadline, "code {}", r.code);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    master.shutdown().await;
    ns.shutdown().await;
}

async fn caught_up_offsets(master: &Broker, slave: &Broker) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = master.inner().store.max_phy_offset();
    while master.inner().ha.max_slave_offset() < want || slave.inner().store.max_phy_offset() < want
    {
        assert!(Instant::now() < deadline, "slave never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pull(addr: &str) -> rmq_remoting::RemotingCommand {
    use rmq_remoting::header::PullMessageRequestHeader;
    let req = rmq_remoting::RemotingCommand::request_with_header(
        rmq_remoting::RequestCode::PULL_MESSAGE,
        &PullMessageRequestHeader {
            consumer_group: "cg_reader".into(),
            topic: "Replicated".into(),
            queue_id: 0,
            queue_offset: 0,
            max_msg_nums: 8,
            sys_flag: 0x4, // the subscription is in this request
            commit_offset: 0,
            suspend_timeout_millis: 0,
            subscription: Some("*".into()),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            ..Default::default()
        },
    );
    rmq_testkit::admin_client()
        .invoke(addr, req, Duration::from_secs(5))
        .await
        .unwrap()
}

fn suggested(r: &rmq_remoting::RemotingCommand) -> i64 {
    r.decode_header::<rmq_remoting::header::PullMessageResponseHeader>()
        .unwrap()
        .suggest_which_broker_id
}

fn promote(epoch: i32, master_addr: &str) -> rmq_remoting::RemotingCommand {
    let mut r = rmq_remoting::RemotingCommand::request(
        rmq_remoting::RequestCode::NOTIFY_BROKER_ROLE_CHANGED,
    );
    r.ext_fields
        .insert("masterAddress".into(), master_addr.into());
    r.ext_fields.insert("masterEpoch".into(), epoch.to_string());
    r.ext_fields.insert("masterBrokerId".into(), "0".into());
    r.ext_fields
        .insert("brokerRole".into(), "SYNC_MASTER".into());
    r
}

/// The master dies; the slave is promoted with the next epoch, registers as the group's
/// master, holds every message the SYNC_MASTER acknowledged and takes writes. A stale epoch is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoted_slave_holds_every_acknowledged_message_and_takes_writes() {
    use rmq_remoting::header::{GetRouteInfoRequestHeader, SendMessageResponseHeader};
    use rmq_remoting::protocol::route::TopicRouteData;
    use rmq_remoting::{JsonBody, RequestCode, ResponseCode};
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let ms = settings(&dir.path().join("m"), &ns_addr, 0, "SYNC_MASTER");
    let master = Broker::start(ms.clone()).await.unwrap();
    let ss = settings(&dir.path().join("s"), &ns_addr, 1, "SLAVE");
    let slave = Broker::start(ss.clone()).await.unwrap();
    caught_up_offsets(&master, &slave).await;
    let client = rmq_testkit::admin_client();
    let t = Duration::from_secs(10);
    let maddr = format!("127.0.0.1:{}", ms.broker.listen_port);
    let saddr = format!("127.0.0.1:{}", ss.broker.listen_port);
    let mut acked = Vec::new();
    for i in 0..100 {
        let r = client
            .invoke(&maddr, send_req("Failover", &format!("m{i}")), t)
            .await
            .unwrap();
        if r.code == ResponseCode::SUCCESS {
            let h: SendMessageResponseHeader = r.decode_header().unwrap();
            acked.push((format!("m{i}"), h.msg_id));
        }
    }
    assert_eq!(acked.len(), 100);
    // The slave has the master's epoch list (epoch 1).
    let deadline = Instant::now() + Duration::from_secs(10);
    while slave.inner().role.snapshot().epoch != rmq_remoting::role::Epoch(1) {
        assert!(Instant::now() < deadline, "epochs never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    master.shutdown().await;
    let r = client.invoke(&saddr, promote(2, &saddr), t).await.unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    assert_eq!(
        slave.inner().role.snapshot().epoch,
        rmq_remoting::role::Epoch(2)
    );
    // A second promotion at the same epoch is fenced.
    let r = client.invoke(&saddr, promote(2, &saddr), t).await.unwrap();
    assert_ne!(r.code, ResponseCode::SUCCESS);

    // The name server routes the group's writes to the promoted broker.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client
            .invoke(
                &ns_addr,
                rmq_remoting::RemotingCommand::request_with_header(
                    RequestCode::GET_ROUTEINFO_BY_TOPIC,
                    &GetRouteInfoRequestHeader {
                        topic: "Failover".into(),
                        accept_standard_json_only: None,
                    },
                ),
                t,
            )
            .await
            .unwrap();
        if r.code == ResponseCode::SUCCESS {
            let route = TopicRouteData::decode(&r.body).unwrap();
            if route.broker_datas[0].master_addr() == Some(saddr.as_str()) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the promoted broker never became the routed master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every acknowledged message is there, by id.
    for (body, id) in &acked {
        let (_, offset) = rmq_remoting::message::decode_offset_msg_id(id).unwrap();
        let m = slave
            .inner()
            .store
            .look_message_by_offset(offset)
            .expect("acked message");
        assert_eq!(m.body.as_ref(), body.as_bytes());
    }
    // It takes writes; as a SYNC_MASTER with no slave yet, clients hear SLAVE_NOT_AVAILABLE
    // (stored all the same), as RocketMQ answers.
    let r = client
        .invoke(&saddr, send_req("Failover", "after"), t)
        .await
        .unwrap();
    assert!(
        r.code == ResponseCode::SUCCESS || r.code == ResponseCode::SLAVE_NOT_AVAILABLE,
        "{} {:?}",
        r.code,
        r.remark
    );
    let h: SendMessageResponseHeader = r.decode_header().unwrap();
    assert!(!h.msg_id.is_empty());
    slave.shutdown().await;
    ns.shutdown().await;
}

/// A former master that comes back as a slave of the promoted one cuts the tail it wrote
/// after the slave stopped following (writes never acknowledged under SYNC_MASTER), then
/// replicates the new master's term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn former_master_rejoins_with_its_divergent_tail_cut() {
    use rmq_remoting::ResponseCode;
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let mut a_settings = settings(&dir.path().join("a"), &ns_addr, 0, "SYNC_MASTER");
    let a = Broker::start(a_settings.clone()).await.unwrap();
    let mut b_settings = settings(&dir.path().join("b"), &ns_addr, 1, "SLAVE");
    b_settings.broker.ha_master_address =
        format!("127.0.0.1:{}", a_settings.broker.ha_listen_port());
    let b = Broker::start(b_settings.clone()).await.unwrap();
    put(&a, 0, 100).await;
    caught_up(&a, &b).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.inner().role.snapshot().epoch != rmq_remoting::role::Epoch(1) {
        assert!(Instant::now() < deadline, "epochs never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The link breaks: A keeps writing alone (its SYNC sends would fail; these go straight to
    // the store), then dies.
    b.shutdown().await;
    let shared = a.inner().store.max_phy_offset();
    put(&a, 100, 150).await;
    let a_max = a.inner().store.max_phy_offset();
    assert!(a_max > shared);
    a.shutdown().await;

    // B is promoted (epoch 2 from `shared`) and takes writes of its own.
    b_settings.broker.ha_master_address.clear();
    let b = Broker::start(b_settings.clone()).await.unwrap();
    let baddr = format!("127.0.0.1:{}", b_settings.broker.listen_port);
    let r = rmq_testkit::admin_client()
        .invoke(&baddr, promote(2, &baddr), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    assert_eq!(b.inner().store.max_phy_offset(), shared);
    put(&b, 1000, 1030).await;

    // A returns as B's slave: its 50 unreplicated records are cut, B's term follows.
    a_settings.broker.broker_role = rmq_remoting::role::BrokerRole::Slave;
    a_settings.broker.broker_id = 1;
    a_settings.broker.ha_master_address =
        format!("127.0.0.1:{}", b_settings.broker.ha_listen_port());
    let a = Broker::start(a_settings).await.unwrap();
    caught_up(&b, &a).await;
    assert_eq!(
        a.inner().store.max_phy_offset(),
        b.inner().store.max_phy_offset()
    );
    assert_eq!(
        a.inner().role.snapshot().epoch,
        rmq_remoting::role::Epoch(2)
    );
    // Byte for byte the new master's log from where the terms parted.
    let (theirs, _) = b.inner().store.records_from(shared, 1 << 20);
    let (ours, _) = a.inner().store.records_from(shared, 1 << 20);
    assert_eq!(theirs.len(), 30);
    assert_eq!(theirs, ours);
    a.shutdown().await;
    b.shutdown().await;
    ns.shutdown().await;
}

/// A former master whose tail was acknowledged to SYNC_MASTER producers does not cut it to
/// follow a master that lacks it — also after a restart — until an admin forces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_are_not_cut_without_force_even_after_a_restart() {
    use rmq_remoting::ResponseCode;
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let mut a_settings = settings(&dir.path().join("a"), &ns_addr, 0, "SYNC_MASTER");
    let a = Broker::start(a_settings.clone()).await.unwrap();
    let mut b_settings = settings(&dir.path().join("b"), &ns_addr, 1, "SLAVE");
    b_settings.broker.ha_master_address =
        format!("127.0.0.1:{}", a_settings.broker.ha_listen_port());
    let b = Broker::start(b_settings.clone()).await.unwrap();
    put(&a, 0, 50).await;
    caught_up(&a, &b).await;
    while b.inner().role.snapshot().epoch != rmq_remoting::role::Epoch(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.shutdown().await;
    let shared = a.inner().store.max_phy_offset();
    // A third replica (not started here) held these and they were acknowledged.
    put(&a, 50, 80).await;
    let a_max = a.inner().store.max_phy_offset();
    a.inner().ha.acknowledged_to_producers(a_max);
    a.shutdown().await;
    let file = dir.path().join("a/config/haAcknowledged.json");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains(&a_max.to_string()));

    // B, which lacks them, is promoted.
    b_settings.broker.ha_master_address.clear();
    let b = Broker::start(b_settings.clone()).await.unwrap();
    let baddr = format!("127.0.0.1:{}", b_settings.broker.listen_port);
    let admin = rmq_testkit::admin_client();
    let r = admin
        .invoke(&baddr, promote(2, &baddr), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    assert_eq!(b.inner().store.max_phy_offset(), shared);

    // A comes back as B's slave: it remembers what it acknowledged and cuts nothing.
    a_settings.broker.broker_role = rmq_remoting::role::BrokerRole::Slave;
    a_settings.broker.broker_id = 1;
    a_settings.broker.ha_master_address =
        format!("127.0.0.1:{}", b_settings.broker.ha_listen_port());
    let a = Broker::start(a_settings.clone()).await.unwrap();
    assert_eq!(a.inner().ha.acknowledged(), a_max);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.inner().store.max_phy_offset(), a_max, "nothing cut");
    assert_eq!(b.inner().ha.slave_count(), 0, "it does not follow");

    // An admin forces it: it cuts to where the terms parted and follows.
    let aaddr = format!("127.0.0.1:{}", a_settings.broker.listen_port);
    let mut force = promote(2, &baddr);
    force
        .ext_fields
        .insert("forceTruncate".into(), "true".into());
    let r = admin
        .invoke(&aaddr, force, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    // It retries following every second; the next attempt cuts and follows.
    assert!(
        rmq_testkit::wait_until(Duration::from_secs(20), || {
            a.inner().store.max_phy_offset() == shared && b.inner().ha.slave_count() == 1
        })
        .await,
        "cut to {shared} and following: at {}",
        a.inner().store.max_phy_offset()
    );
    a.shutdown().await;
    b.shutdown().await;
    ns.shutdown().await;
}

/// A slave that stops acknowledging (a stalled or cut-off link): SYNC_MASTER sends wait
/// `syncFlushTimeout` and are answered FLUSH_SLAVE_TIMEOUT; the message is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_that_stops_acknowledging_gives_flush_slave_timeout() {
    use rmq_remoting::header::SendMessageResponseHeader;
    use rmq_remoting::ResponseCode;
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let mut ms = settings(
        &dir.path().join("m"),
        &ns.local_addr().to_string(),
        0,
        "SYNC_MASTER",
    );
    ms.store.sync_flush_timeout = 500;
    let master = Broker::start(ms.clone()).await.unwrap();
    // A "slave" that reconciles at the master's end, then goes silent.
    let ha = format!("127.0.0.1:{}", ms.broker.ha_listen_port());
    let (mut fake, terms) = rmq_testkit::ha::connect(&ha, &ms.broker.broker_name, 1, 0).await;
    let store = &master.inner().store;
    rmq_testkit::ha::reconcile_at(&mut fake, store, &terms.epoch_list, store.max_phy_offset())
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while master.inner().ha.slave_count() == 0 {
        assert!(Instant::now() < deadline, "fake slave not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = format!("127.0.0.1:{}", ms.broker.listen_port);
    let started = Instant::now();
    let r = rmq_testkit::admin_client()
        .invoke(&addr, send_req("Stalled", "waits"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::FLUSH_SLAVE_TIMEOUT, "{:?}", r.remark);
    assert!(started.elapsed() >= Duration::from_millis(450));
    let h: SendMessageResponseHeader = r.decode_header().unwrap();
    let (_, offset) = rmq_remoting::message::decode_offset_msg_id(&h.msg_id).unwrap();
    assert!(
        master
            .inner()
            .store
            .look_message_by_offset(offset)
            .is_some(),
        "kept on the master"
    );
    drop(fake);
    master.shutdown().await;
    ns.shutdown().await;
}
