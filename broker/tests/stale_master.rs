//! A broker started as a master from its config takes no write until it has confirmed that
//! no newer master leads its group (issue 16): it waits while no name server answers, and
//! while a peer knows a newer term whose master is gone; it follows that term's master once
//! one leads.

use std::time::Duration;

use bytes::Bytes;
use rmq_broker::store::PutMessage;
use rmq_broker::{Broker, BrokerSettings};
use rmq_remoting::role::{BrokerRole, Epoch};
use rmq_remoting::{RemotingCommand, ResponseCode};

const T: Duration = Duration::from_secs(30);

fn settings(dir: &std::path::Path, ns: &str, id: i64, role: &str) -> BrokerSettings {
    let mut s = rmq_testkit::broker_settings(dir, ns, "broker-t");
    s.store.store_path_root_dir = dir.display().to_string();
    s.broker.broker_id = id;
    s.broker.broker_role = role.parse().unwrap();
    s.store.mapped_file_size_commit_log = 64 * 1024;
    s
}

fn addr(s: &BrokerSettings) -> String {
    format!("127.0.0.1:{}", s.broker.listen_port)
}

async fn send(s: &BrokerSettings, body: &str) -> RemotingCommand {
    rmq_testkit::admin_client()
        .invoke(
            &addr(s),
            rmq_testkit::send_request("Terms", body.as_bytes()),
            T,
        )
        .await
        .unwrap()
}

async fn put(b: &Broker, n: usize) {
    for i in 0..n {
        let r = b
            .inner()
            .store
            .put_message(PutMessage {
                topic: "Terms".into(),
                queue_id: 0,
                flag: 0,
                body: Bytes::from(format!("m-{i}")),
                properties: Default::default(),
                sys_flag: 0,
                born_timestamp: rmq_remoting::util::now_millis(),
                born_host: "127.0.0.1:1".parse().unwrap(),
                store_host: b.inner().store_host,
                reconsume_times: 0,
                prepared_transaction_offset: 0,
                wait_store_msg_ok: true,
            })
            .await;
        assert!(r.status.is_stored());
    }
}

/// No name server answers: no proof, no writes — SERVICE_NOT_AVAILABLE, which clients
/// retry elsewhere, saying why. Once one answers (knowing no other member), it takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_takes_no_write_until_a_name_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = rmq_testkit::free_port();
    let s = settings(
        &dir.path().join("b"),
        &format!("127.0.0.1:{port}"),
        0,
        "ASYNC_MASTER",
    );
    let b = Broker::start(s.clone()).await.unwrap();
    assert!(b.inner().role.snapshot().unconfirmed_master());
    let r = send(&s, "too early").await;
    assert_eq!(
        r.code,
        ResponseCode::SERVICE_NOT_AVAILABLE,
        "{:?}",
        r.remark
    );
    assert!(
        r.remark
            .as_deref()
            .unwrap_or_default()
            .contains("confirmed"),
        "{:?}",
        r.remark
    );
    assert_eq!(b.inner().store.max_phy_offset(), 0, "nothing stored");

    let mut nc = rmq_testkit::namesrv_config(&dir.path().join("ns"));
    nc.listen_port = port;
    let ns = rmq_nameserver::NameServer::start(nc).await.unwrap();
    let deadline = std::time::Instant::now() + T;
    loop {
        let r = send(&s, "in time").await;
        if r.code == ResponseCode::SUCCESS {
            break;
        }
        assert_eq!(
            r.code,
            ResponseCode::SERVICE_NOT_AVAILABLE,
            "{:?}",
            r.remark
        );
        assert!(std::time::Instant::now() < deadline, "never confirmed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b.inner().role.snapshot().writable());
    b.shutdown().await;
    ns.shutdown().await;
}

fn promote(epoch: i32, master_addr: &str) -> RemotingCommand {
    let mut r = RemotingCommand::request(rmq_remoting::RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    for (k, v) in [
        ("masterAddress", master_addr.to_string()),
        ("masterEpoch", epoch.to_string()),
        ("brokerRole", "ASYNC_MASTER".into()),
    ] {
        r.ext_fields.insert(k.into(), v);
    }
    r
}

async fn tell(to: &BrokerSettings, req: RemotingCommand) {
    let r = rmq_testkit::admin_client()
        .invoke(&addr(to), req, T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
}

/// M leads S1 and S2; M stops; S1 is promoted (epoch 2), S2 follows it; S1 stops too. M
/// comes back with its config: S2 knows epoch 2, whose master is gone, so M waits, taking
/// no write. S2 is promoted (epoch 3): M follows it, its log cut to S2's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_master_waits_while_a_newer_term_has_no_master_then_follows_its_next() {
    let dir = tempfile::tempdir().unwrap();
    let ns = rmq_testkit::start_namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let ms = settings(&dir.path().join("m"), &ns_addr, 0, "ASYNC_MASTER");
    let m = Broker::start(ms.clone()).await.unwrap();
    let ha = format!("127.0.0.1:{}", ms.broker.ha_listen_port());
    let (mut s1s, mut s2s) = (
        settings(&dir.path().join("s1"), &ns_addr, 1, "SLAVE"),
        settings(&dir.path().join("s2"), &ns_addr, 2, "SLAVE"),
    );
    s1s.broker.ha_master_address = ha.clone();
    s2s.broker.ha_master_address = ha;
    let s1 = Broker::start(s1s.clone()).await.unwrap();
    let s2 = Broker::start(s2s.clone()).await.unwrap();
    put(&m, 30).await;
    let end = m.inner().store.max_phy_offset();
    assert!(
        rmq_testkit::wait_until(T, || {
            [&s1, &s2].iter().all(|s| {
                s.inner().store.max_phy_offset() == end
                    && s.inner().role.snapshot().epoch == Epoch(1)
            })
        })
        .await
    );
    m.shutdown().await;
    tell(&s1s, promote(2, &addr(&s1s))).await;
    put(&s1, 5).await;
    // S2 is told S1 leads epoch 2: it follows S1.
    tell(&s2s, promote(2, &addr(&s1s))).await;
    let s1_end = s1.inner().store.max_phy_offset();
    assert!(
        rmq_testkit::wait_until(T, || s2.inner().store.max_phy_offset() == s1_end
            && s2.inner().role.snapshot().epoch == Epoch(2))
        .await,
        "S2 never followed S1"
    );
    s1.shutdown().await;

    // M comes back as it was configured.
    let m = Broker::start(ms.clone()).await.unwrap();
    assert!(m.inner().role.snapshot().unconfirmed_master());
    let r = send(&ms, "to the stale master").await;
    assert_eq!(
        r.code,
        ResponseCode::SERVICE_NOT_AVAILABLE,
        "{:?}",
        r.remark
    );
    // Asked again and again, it keeps waiting while nobody leads epoch 2, and says why.
    let check = &m.inner().term_check;
    assert!(rmq_testkit::wait_until(T, || check.rounds() >= 3).await);
    let why = check.waiting_for().unwrap_or_default();
    assert!(why.contains("knows epoch 2"), "{why}");
    assert!(m.inner().role.snapshot().unconfirmed_master());
    assert_eq!(m.inner().store.max_phy_offset(), end, "nothing stored");

    // S2 leads epoch 3: M follows it.
    tell(&s2s, promote(3, &addr(&s2s))).await;
    assert!(
        rmq_testkit::wait_until(T, || {
            let r = m.inner().role.snapshot();
            r.role == BrokerRole::Slave
                && m.inner().store.max_phy_offset() == s2.inner().store.max_phy_offset()
                && r.epoch == Epoch(3)
        })
        .await,
        "M never followed S2"
    );
    let (theirs, _) = s2.inner().store.records_from(0, 1 << 20);
    let (ours, _) = m.inner().store.records_from(0, 1 << 20);
    assert!(ours == theirs, "M's log is not S2's");
    m.shutdown().await;
    s2.shutdown().await;
    ns.shutdown().await;
}
