//! `mqadmin` against our real name server and broker (the other mqadmin tests use fakes).

use std::process::Command;

use rmq_broker::{Broker, BrokerSettings};
use rmq_nameserver::NameServer;
use rmq_testkit::free_port;

/// A name server on 127.0.0.1, its files under `dir`.
async fn namesrv(dir: &std::path::Path) -> NameServer {
    rmq_testkit::start_namesrv(dir).await
}

/// A master or slave of group `name` on free ports of 127.0.0.1, with small store files.
fn replica_settings(
    namesrv: &str,
    name: &str,
    id: i64,
    role: &str,
    store: &std::path::Path,
) -> BrokerSettings {
    let mut s = rmq_testkit::broker_settings(store, namesrv, name);
    s.store.store_path_root_dir = store.display().to_string();
    s.broker.ha_listen_port = free_port();
    s.broker.broker_id = id;
    s.broker.broker_role = role.parse().unwrap();
    s
}

async fn mqadmin(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_mqadmin"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_against_the_real_broker() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let s = rmq_testkit::broker_settings(dir.path(), &ns_addr, "real-broker");
    let broker = Broker::start(s.clone()).await.unwrap();
    let broker_addr = format!("127.0.0.1:{}", s.broker.listen_port);
    for _ in 0..50 {
        if ns.processor().route.live_broker_count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let n = ns_addr.as_str();

    let (ok, out) = mqadmin(&["clusterList", "-n", n]).await;
    assert!(
        ok && out.contains("real-broker") && out.contains(&broker_addr),
        "{out}"
    );

    let (ok, out) = mqadmin(&[
        "updateTopic",
        "-n",
        n,
        "-c",
        "DefaultCluster",
        "-t",
        "AdminTopic",
        "-r",
        "4",
        "-w",
        "4",
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        broker
            .inner()
            .topics
            .get("AdminTopic")
            .unwrap()
            .write_queue_nums,
        4
    );
    // The broker re-registers right after the change; give the route a moment.
    let mut routed = false;
    for _ in 0..50 {
        let (ok, out) = mqadmin(&["topicRoute", "-n", n, "-t", "AdminTopic"]).await;
        if ok && out.contains("real-broker") {
            routed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(routed, "topic never routed");

    // Some traffic, then status commands.
    let (ok, out) = mqadmin(&["topicStatus", "-n", n, "-t", "AdminTopic"]).await;
    assert!(ok && out.contains("real-broker"), "{out}");
    let (ok, out) = mqadmin(&["brokerStatus", "-n", n, "-b", &broker_addr]).await;
    assert!(ok && out.contains("commitLogMaxOffset"), "{out}");
    let (ok, out) = mqadmin(&["getBrokerConfig", "-n", n, "-b", &broker_addr]).await;
    assert!(
        ok && out.contains("brokerName") && out.contains("real-broker"),
        "{out}"
    );
    let (ok, out) = mqadmin(&[
        "updateBrokerConfig",
        "-n",
        n,
        "-b",
        &broker_addr,
        "-k",
        "autoCreateTopicEnable",
        "-v",
        "false",
    ])
    .await;
    assert!(ok, "{out}");
    assert!(!broker
        .inner()
        .settings
        .broker(|b| b.auto_create_topic_enable));
    let (ok, out) = mqadmin(&[
        "updateSubGroup",
        "-n",
        n,
        "-b",
        &broker_addr,
        "-g",
        "admin_group",
        "-r",
        "3",
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        broker
            .inner()
            .groups
            .get("admin_group")
            .unwrap()
            .retry_max_times,
        3
    );

    // resetOffsetByTime: a group that consumed everything goes back to a point in time.
    let store = broker.inner().store.clone();
    let store_host = broker.inner().store_host;
    let put = |i: usize| rmq_broker::store::PutMessage {
        topic: "AdminTopic".into(),
        queue_id: 0,
        flag: 0,
        body: bytes::Bytes::from(format!("m{i}")),
        properties: Default::default(),
        sys_flag: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        born_host: "127.0.0.1:1".parse().unwrap(),
        store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: true,
    };
    for i in 0..5 {
        assert!(store.put_message(put(i)).await.status.is_stored());
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let middle = rmq_remoting::util::now_millis();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for i in 5..10 {
        assert!(store.put_message(put(i)).await.status.is_stored());
    }
    broker
        .inner()
        .offsets
        .commit("reset_group", "AdminTopic", 0, 10);
    let (ok, out) = mqadmin(&[
        "resetOffsetByTime",
        "-n",
        n,
        "-g",
        "reset_group",
        "-t",
        "AdminTopic",
        "-s",
        &middle.to_string(),
    ])
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("real-broker") && out.contains("#offset"),
        "{out}"
    );
    assert_eq!(
        broker.inner().offsets.query("reset_group", "AdminTopic", 0),
        5
    );
    // `now` (forced): to the end again.
    let (ok, out) = mqadmin(&[
        "resetOffsetByTime",
        "-n",
        n,
        "-g",
        "reset_group",
        "-t",
        "AdminTopic",
        "-s",
        "now",
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        broker.inner().offsets.query("reset_group", "AdminTopic", 0),
        10
    );
    let (ok, out) = mqadmin(&[
        "resetOffsetByTime",
        "-n",
        n,
        "-g",
        "reset_group",
        "-t",
        "AdminTopic",
        "-s",
        "yesterday",
    ])
    .await;
    assert!(!ok && out.contains("yyyy-MM-dd#HH:mm:ss:SSS"), "{out}");

    // queryMsgByKey / queryMsgById, before and after a broker restart (index files and the
    // commit log are what answer them).
    let mut keyed = put(100);
    keyed.properties = rmq_remoting::message::Properties::from_map(
        &[
            ("KEYS".to_string(), "order-77 other".to_string()),
            (
                "UNIQ_KEY".to_string(),
                "7F000001000000000000000000000077".to_string(),
            ),
        ]
        .into(),
    );
    let r = store.put_message(keyed).await;
    let offset_id = r.append.unwrap().msg_ids()[0].clone();
    let mut broker = broker;
    for round in 0..2 {
        let mut found = false;
        for _ in 0..50 {
            let (ok, out) = mqadmin(&[
                "queryMsgByKey",
                "-n",
                n,
                "-t",
                "AdminTopic",
                "-k",
                "order-77",
            ])
            .await;
            if ok && out.contains("7F000001000000000000000000000077") {
                found = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(found, "queryMsgByKey (round {round})");
        let (ok, out) = mqadmin(&["queryMsgById", "-n", n, "-i", &offset_id]).await;
        assert!(ok && out.contains("order-77"), "round {round}: {out}");
        if round == 0 {
            broker.shutdown().await;
            broker = Broker::start(s.clone()).await.unwrap();
        }
    }

    let (ok, out) = mqadmin(&[
        "deleteTopic",
        "-n",
        n,
        "-c",
        "DefaultCluster",
        "-t",
        "AdminTopic",
    ])
    .await;
    assert!(ok, "{out}");
    assert!(broker.inner().topics.get("AdminTopic").is_none());

    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_status_shows_the_master_and_its_slave() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let n = ns.local_addr().to_string();
    let broker = |id: i64, role: &str, sub: &str| {
        replica_settings(&n, "ha-broker", id, role, &dir.path().join(sub))
    };
    let ms = broker(0, "ASYNC_MASTER", "m");
    let master = Broker::start(ms.clone()).await.unwrap();
    let mut ss = broker(1, "SLAVE", "s");
    ss.broker.ha_master_address = format!("127.0.0.1:{}", ms.broker.ha_listen_port);
    let slave = Broker::start(ss.clone()).await.unwrap();
    let maddr = format!("127.0.0.1:{}", ms.broker.listen_port);
    let saddr = format!("127.0.0.1:{}", ss.broker.listen_port);
    let mut shown = String::new();
    for _ in 0..100 {
        let (ok, out) = mqadmin(&["haStatus", "-n", &n, "-b", &maddr]).await;
        if ok && out.contains("#AckOffset") {
            shown = out;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shown.contains("role ASYNC_MASTER"), "{shown}");
    assert!(shown.contains("127.0.0.1:"), "a slave line: {shown}");
    let (ok, out) = mqadmin(&["haStatus", "-n", &n, "-b", &saddr]).await;
    assert!(
        ok && out.contains("role SLAVE") && out.contains("following master"),
        "{out}"
    );
    // The slave has the master's epoch once metadata has synced; then the master goes and
    // the slave is promoted with the next epoch.
    for _ in 0..100 {
        if slave.inner().role.snapshot().epoch == rmq_remoting::role::Epoch(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    master.shutdown().await;
    let (ok, out) = mqadmin(&["promote", "-n", &n, "-b", &saddr]).await;
    assert!(ok && out.contains("epoch 2"), "{out}");
    let (ok, out) = mqadmin(&["haStatus", "-n", &n, "-b", &saddr]).await;
    assert!(
        ok && out.contains("role ASYNC_MASTER") && out.contains("epoch 2"),
        "{out}"
    );
    let (ok, out) = mqadmin(&["promote", "-n", &n, "-b", &saddr, "-e", "2"]).await;
    assert!(
        !ok && out.contains("CONTROLLER_FENCED_MASTER_EPOCH"),
        "{out}"
    );
    slave.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_switches_over_from_a_live_master_with_nothing_cut() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let n = ns.local_addr().to_string();
    let broker = |id: i64, role: &str, sub: &str| {
        replica_settings(&n, "sw-broker", id, role, &dir.path().join(sub))
    };
    let ms = broker(0, "ASYNC_MASTER", "m");
    let master = Broker::start(ms.clone()).await.unwrap();
    let slave = Broker::start(broker(1, "SLAVE", "s")).await.unwrap();
    let saddr = slave.local_addr().to_string();
    // Records on the master; the slave learns where its master is from the name server.
    for i in 0..40 {
        let msg = rmq_broker::store::PutMessage {
            topic: "SwTopic".into(),
            queue_id: 0,
            flag: 0,
            body: bytes::Bytes::from(format!("m{i}")),
            properties: Default::default(),
            sys_flag: 0,
            born_timestamp: rmq_remoting::util::now_millis(),
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_host: master.inner().store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            wait_store_msg_ok: true,
        };
        assert!(master
            .inner()
            .store
            .put_message(msg)
            .await
            .status
            .is_stored());
    }
    for _ in 0..100 {
        let (ok, out) = mqadmin(&["haStatus", "-n", &n, "-b", &saddr]).await;
        if ok && out.contains("following master") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Sends keep coming during the switch: whatever the master acknowledges must survive it.
    let maddr = master.local_addr().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (maddr, stop) = (maddr.clone(), stop.clone());
        tokio::spawn(async move {
            use rmq_remoting::header::{
                SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
            };
            use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};
            let client = rmq_testkit::admin_client();
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
                    producer_group: "pg".into(),
                    topic: "SwTopic".into(),
                    default_topic: "TBW102".into(),
                    default_topic_queue_nums: 4,
                    born_timestamp: rmq_remoting::util::now_millis(),
                    ..Default::default()
                });
                let body = format!("during-{i}");
                i += 1;
                let req = RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &h)
                    .with_body(body.clone().into_bytes());
                if let Ok(r) = client
                    .invoke(&maddr, req, std::time::Duration::from_secs(3))
                    .await
                {
                    if r.code == ResponseCode::SUCCESS {
                        let h: SendMessageResponseHeader = r.decode_header().unwrap();
                        acked.push((body, h.msg_id));
                    }
                }
            }
            acked
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let end = master.inner().store.max_phy_offset();

    let (ok, out) = mqadmin(&["promote", "-n", &n, "-b", &saddr]).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = sender.await.unwrap();
    assert!(acked.len() > 10, "only {} sends acknowledged", acked.len());
    for (body, id) in &acked {
        let (_, offset) = rmq_remoting::message::decode_offset_msg_id(id).unwrap();
        let m = slave
            .inner()
            .store
            .look_message_by_offset(offset)
            .unwrap_or_else(|| panic!("{body}, acknowledged by the old master, was cut"));
        assert_eq!(m.body.as_ref(), body.as_bytes());
    }
    assert!(ok && out.contains("switching over"), "{out}");
    assert!(out.contains("epoch 2"), "{out}");
    assert!(!slave.inner().role.is_slave());
    {
        let s = master.inner().current_settings();
        assert!(s.broker.is_slave(), "the former master stepped down");
        assert_eq!(s.broker.broker_id, 1, "it takes the promoted broker's id");
        assert_eq!(
            s.broker.broker_permission,
            rmq_remoting::role::Perm::READ_WRITE
        );
    }
    // Nothing cut: the new master had caught up to the old one's last byte before it led.
    assert!(slave.inner().role.epochs().list()[1].start_offset >= end);
    master.shutdown().await;
    slave.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_accounts_and_white_lists_through_mqadmin() {
    use rmq_remoting::{Credentials, RemotingClient, RemotingCommand, RequestCode, ResponseCode};
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let ns_addr = ns.local_addr().to_string();
    let mut s = rmq_testkit::broker_settings(dir.path(), &ns_addr, "acl-broker");
    s.broker.acl_enable = true;
    s.broker.rocketmq_home = dir.path().join("home").display().to_string();
    let broker = Broker::start(s.clone()).await.unwrap();
    let addr = format!("127.0.0.1:{}", s.broker.listen_port);
    assert!(
        rmq_testkit::wait_until(std::time::Duration::from_secs(5), || {
            ns.processor().route.live_broker_count() > 0
        })
        .await
    );
    let probe = |ak: &str, sk: &str| {
        let client = RemotingClient::default().with_credentials(Some(Credentials::new(ak, sk)));
        let addr = addr.clone();
        async move {
            // A request any account may send: only the ACL's answer matters.
            let req = RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO);
            let r = client
                .invoke(&addr, req, std::time::Duration::from_secs(3))
                .await
                .unwrap();
            (r.code, r.remark.unwrap_or_default())
        }
    };
    let (code, remark) = probe("app-account", "app-secret-1").await;
    assert_eq!(code, ResponseCode::SYSTEM_ERROR);
    assert!(
        remark.ends_with("No acl config for app-account"),
        "{remark}"
    );

    // mqadmin signs with the local admin credential: the account is created.
    let (ok, out) = mqadmin(&[
        "updateAclConfig",
        "-n",
        &ns_addr,
        "-c",
        "DefaultCluster",
        "-a",
        "app-account",
        "-s",
        "app-secret-1",
        "-u",
        "SUB",
        "-t",
        "Orders=PUB",
    ])
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "create or update plain access config to {addr} success."
        )),
        "{out}"
    );
    assert!(
        !out.contains("app-secret-1"),
        "the secret is not printed: {out}"
    );
    let (code, remark) = probe("app-account", "app-secret-1").await;
    assert_eq!(code, ResponseCode::SUCCESS, "{remark}");
    let file = std::fs::read_to_string(dir.path().join("home/conf/plain_acl.yml")).unwrap();
    assert!(
        file.contains("app-account") && file.contains("Orders=PUB"),
        "{file}"
    );

    let (ok, out) = mqadmin(&[
        "clusterAclConfigVersion",
        "-n",
        &ns_addr,
        "-c",
        "DefaultCluster",
    ])
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("#AclConfigVersionNum") && out.contains("plain_acl.yml"),
        "{out}"
    );
    assert!(
        out.contains("get cluster's plain access config version success."),
        "{out}"
    );

    // An ACL account that is not admin cannot change the ACL.
    let (ok, out) = mqadmin(&[
        "updateAclConfig",
        "-n",
        &ns_addr,
        "-b",
        &addr,
        "-a",
        "sneaky-account",
        "-s",
        "sneaky-secret",
        "-m",
        "true",
        "--authAccessKey",
        "app-account",
        "--authSecretKey",
        "app-secret-1",
    ])
    .await;
    assert!(
        !ok && out.contains(
            "Need admin permission for request code=50, but accessKey=app-account is not"
        ),
        "{out}"
    );

    let (ok, out) = mqadmin(&[
        "updateGlobalWhiteAddr",
        "-n",
        &ns_addr,
        "-b",
        &addr,
        "-g",
        "10.0.0.*,192.168.1.1-5",
    ])
    .await;
    assert!(
        ok && out.contains("update global white remote addresses to"),
        "{out}"
    );
    let (ok, out) = mqadmin(&[
        "updateGlobalWhiteAddr",
        "-n",
        &ns_addr,
        "-b",
        &addr,
        "-g",
        "1.2.3",
    ])
    .await;
    assert!(
        !ok && out.contains("211"),
        "a bad pattern is refused: {out}"
    );

    let (ok, out) = mqadmin(&[
        "deleteAccessConfig",
        "-n",
        &ns_addr,
        "-b",
        &addr,
        "-a",
        "app-account",
    ])
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("account's accesskey is:app-account"), "{out}");
    let (code, remark) = probe("app-account", "app-secret-1").await;
    assert_eq!(code, ResponseCode::SYSTEM_ERROR);
    assert!(
        remark.ends_with("No acl config for app-account"),
        "{remark}"
    );
    let (ok, out) = mqadmin(&[
        "deleteAclConfig",
        "-n",
        &ns_addr,
        "-b",
        &addr,
        "-a",
        "app-account",
    ])
    .await;
    assert!(!ok && out.contains("has been deleted failed"), "{out}");
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqadmin_over_tls_with_rocketmqs_tls_properties() {
    use rmq_remoting::tls::{TlsConfig, TlsMode};
    let dir = tempfile::tempdir().unwrap();
    let ca = rmq_testkit::tls::Ca::new("cluster-ca");
    let trust = ca.write(&dir.path().join("ca.crt"));
    let pem = ca.issue(dir.path(), "server", false);
    let server = TlsConfig {
        server_mode: TlsMode::Enforcing,
        server_cert_path: pem.cert.display().to_string(),
        server_key_path: pem.key.display().to_string(),
        client_enable: true,
        client_trust_cert_path: trust.display().to_string(),
        config_file: String::new(),
        ..Default::default()
    };
    let ns = rmq_nameserver::NameServer::start_with_tls(
        rmq_testkit::namesrv_config(dir.path()),
        server.clone(),
    )
    .await
    .unwrap();
    let ns_addr = ns.local_addr().to_string();
    let mut s = rmq_testkit::broker_settings(dir.path(), &ns_addr, "tls-broker");
    s.tls = server;
    let broker = Broker::start(s).await.unwrap();
    assert!(
        rmq_testkit::wait_until(std::time::Duration::from_secs(5), || {
            ns.processor().route.live_broker_count() > 0
        })
        .await
    );
    // RocketMQ's tls.properties shape.
    let props = dir.path().join("tls.properties");
    std::fs::write(
        &props,
        format!("tls.client.trustCertPath={}\n", trust.display()),
    )
    .unwrap();
    let (ok, out) = mqadmin(&[
        "clusterList",
        "-n",
        &ns_addr,
        "--tlsConfigFile",
        props.to_str().unwrap(),
    ])
    .await;
    assert!(ok && out.contains("tls-broker"), "{out}");
    let (ok, out) = mqadmin(&["clusterList", "-n", &ns_addr]).await;
    assert!(!ok, "plaintext is refused under enforcing: {out}");
    broker.shutdown().await;
    ns.shutdown().await;
}
