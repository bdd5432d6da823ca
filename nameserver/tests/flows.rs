//! Register, route, cluster info, KV, expiry and unregister flows over real TCP.

mod common;

use std::time::Duration;

use common::*;
use rmq_remoting::header::*;
use rmq_remoting::protocol::route::{ClusterInfo, TopicRouteData};
use rmq_remoting::protocol::topic::RegisterBrokerBody;
use rmq_remoting::protocol::{DataVersion, KvTable, TopicList};
use rmq_remoting::{
    JsonBody, RemotingClient, RemotingCommand, RequestCode, ResponseCode, SerializeType,
};

async fn route(client: &RemotingClient, ns: &str, topic: &str) -> RemotingCommand {
    let req = RemotingCommand::request_with_header(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        },
    );
    client.invoke(ns, req, TIMEOUT).await.unwrap()
}

#[tokio::test]
async fn register_route_cluster_unregister() {
    let ns = start_namesrv(|_| {}).await;
    let client = rmq_testkit::admin_client();
    let master = register(
        &client,
        &ns.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("broker-a", 1)],
    )
    .await;
    let m: RegisterBrokerResponseHeader = master.decode_header().unwrap();
    assert_eq!(m.master_addr, None);
    let slave = register(
        &client,
        &ns.addr,
        "C1",
        "broker-a",
        1,
        "127.0.0.2:10911",
        &[("T", 4), ("broker-a", 1)],
    )
    .await;
    let s: RegisterBrokerResponseHeader = slave.decode_header().unwrap();
    assert_eq!(s.master_addr.as_deref(), Some("127.0.0.1:10911"));
    assert_eq!(s.ha_server_addr.as_deref(), Some("127.0.0.1:10912"));
    register(
        &client,
        &ns.addr,
        "C1",
        "broker-b",
        0,
        "127.0.0.3:10911",
        &[("T", 8), ("broker-b", 1)],
    )
    .await;

    // The route merges both broker names, master and slave addresses by id.
    let resp = route(&client, &ns.addr, "T")
        .await
        .ensure_success()
        .unwrap();
    let r = TopicRouteData::decode(&resp.body).unwrap();
    assert_eq!(r.queue_datas.len(), 2);
    let a = r
        .broker_datas
        .iter()
        .find(|b| b.broker_name == "broker-a")
        .unwrap();
    assert_eq!(
        a.broker_addrs.get(&0).map(String::as_str),
        Some("127.0.0.1:10911")
    );
    assert_eq!(
        a.broker_addrs.get(&1).map(String::as_str),
        Some("127.0.0.2:10911")
    );
    let b = r
        .queue_datas
        .iter()
        .find(|q| q.broker_name == "broker-b")
        .unwrap();
    assert_eq!((b.read_queue_nums, b.write_queue_nums, b.perm), (8, 8, 6));

    let nf = route(&client, &ns.addr, "Nope").await;
    assert_eq!(nf.code, ResponseCode::TOPIC_NOT_EXIST);
    assert!(nf.remark.unwrap().contains("Nope"));

    let info = client
        .invoke(
            &ns.addr,
            RemotingCommand::request(RequestCode::GET_BROKER_CLUSTER_INFO),
            TIMEOUT,
        )
        .await
        .unwrap();
    let info = ClusterInfo::decode(&info.body).unwrap();
    assert_eq!(info.cluster_addr_table["C1"].len(), 2);
    assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 2);

    // Topic lists.
    let list = |code| {
        let client = client.clone();
        let addr = ns.addr.clone();
        async move {
            let resp = client
                .invoke(&addr, RemotingCommand::request(code), TIMEOUT)
                .await
                .unwrap();
            TopicList::decode(&resp.ensure_success().unwrap().body).unwrap()
        }
    };
    assert_eq!(
        list(RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
            .await
            .topic_list,
        vec!["T", "broker-a", "broker-b"]
    );
    let sys = list(RequestCode::GET_SYSTEM_TOPIC_LIST_FROM_NS).await;
    assert_eq!(sys.topic_list, vec!["C1", "broker-a", "broker-b"]);
    let by_cluster = client
        .invoke(
            &ns.addr,
            RemotingCommand::request_with_header(
                RequestCode::GET_TOPICS_BY_CLUSTER,
                &GetTopicsByClusterRequestHeader {
                    cluster: "C1".into(),
                },
            ),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(
        TopicList::decode(&by_cluster.body)
            .unwrap()
            .topic_list
            .len(),
        3
    );

    // Unregister the slave, then the master: the route goes with the last address.
    for (id, addr) in [(1, "127.0.0.2:10911"), (0, "127.0.0.1:10911")] {
        let req = RemotingCommand::request_with_header(
            RequestCode::UNREGISTER_BROKER,
            &UnregisterBrokerRequestHeader {
                broker_name: "broker-a".into(),
                broker_addr: addr.into(),
                cluster_name: "C1".into(),
                broker_id: id,
            },
        );
        client
            .invoke(&ns.addr, req, TIMEOUT)
            .await
            .unwrap()
            .ensure_success()
            .unwrap();
    }
    let r = TopicRouteData::decode(&route(&client, &ns.addr, "T").await.body).unwrap();
    assert_eq!(r.broker_datas.len(), 1);
    assert_eq!(r.broker_datas[0].broker_name, "broker-b");
    assert_eq!(
        route(&client, &ns.addr, "broker-a").await.code,
        ResponseCode::TOPIC_NOT_EXIST
    );
    ns.server.shutdown().await;
}

#[tokio::test]
async fn old_clients_get_bare_broker_addr_keys() {
    let ns = start_namesrv(|_| {}).await;
    let client = rmq_testkit::admin_client();
    register(
        &client,
        &ns.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("x", 1)],
    )
    .await;
    // A Go client (version 317) gets fastjson's bare numeric keys...
    let mut req = RemotingCommand::request_with_header(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader {
            topic: "T".into(),
            accept_standard_json_only: None,
        },
    );
    req.version = 317;
    let resp = client.invoke(&ns.addr, req.clone(), TIMEOUT).await.unwrap();
    let text = String::from_utf8(resp.body.to_vec()).unwrap();
    assert!(
        text.contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#),
        "{text}"
    );
    // ...unless it asks for standard JSON.
    req.opaque = rmq_remoting::command::next_opaque();
    req.ext_fields
        .insert("acceptStandardJsonOnly".into(), "true".into());
    let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
    let text = String::from_utf8(resp.body.to_vec()).unwrap();
    assert!(
        text.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911"}"#),
        "{text}"
    );
    // A 5.x client gets standard JSON with the 5.x fields.
    let resp = route(&client, &ns.addr, "T").await;
    let text = String::from_utf8(resp.body.to_vec()).unwrap();
    assert!(
        text.contains(r#""enableActingMaster":false"#) && text.contains(r#"{"0":"#),
        "{text}"
    );
    ns.server.shutdown().await;
}

#[tokio::test]
async fn binary_header_requests_get_binary_answers() {
    let ns = start_namesrv(|_| {}).await;
    let client = rmq_testkit::admin_client();
    let mut req = common::register_request(
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("y", 1)],
        1,
    );
    req.serialize_type = SerializeType::RocketMq;
    let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SUCCESS);
    assert_eq!(resp.serialize_type, SerializeType::RocketMq);
    let mut req = RemotingCommand::request_with_header(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader {
            topic: "T".into(),
            accept_standard_json_only: None,
        },
    );
    req.serialize_type = SerializeType::RocketMq;
    let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
    assert_eq!(resp.serialize_type, SerializeType::RocketMq);
    assert_eq!(
        TopicRouteData::decode(&resp.body)
            .unwrap()
            .queue_datas
            .len(),
        1
    );
    ns.server.shutdown().await;
}

#[tokio::test]
async fn compressed_registration_and_crc_check() {
    let ns = start_namesrv(|_| {}).await;
    let client = rmq_testkit::admin_client();
    let mut req = common::register_request(
        "C1",
        "broker-z",
        0,
        "127.0.0.9:10911",
        &[("Z", 2), ("z", 1)],
        1,
    );
    let body = RegisterBrokerBody::decode(&req.body).unwrap();
    let compressed = body.encode_compressed();
    req.ext_fields.insert("compressed".into(), "true".into());
    req.ext_fields.insert(
        "bodyCrc32".into(),
        ((crc32fast::hash(&compressed) & 0x7FFF_FFFF) as i32).to_string(),
    );
    req.body = compressed.into();
    client
        .invoke(&ns.addr, req.clone(), TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        route(&client, &ns.addr, "Z").await.code,
        ResponseCode::SUCCESS
    );

    // A body that does not match its CRC is refused.
    req.opaque = rmq_remoting::command::next_opaque();
    req.ext_fields.insert("bodyCrc32".into(), "12345".into());
    let resp = client.invoke(&ns.addr, req, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);
    assert_eq!(resp.remark.as_deref(), Some("crc32 not match"));
    ns.server.shutdown().await;
}

#[tokio::test]
async fn kv_config_and_order_topic_conf_in_routes() {
    let ns = start_namesrv(|c| c.order_message_enable = true).await;
    let client = rmq_testkit::admin_client();
    let put = |ns: &str, key: &str, value: &str| {
        RemotingCommand::request_with_header(
            RequestCode::PUT_KV_CONFIG,
            &PutKvConfigRequestHeader {
                namespace: ns.into(),
                key: key.into(),
                value: value.into(),
            },
        )
    };
    client
        .invoke(
            &ns.addr,
            put("ORDER_TOPIC_CONFIG", "T", "broker-a:4"),
            TIMEOUT,
        )
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    client
        .invoke(&ns.addr, put("app", "k1", "v1"), TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();

    let get = RemotingCommand::request_with_header(
        RequestCode::GET_KV_CONFIG,
        &GetKvConfigRequestHeader {
            namespace: "app".into(),
            key: "k1".into(),
        },
    );
    let resp = client
        .invoke(&ns.addr, get, TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let h: GetKvConfigResponseHeader = resp.decode_header().unwrap();
    assert_eq!(h.value.as_deref(), Some("v1"));

    let list = RemotingCommand::request_with_header(
        RequestCode::GET_KVLIST_BY_NAMESPACE,
        &GetKvListByNamespaceRequestHeader {
            namespace: "app".into(),
        },
    );
    let resp = client
        .invoke(&ns.addr, list.clone(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(KvTable::decode(&resp.body).unwrap().table["k1"], "v1");

    let del = RemotingCommand::request_with_header(
        RequestCode::DELETE_KV_CONFIG,
        &DeleteKvConfigRequestHeader {
            namespace: "app".into(),
            key: "k1".into(),
        },
    );
    client
        .invoke(&ns.addr, del, TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let mut list2 = list;
    list2.opaque = rmq_remoting::command::next_opaque();
    let resp = client.invoke(&ns.addr, list2, TIMEOUT).await.unwrap();
    assert_eq!(resp.code, ResponseCode::QUERY_NOT_FOUND);

    // The broker's registration answer carries the order-topic config; the route shows it.
    let reg = register(
        &client,
        &ns.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("a", 1)],
    )
    .await;
    assert_eq!(KvTable::decode(&reg.body).unwrap().table["T"], "broker-a:4");
    let r = TopicRouteData::decode(&route(&client, &ns.addr, "T").await.body).unwrap();
    assert_eq!(r.order_topic_conf.as_deref(), Some("broker-a:4"));

    // KV config survives a restart of the name server.
    let kv_path = ns.dir.path().join("kvConfig.json");
    ns.server.shutdown().await;
    let text = std::fs::read_to_string(&kv_path).unwrap();
    assert!(text.contains("broker-a:4"), "{text}");
    drop(ns.dir);
}

#[tokio::test]
async fn data_version_write_perm_topic_admin_and_config() {
    let ns = start_namesrv(|_| {}).await;
    let client = rmq_testkit::admin_client();
    register(
        &client,
        &ns.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("a", 1)],
    )
    .await;

    // QUERY_DATA_VERSION: unchanged for the registered version, changed for another.
    let ask = |counter: i64| {
        RemotingCommand::request_with_header(
            RequestCode::QUERY_DATA_VERSION,
            &QueryDataVersionRequestHeader {
                broker_name: "broker-a".into(),
                broker_addr: "127.0.0.1:10911".into(),
                cluster_name: "C1".into(),
                broker_id: 0,
            },
        )
        .with_body(
            DataVersion {
                state_version: 0,
                timestamp: 1_700_000_000_000 + 1,
                counter,
            }
            .encode(),
        )
    };
    let resp = client
        .invoke(&ns.addr, ask(1), TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert!(
        !resp
            .decode_header::<QueryDataVersionResponseHeader>()
            .unwrap()
            .changed
    );
    let resp = client.invoke(&ns.addr, ask(2), TIMEOUT).await.unwrap();
    assert!(
        resp.decode_header::<QueryDataVersionResponseHeader>()
            .unwrap()
            .changed
    );

    // Wipe and restore write permission.
    let wipe = RemotingCommand::request_with_header(
        RequestCode::WIPE_WRITE_PERM_OF_BROKER,
        &WipeWritePermOfBrokerRequestHeader {
            broker_name: "broker-a".into(),
        },
    );
    let resp = client.invoke(&ns.addr, wipe, TIMEOUT).await.unwrap();
    assert_eq!(
        resp.decode_header::<WipeWritePermOfBrokerResponseHeader>()
            .unwrap()
            .wipe_topic_count,
        2
    );
    assert_eq!(
        TopicRouteData::decode(&route(&client, &ns.addr, "T").await.body)
            .unwrap()
            .queue_datas[0]
            .perm,
        4
    );
    let add = RemotingCommand::request_with_header(
        RequestCode::ADD_WRITE_PERM_OF_BROKER,
        &AddWritePermOfBrokerRequestHeader {
            broker_name: "broker-a".into(),
        },
    );
    let resp = client.invoke(&ns.addr, add, TIMEOUT).await.unwrap();
    assert_eq!(
        resp.decode_header::<AddWritePermOfBrokerResponseHeader>()
            .unwrap()
            .add_topic_count,
        2
    );
    assert_eq!(
        TopicRouteData::decode(&route(&client, &ns.addr, "T").await.body)
            .unwrap()
            .queue_datas[0]
            .perm,
        6
    );

    // REGISTER_TOPIC_IN_NAMESRV then DELETE_TOPIC_IN_NAMESRV.
    let mut body = TopicRouteData::default();
    body.queue_datas
        .push(rmq_remoting::protocol::route::QueueData {
            broker_name: "broker-a".into(),
            read_queue_nums: 2,
            write_queue_nums: 2,
            perm: 6,
            topic_sys_flag: 0,
        });
    let req = RemotingCommand::request_with_header(
        RequestCode::REGISTER_TOPIC_IN_NAMESRV,
        &RegisterTopicRequestHeader {
            topic: "New".into(),
        },
    )
    .with_body(body.encode());
    client
        .invoke(&ns.addr, req, TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        route(&client, &ns.addr, "New").await.code,
        ResponseCode::SUCCESS
    );
    let req = RemotingCommand::request_with_header(
        RequestCode::DELETE_TOPIC_IN_NAMESRV,
        &DeleteTopicFromNamesrvRequestHeader {
            topic: "New".into(),
            cluster_name: Some("C1".into()),
        },
    );
    client
        .invoke(&ns.addr, req, TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        route(&client, &ns.addr, "New").await.code,
        ResponseCode::TOPIC_NOT_EXIST
    );

    // Config: read, update (persisted), black list refused, bad value refused.
    let get = || RemotingCommand::request(RequestCode::GET_NAMESRV_CONFIG);
    let text = String::from_utf8(
        client
            .invoke(&ns.addr, get(), TIMEOUT)
            .await
            .unwrap()
            .body
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("orderMessageEnable=false"), "{text}");
    let update = |body: &str| {
        RemotingCommand::request(RequestCode::UPDATE_NAMESRV_CONFIG)
            .with_body(body.as_bytes().to_vec())
    };
    client
        .invoke(&ns.addr, update("orderMessageEnable=true\n"), TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let text = String::from_utf8(
        client
            .invoke(&ns.addr, get(), TIMEOUT)
            .await
            .unwrap()
            .body
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("orderMessageEnable=true"), "{text}");
    let resp = client
        .invoke(&ns.addr, update("kvConfigPath=/tmp/evil\n"), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::NO_PERMISSION);
    let resp = client
        .invoke(
            &ns.addr,
            update("scanNotActiveBrokerInterval=soon\n"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::INVALID_PARAMETER);
    let stored = ns.dir.path().join("namesrv.properties");
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(&stored)
            .map(|t| t.contains("orderMessageEnable=true"))
            .unwrap_or(false))
        .await,
        "config persisted"
    );
    ns.server.shutdown().await;
}

#[tokio::test]
async fn silent_broker_expires_and_closed_connection_removes_at_once() {
    let ns = start_namesrv(|c| {
        c.broker_channel_expired_time = 1_500;
        c.scan_not_active_broker_interval = 100;
    })
    .await;
    let processor = ns.server.processor().clone();
    // Broker A registers on its own connection and then goes silent (connection kept open).
    let a = rmq_testkit::admin_client();
    register(
        &a,
        &ns.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("a", 1)],
    )
    .await;
    // Broker B keeps heartbeating.
    let b = rmq_testkit::admin_client();
    register(
        &b,
        &ns.addr,
        "C1",
        "broker-b",
        0,
        "127.0.0.2:10911",
        &[("T", 4), ("b", 1)],
    )
    .await;
    let started = std::time::Instant::now();
    let hb = {
        let b = b.clone();
        let addr = ns.addr.clone();
        tokio::spawn(async move {
            for i in 2..40 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let req = common::register_request(
                    "C1",
                    "broker-b",
                    0,
                    "127.0.0.2:10911",
                    &[("T", 4), ("b", 1)],
                    i,
                );
                if b.invoke(&addr, req, TIMEOUT).await.is_err() {
                    break;
                }
            }
        })
    };
    assert!(
        eventually(Duration::from_secs(6), || processor
            .route
            .live_broker_count()
            == 1)
        .await
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "expired too early"
    );
    let r = processor.route.topic_route("T").unwrap();
    assert_eq!(r.broker_datas.len(), 1);
    assert_eq!(r.broker_datas[0].broker_name, "broker-b");
    hb.abort();

    // Closing B's connection removes it without waiting for the expiry.
    b.close_all();
    assert!(
        eventually(Duration::from_millis(1_000), || processor
            .route
            .live_broker_count()
            == 0)
        .await
    );
    assert!(processor.route.topic_route("T").is_none());
    ns.server.shutdown().await;
}

#[tokio::test]
async fn several_name_servers_are_independent() {
    let ns1 = start_namesrv(|_| {}).await;
    let ns2 = start_namesrv(|_| {}).await;
    let client = rmq_testkit::admin_client();
    register(
        &client,
        &ns1.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("OnlyOne", 4), ("a", 1)],
    )
    .await;
    assert_eq!(
        route(&client, &ns1.addr, "OnlyOne").await.code,
        ResponseCode::SUCCESS
    );
    assert_eq!(
        route(&client, &ns2.addr, "OnlyOne").await.code,
        ResponseCode::TOPIC_NOT_EXIST
    );
    ns1.server.shutdown().await;
    // ns2 keeps serving after ns1 is gone.
    register(
        &client,
        &ns2.addr,
        "C1",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("OnlyOne", 4), ("a", 1)],
    )
    .await;
    assert_eq!(
        route(&client, &ns2.addr, "OnlyOne").await.code,
        ResponseCode::SUCCESS
    );
    ns2.server.shutdown().await;
}
