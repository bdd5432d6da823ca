//! Slaves whose logs diverge from their master's (issue 16): a SYNC_MASTER must never answer
//! SEND_OK for a record its slave does not hold. Each test makes sends wait on a silent
//! slave, so they are in flight when the divergent one connects — the moment the old
//! handshake counted the divergent slave's own offset as holding the master's records — and
//! then checks every acknowledged record on the slave, the slave's whole log against the
//! master's, and that acknowledgements resume.

use std::time::Duration;

use bytes::Bytes;
use rmq_broker::store::PutMessage;
use rmq_broker::{Broker, BrokerSettings};
use rmq_remoting::header::SendMessageResponseHeader;
use rmq_remoting::role::Epoch;
use rmq_remoting::{RemotingCommand, ResponseCode};

const T: Duration = Duration::from_secs(30);

fn settings(dir: &std::path::Path, ns: &str, id: i64, role: &str) -> BrokerSettings {
    let mut s = rmq_testkit::broker_settings(dir, ns, "broker-d");
    s.store.store_path_root_dir = dir.display().to_string();
    s.broker.broker_id = id;
    s.broker.broker_role = role.parse().unwrap();
    s.store.mapped_file_size_commit_log = 64 * 1024;
    // Sends wait for a slave until it holds them (bounded: each test's slave catches up).
    s.store.sync_flush_timeout = 30_000;
    s
}

/// `n` records of `who`'s own, straight into the store (no slave asked).
async fn put(b: &Broker, who: &str, n: usize) {
    let host = b.inner().store_host;
    for i in 0..n {
        let r = b
            .inner()
            .store
            .put_message(PutMessage {
                topic: "Diverged".into(),
                queue_id: (i % 2) as i32,
                flag: 0,
                body: Bytes::from(format!("{who}-{i}-{}", "y".repeat(i % 300))),
                properties: Default::default(),
                sys_flag: 0,
                born_timestamp: rmq_remoting::util::now_millis(),
                born_host: "127.0.0.1:1".parse().unwrap(),
                store_host: host,
                reconsume_times: 0,
                prepared_transaction_offset: 0,
                wait_store_msg_ok: true,
            })
            .await;
        assert!(r.status.is_stored());
    }
}

fn addr(s: &BrokerSettings) -> String {
    format!("127.0.0.1:{}", s.broker.listen_port)
}

fn ha_addr(s: &BrokerSettings) -> String {
    format!("127.0.0.1:{}", s.broker.ha_listen_port())
}

/// A slave that reconciles honestly at `master`'s end and then never reports: SYNC sends
/// wait for another slave.
async fn silent_slave(master: &Broker, s: &BrokerSettings) -> tokio::net::TcpStream {
    let (mut fake, terms) = rmq_testkit::ha::connect(&ha_addr(s), "broker-d", 9, 0).await;
    let store = &master.inner().store;
    rmq_testkit::ha::reconcile_at(&mut fake, store, &terms.epoch_list, store.max_phy_offset())
        .await;
    assert!(rmq_testkit::wait_until(T, || master.inner().ha.slave_count() == 1).await);
    fake
}

/// `n` SYNC sends to the master, in flight (appended, waiting for a slave) when this returns.
async fn sends_in_flight(
    master: &Broker,
    s: &BrokerSettings,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(String, RemotingCommand)>> {
    let before = master.inner().store.max_offset_in_queue("Pending", 0, true);
    let mut sends = Vec::new();
    for i in 0..n {
        let (client, to) = (rmq_testkit::admin_client(), addr(s));
        sends.push(tokio::spawn(async move {
            let body = format!("pending-{i}");
            let r = client
                .invoke(&to, send(&body), T + T)
                .await
                .expect("an answer");
            (body, r)
        }));
    }
    let store = &master.inner().store;
    assert!(
        rmq_testkit::wait_until(T, || {
            store.max_offset_in_queue("Pending", 0, true) >= before.max(0) + n as i64
        })
        .await,
        "the sends were never appended"
    );
    sends
}

/// A SYNC send to queue 0 of `Pending`.
fn send(body: &str) -> RemotingCommand {
    rmq_testkit::send_request("Pending", body.as_bytes())
}

/// Every acknowledged send's record is on `slave`, at the offset its id names.
fn held(slave: &Broker, acked: &[(String, String)]) {
    for (body, id) in acked {
        let (_, offset) = rmq_remoting::message::decode_offset_msg_id(id).unwrap();
        let m = slave.inner().store.look_message_by_offset(offset);
        assert_eq!(
            m.map(|m| m.body),
            Some(Bytes::from(body.clone())),
            "{body} was acknowledged (SEND_OK) but the slave does not hold it at {offset}"
        );
    }
}

async fn acknowledged(
    sends: Vec<tokio::task::JoinHandle<(String, RemotingCommand)>>,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for s in sends {
        let (body, r) = s.await.unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{body}: {:?}", r.remark);
        let h: SendMessageResponseHeader = r.decode_header().unwrap();
        acked.push((body, h.msg_id));
    }
    acked
}

/// The slave's log is the master's, byte for byte, and so are its epochs.
async fn same_log(master: &Broker, slave: &Broker) {
    let (m, s) = (&master.inner().store, &slave.inner().store);
    assert!(
        rmq_testkit::wait_until(T, || s.max_phy_offset() == m.max_phy_offset()).await,
        "slave at {} of {}",
        s.max_phy_offset(),
        m.max_phy_offset()
    );
    let (theirs, _) = m.records_from(0, 64 << 20);
    let (ours, _) = s.records_from(0, 64 << 20);
    assert_eq!(ours.len(), theirs.len());
    assert!(
        ours == theirs,
        "the slave's records differ from the master's"
    );
    assert_eq!(
        slave.inner().role.epochs().list(),
        master.inner().role.epochs().list()
    );
}

/// Acknowledgements resume: SYNC sends are answered SEND_OK, and the slave holds them.
async fn acks_resume(master: &Broker, s: &BrokerSettings, slave: &Broker) {
    let client = rmq_testkit::admin_client();
    let mut acked = Vec::new();
    for i in 0..10 {
        let body = format!("after-{i}");
        let r = client.invoke(&addr(s), send(&body), T).await.unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS, "{body}: {:?}", r.remark);
        let h: SendMessageResponseHeader = r.decode_header().unwrap();
        acked.push((body, h.msg_id));
    }
    held(slave, &acked);
    let _ = master;
}

/// Two brokers that each began epoch 1 at offset 0 with their own records: the same
/// epoch, the same start, different logs. The second follows the first; it is counted only
/// once it holds the first's log, so the sends in flight are acknowledged only when it
/// holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_from_another_epoch_1_is_counted_only_once_it_holds_the_masters_log() {
    let dir = tempfile::tempdir().unwrap();
    let (ns_b, ns_a) = (
        rmq_testkit::start_namesrv(&dir.path().join("nsb")).await,
        rmq_testkit::start_namesrv(&dir.path().join("nsa")).await,
    );
    let nsb = ns_b.local_addr().to_string();
    let bs = settings(&dir.path().join("b"), &nsb, 0, "SYNC_MASTER");
    let b = Broker::start(bs.clone()).await.unwrap();
    put(&b, "b", 40).await;
    // A began its own epoch 1 (its name server knows nothing of B), wrote more than B has.
    let mut a_settings = settings(
        &dir.path().join("a"),
        &ns_a.local_addr().to_string(),
        0,
        "SYNC_MASTER",
    );
    let a = Broker::start(a_settings.clone()).await.unwrap();
    put(&a, "a", 120).await;
    assert_eq!(
        a.inner().role.epochs().list(),
        b.inner().role.epochs().list()
    );
    assert!(a.inner().store.max_phy_offset() > b.inner().store.max_phy_offset() + 4096);
    a.shutdown().await;

    let silent = silent_slave(&b, &bs).await;
    let sends = sends_in_flight(&b, &bs, 5).await;
    // A comes back as B's slave, its log still its own.
    a_settings.broker.broker_role = rmq_remoting::role::BrokerRole::Slave;
    a_settings.broker.broker_id = 1;
    a_settings.broker.namesrv_addr = nsb.clone();
    a_settings.broker.ha_master_address = ha_addr(&bs);
    let a = Broker::start(a_settings).await.unwrap();
    let acked = acknowledged(sends).await;
    held(&a, &acked);
    same_log(&b, &a).await;
    acks_resume(&b, &bs, &a).await;
    drop(silent);
    a.shutdown().await;
    b.shutdown().await;
    ns_a.shutdown().await;
    ns_b.shutdown().await;
}

fn promote(epoch: i32, master_addr: &str) -> RemotingCommand {
    let mut r = RemotingCommand::request(rmq_remoting::RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    for (k, v) in [
        ("masterAddress", master_addr.to_string()),
        ("masterEpoch", epoch.to_string()),
        ("masterBrokerId", "0".into()),
        ("brokerRole", "SYNC_MASTER".into()),
    ] {
        r.ext_fields.insert(k.into(), v);
    }
    r
}

/// Promoted alone (nothing else of the group reachable): the broker takes epoch `epoch` at
/// its end, writes `n` records of its own, and stops.
async fn promote_alone(s: &BrokerSettings, epoch: i32, who: &str, n: usize) {
    let mut alone = s.clone();
    alone.broker.broker_role = rmq_remoting::role::BrokerRole::Slave;
    alone.broker.broker_id = 1;
    alone.broker.ha_master_address.clear();
    let b = Broker::start(alone).await.unwrap();
    let r = rmq_testkit::admin_client()
        .invoke(&addr(s), promote(epoch, &addr(s)), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    put(&b, who, n).await;
    b.shutdown().await;
}

/// Two slaves of one master each promoted to epoch 2, at different offsets (an operator
/// retrying a promotion on another slave): epoch 2 is not the same term on both. The one
/// that follows cuts to where epoch 1 ended for the other, and is counted only then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_epoch_begun_at_another_offset_is_another_term() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let ms = settings(&dir.path().join("m"), &ns_addr, 0, "SYNC_MASTER");
    let mut ss = settings(&dir.path().join("s"), &ns_addr, 1, "SLAVE");
    ss.broker.ha_master_address = ha_addr(&ms);
    let m = Broker::start(ms.clone()).await.unwrap();
    let s = Broker::start(ss.clone()).await.unwrap();
    put(&m, "m", 50).await;
    let want = m.inner().store.max_phy_offset();
    assert!(
        rmq_testkit::wait_until(T, || s.inner().store.max_phy_offset() == want
            && s.inner().role.snapshot().epoch == Epoch(1))
        .await
    );
    s.shutdown().await;
    put(&m, "m-alone", 20).await;
    m.shutdown().await;
    // S, then M, each promoted to epoch 2 on its own, each writing under it.
    promote_alone(&ss, 2, "s2", 10).await;
    promote_alone(&ms, 2, "m2", 30).await;

    // S leads (its config says so); M follows it with its epoch 2 begun 20 records later.
    let mut s_master = ss.clone();
    s_master.broker.broker_role = rmq_remoting::role::BrokerRole::SyncMaster;
    s_master.broker.broker_id = 0;
    s_master.broker.ha_master_address.clear();
    let s = Broker::start(s_master.clone()).await.unwrap();
    assert_eq!(s.inner().role.epochs().list()[1].start_offset, want);
    let silent = silent_slave(&s, &s_master).await;
    let sends = sends_in_flight(&s, &s_master, 5).await;
    let mut m_slave = ms.clone();
    m_slave.broker.broker_role = rmq_remoting::role::BrokerRole::Slave;
    m_slave.broker.broker_id = 1;
    m_slave.broker.ha_master_address = ha_addr(&s_master);
    let m = Broker::start(m_slave).await.unwrap();
    assert!(m.inner().role.epochs().list()[1].start_offset > want);
    let acked = acknowledged(sends).await;
    held(&m, &acked);
    same_log(&s, &m).await;
    acks_resume(&s, &s_master, &m).await;
    drop(silent);
    m.shutdown().await;
    s.shutdown().await;
    ns.shutdown().await;
}

/// A slave's newer connection replaces its older one (which may linger half-open after a
/// reconnect, holding an offset the slave no longer has), and a report made under another
/// term ends the link instead of counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_slaves_newest_connection_counts_and_only_for_its_term() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ms = settings(
        &dir.path().join("m"),
        &ns.local_addr().to_string(),
        0,
        "SYNC_MASTER",
    );
    let m = Broker::start(ms.clone()).await.unwrap();
    put(&m, "m", 20).await;
    let store = &m.inner().store;
    let end = store.max_phy_offset();
    let (mut old, terms) = rmq_testkit::ha::connect(&ha_addr(&ms), "broker-d", 1, 0).await;
    rmq_testkit::ha::reconcile_at(&mut old, store, &terms.epoch_list, end).await;
    assert!(rmq_testkit::wait_until(T, || m.inner().ha.max_slave_offset() == end).await);
    // The same slave again, on a new connection, at an earlier point of the log.
    let (mut new, terms) = rmq_testkit::ha::connect(&ha_addr(&ms), "broker-d", 1, 0).await;
    let earlier = store.records_from(0, 1).1;
    rmq_testkit::ha::reconcile_at(&mut new, store, &terms.epoch_list, earlier).await;
    assert!(
        rmq_testkit::wait_until(T, || m.inner().ha.max_slave_offset() == earlier).await,
        "the old connection's offset still counts: {}",
        m.inner().ha.max_slave_offset()
    );
    assert_eq!(m.inner().ha.slave_count(), 1);
    // The master ended the old connection: what it reads there runs out.
    let mut sink = Vec::new();
    let ended = tokio::time::timeout(T, old.read_to_end(&mut sink)).await;
    assert!(ended.is_ok(), "the old connection was not closed");
    // A report under an epoch this master does not serve: the link ends, nothing counts.
    rmq_broker::ha::handshake::send_report(&mut new, end, terms.epoch + 1)
        .await
        .unwrap();
    assert!(rmq_testkit::wait_until(T, || m.inner().ha.slave_count() == 0).await);
    assert_eq!(m.inner().ha.max_slave_offset(), -1);
    m.shutdown().await;
    ns.shutdown().await;
}

/// A slave of this version still follows a master of the previous protocol — rolling
/// upgrades restart the slaves first: the master's epochs, then the slave's offset, then
/// records, reported as bare offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_still_follows_a_protocol_1_master() {
    use rmq_broker::ha::handshake;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    // The old master's log, and a listener speaking its protocol.
    let mdir = dir.path().join("old");
    let old =
        rmq_broker::store::MessageStore::open(rmq_testkit::store::small_config(&mdir)).unwrap();
    for i in 0..30 {
        let m = rmq_testkit::store::msg("Old", 0, format!("old-{i}").as_bytes(), None, None);
        assert!(old.put_message(m).await.status.is_stored());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut ss = settings(
        &dir.path().join("s"),
        &ns.local_addr().to_string(),
        1,
        "SLAVE",
    );
    ss.store.mapped_file_size_commit_log = 64 * 1024;
    ss.broker.ha_master_address = listener.local_addr().unwrap().to_string();
    let s = Broker::start(ss).await.unwrap();
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut magic = [0u8; 4];
    sock.read_exact(&mut magic).await.unwrap();
    assert_eq!(magic, handshake::MAGIC);
    handshake::write_frame(&mut sock, handshake::CHALLENGE, &[7u8; 16])
        .await
        .unwrap();
    let hello = handshake::read_hello(&mut sock).await.unwrap();
    assert_eq!(hello.protocol, handshake::PROTOCOL);
    let epochs = serde_json::json!([{ "epoch": 1, "startOffset": 0 }]).to_string();
    handshake::write_frame(&mut sock, handshake::EPOCHS, epochs.as_bytes())
        .await
        .unwrap();
    assert_eq!(sock.read_i64().await.unwrap(), 0, "a fresh slave is at 0");
    let (records, end) = old.records_from(0, 1 << 20);
    let mut frame = Vec::new();
    frame.extend_from_slice(&records[0].0.to_be_bytes());
    let len: usize = records.iter().map(|(_, r)| 8 + r.len()).sum();
    frame.extend_from_slice(&(len as i32).to_be_bytes());
    for (offset, r) in &records {
        frame.extend_from_slice(&offset.to_be_bytes());
        frame.extend_from_slice(r);
    }
    sock.write_all(&frame).await.unwrap();
    // Bare offsets come back, the last one the old master's end.
    let report = tokio::time::timeout(T, sock.read_i64())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report, end);
    assert_eq!(s.inner().store.records_from(0, 1 << 20).0, records);
    assert_eq!(s.inner().role.snapshot().epoch, Epoch(1));
    drop(sock);
    s.shutdown().await;
    old.shutdown();
    ns.shutdown().await;
}
