//! Attacks on a default cluster (control plane authenticated, ACL off) and on one with the
//! plain ACL on: each must be refused with nothing changed on disk.

use std::time::Duration;

use rmq_broker::ha::handshake;
use rmq_remoting::header::*;
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::protocol::topic::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
use rmq_remoting::protocol::DataVersion;
use rmq_remoting::role::Epoch;
use rmq_remoting::{
    Credentials, JsonBody, RemotingClient, RemotingCommand, RequestCode, ResponseCode,
};
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(5);

fn send_req(topic: &str) -> RemotingCommand {
    rmq_testkit::send_request(topic, b"m")
}

async fn route(client: &RemotingClient, ns: &str, topic: &str) -> TopicRouteData {
    let r = client
        .invoke(
            ns,
            RemotingCommand::request_with_header(
                RequestCode::GET_ROUTEINFO_BY_TOPIC,
                &GetRouteInfoRequestHeader {
                    topic: topic.into(),
                    ..Default::default()
                },
            ),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    TopicRouteData::decode(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_control_plane_requests_are_refused_and_change_nothing() {
    let c = rmq_testkit::start_cluster(|_| {}).await;
    let inner = c.broker.inner().clone();
    let addr = c.broker.local_addr().to_string();
    let anyone = RemotingClient::default();
    let admin = rmq_testkit::admin_client();
    for i in 0..5 {
        let r = admin.invoke(&addr, send_req("Orders"), T).await.unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "send {i}: {:?}", r.remark);
    }
    let before = (
        inner.store.max_phy_offset(),
        inner.role.snapshot(),
        std::fs::read(c.dir.path().join("store/config/topics.json")).unwrap(),
    );

    // A forged role change: a huge epoch, an attacker's master. Refused, still master.
    let evil = rmq_admin::broker::step_down_request(&rmq_admin::broker::StepDown {
        new_master: "10.6.6.6:10911".into(),
        new_master_ha: Some("10.6.6.6:10912".into()),
        epoch: Epoch(i32::MAX - 1),
        broker_id: 1,
        broker_name: "broker-a".into(),
    });
    let r = anyone.invoke(&addr, evil.clone(), T).await.unwrap();
    assert_eq!(r.code, ResponseCode::NO_PERMISSION, "{:?}", r.remark);
    // Signed with a guessed secret: the same.
    let guessed = anyone.with_credentials(Some(Credentials::new(
        rmq_testkit::admin_credential().access_key,
        "guess",
    )));
    let r = guessed.invoke(&addr, evil, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::NO_PERMISSION);

    // Forged config and metadata writes.
    let wipe = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG)
        .with_body(b"brokerPermission=0\n".to_vec());
    let delete = RemotingCommand::request_with_header(
        RequestCode::DELETE_TOPIC_IN_BROKER,
        &DeleteTopicRequestHeader {
            topic: "Orders".into(),
        },
    );
    for req in [wipe, delete] {
        let r = anyone.invoke(&addr, req, T).await.unwrap();
        assert_eq!(r.code, ResponseCode::NO_PERMISSION, "{:?}", r.remark);
    }

    // A forged registration: id 0 and a newer state version for the group, pointing clients
    // at the attacker. The name server keeps the real master.
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: [("Orders".to_string(), TopicConfig::new("Orders", 4, 6))]
                .into_iter()
                .collect(),
            data_version: DataVersion {
                state_version: i64::MAX / 2,
                timestamp: 1,
                counter: 1,
            },
            ..Default::default()
        },
        filter_server_list: vec![],
    };
    let header = RegisterBrokerRequestHeader {
        broker_name: "broker-a".into(),
        broker_addr: "10.6.6.6:10911".into(),
        cluster_name: "DefaultCluster".into(),
        ha_server_addr: "10.6.6.6:10912".into(),
        broker_id: 0,
        heartbeat_timeout_millis: None,
        enable_acting_master: Some(false),
        compressed: Some(false),
        body_crc32: None,
    };
    let forged = RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &header)
        .with_body(body.encode());
    let r = anyone.invoke(&c.ns_addr, forged, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::NO_PERMISSION, "{:?}", r.remark);
    let unregister = RemotingCommand::request_with_header(
        RequestCode::UNREGISTER_BROKER,
        &UnregisterBrokerRequestHeader {
            broker_name: "broker-a".into(),
            broker_addr: addr.clone(),
            cluster_name: "DefaultCluster".into(),
            broker_id: 0,
        },
    );
    let r = anyone.invoke(&c.ns_addr, unregister, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::NO_PERMISSION);
    let rd = route(&anyone, &c.ns_addr, "Orders").await;
    assert_eq!(rd.broker_datas[0].broker_addrs.get(&0), Some(&addr));

    // Nothing changed: same role, epoch, permission, log and topics.
    let after = (
        inner.store.max_phy_offset(),
        inner.role.snapshot(),
        std::fs::read(c.dir.path().join("store/config/topics.json")).unwrap(),
    );
    assert_eq!(before, after);
    let r = anyone.invoke(&addr, send_req("Orders"), T).await.unwrap();
    assert_eq!(
        r.code,
        ResponseCode::SUCCESS,
        "data plane open: {:?}",
        r.remark
    );

    // The real credential still works (what mqadmin and the operator use).
    let perm = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG)
        .with_body(b"brokerPermission=6\n".to_vec());
    let r = admin.invoke(&addr, perm, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    let m = c.broker.inner().metrics.gather(c.broker.inner());
    // Label order varies (the broker's constant labels come from a map).
    assert!(
        m.lines()
            .any(|l| l.starts_with("rocketmq_requests_denied_total{")
                && l.contains("code=\"NOTIFY_BROKER_ROLE_CHANGED\"")
                && l.contains("reason=\"control_plane\"")
                && l.ends_with(" 2")),
        "{m}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_slaves_cannot_attach_or_make_sync_sends_safe() {
    let c = rmq_testkit::start_cluster(|s| {
        s.broker.broker_role = rmq_remoting::role::BrokerRole::SyncMaster;
        s.store.sync_flush_timeout = 300;
    })
    .await;
    let inner = c.broker.inner().clone();
    let ha = ("127.0.0.1", c.settings.broker.ha_listen_port());

    // Without the credential: refused before a byte of the log moves.
    let mut fake = tokio::net::TcpStream::connect(ha).await.unwrap();
    fake.write_all(&handshake::MAGIC).await.unwrap();
    let (tag, nonce) = handshake::read_frame(&mut fake, 1 << 20).await.unwrap();
    assert_eq!(tag, handshake::CHALLENGE);
    let hello = handshake::Hello::new("broker-a".into(), 1, 0, &nonce, None);
    handshake::send_hello(&mut fake, &hello).await.unwrap();
    let (tag, reason) = handshake::read_frame(&mut fake, 1 << 20).await.unwrap();
    assert_eq!(tag, handshake::REFUSED);
    assert!(String::from_utf8_lossy(&reason).contains("admin credential"));
    // Another group's slave, even signed.
    let admin = rmq_testkit::admin_credential();
    let mut other = tokio::net::TcpStream::connect(ha).await.unwrap();
    other.write_all(&handshake::MAGIC).await.unwrap();
    let (_, nonce) = handshake::read_frame(&mut other, 1 << 20).await.unwrap();
    let hello = handshake::Hello::new("broker-z".into(), 1, 0, &nonce, Some(&admin));
    handshake::send_hello(&mut other, &hello).await.unwrap();
    assert_eq!(
        handshake::read_frame(&mut other, 1 << 20).await.unwrap().0,
        handshake::REFUSED
    );
    assert_eq!(inner.ha.slave_count(), 0);

    // A slave of the old protocol (no reconciliation before it counts): refused.
    let mut old = tokio::net::TcpStream::connect(ha).await.unwrap();
    old.write_all(&handshake::MAGIC).await.unwrap();
    let (_, nonce) = handshake::read_frame(&mut old, 1 << 20).await.unwrap();
    let mut hello = handshake::Hello::new("broker-a".into(), 1, 0, &nonce, Some(&admin));
    hello.protocol = 0;
    handshake::send_hello(&mut old, &hello).await.unwrap();
    let (tag, reason) = handshake::read_frame(&mut old, 1 << 20).await.unwrap();
    assert_eq!(tag, handshake::REFUSED);
    assert!(String::from_utf8_lossy(&reason).contains("protocol"));

    // A signed slave that claims to hold everything there will ever be: its claim does not
    // match, READY at it is refused, and it never counts.
    let ha_addr = format!("127.0.0.1:{}", ha.1);
    let (mut liar, terms) = rmq_testkit::ha::connect(&ha_addr, "broker-a", 1, 0).await;
    let mut claim = rmq_testkit::ha::probe_of(&inner.store, &terms.epoch_list, 0, false);
    claim.offset = i64::MAX;
    let (tag, why) = rmq_testkit::ha::ask(&mut liar, &claim).await;
    assert_eq!(
        tag,
        handshake::MISMATCH,
        "{}",
        String::from_utf8_lossy(&why)
    );
    claim.ready = true;
    let (tag, _) = rmq_testkit::ha::ask(&mut liar, &claim).await;
    assert_eq!(tag, handshake::REFUSED);
    assert_eq!(inner.ha.slave_count(), 0);

    // Reconciled honestly, then reporting more than it was sent: counted only up to what
    // was sent, so a SYNC_MASTER send it never received is not "replicated".
    let (mut liar, terms) = rmq_testkit::ha::connect(&ha_addr, "broker-a", 1, 0).await;
    let end = inner.store.max_phy_offset();
    rmq_testkit::ha::reconcile_at(&mut liar, &inner.store, &terms.epoch_list, end).await;
    assert!(
        rmq_testkit::wait_until(T, || inner.ha.slave_count() == 1).await,
        "the signed slave is seen"
    );
    handshake::send_report(&mut liar, i64::MAX, terms.epoch)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(inner.ha.max_slave_offset() <= inner.store.max_phy_offset());
    let r = rmq_testkit::admin_client()
        .invoke(&c.broker.local_addr().to_string(), send_req("Orders"), T)
        .await
        .unwrap();
    assert!(
        r.code == ResponseCode::FLUSH_SLAVE_TIMEOUT || r.code == ResponseCode::SLAVE_NOT_AVAILABLE,
        "a send no real slave holds is not acknowledged as replicated: {} {:?}",
        r.code,
        r.remark
    );
    assert_eq!(inner.ha.acknowledged(), 0);
    drop((fake, other, old, liar));
    c.stop().await;
}

/// A switch to read-only answers only once no send is being stored: otherwise a switchover
/// could promote a slave while a message the old master then acknowledges is still being
/// written, and cut it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_is_confirmed_only_when_no_send_is_in_flight() {
    let c = rmq_testkit::start_cluster(|s| {
        s.store.flush_disk_type = rmq_remoting::role::FlushDiskType::SyncFlush;
        s.store.sync_flush_timeout = 30_000;
    })
    .await;
    let inner = c.broker.inner().clone();
    let addr = c.broker.local_addr().to_string();
    let admin = rmq_testkit::admin_client();
    let r = admin.invoke(&addr, send_req("Held"), T).await.unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    // A disk that does not finish: the next send stays in flight.
    inner.store.set_flush_paused(true);
    let held = {
        let (admin, addr) = (admin.clone(), addr.clone());
        tokio::spawn(async move {
            admin
                .invoke(&addr, send_req("Held"), Duration::from_secs(60))
                .await
        })
    };
    assert!(rmq_testkit::wait_until(T, || inner.traffic.sends_in_flight() == 1).await);
    let read_only = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG)
        .with_body(b"brokerPermission=4\n".to_vec());
    let r = admin
        .invoke(&addr, read_only, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SYSTEM_BUSY, "{:?}", r.remark);
    assert!(r.remark.unwrap_or_default().contains("still being stored"));
    inner.store.set_flush_paused(false);
    let r = held.await.unwrap().unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    c.stop().await;
}
