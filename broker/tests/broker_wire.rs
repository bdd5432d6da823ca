//! The broker's answers on the wire, with raw remoting commands: error codes for bad sends,
//! pulls and offsets, restart durability of consumer offsets, hostile bytes.

use std::collections::HashMap;
use std::time::Duration;

use rmq_broker::{Broker, BrokerSettings};
use rmq_nameserver::NameServer;
use rmq_remoting::header::*;
use rmq_remoting::message::{encode_properties, MessageExt};
use rmq_remoting::protocol::heartbeat::{ConsumerData, HeartbeatData, SubscriptionData};
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode, ResponseCode};
use rmq_testkit::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

fn settings(dir: &std::path::Path, ns: &str, port: u16) -> BrokerSettings {
    let mut s = rmq_testkit::broker_settings(dir, ns, "broker-w");
    s.broker.listen_port = port;
    s.store.max_message_size = 64 * 1024;
    s
}

async fn namesrv(dir: &std::path::Path) -> NameServer {
    rmq_testkit::start_namesrv(dir).await
}

fn send_req(topic: &str, queue_id: i32, body: &[u8], tags: &str) -> RemotingCommand {
    let mut props = HashMap::new();
    props.insert("TAGS".to_string(), tags.to_string());
    let h = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        flag: 0,
        properties: Some(encode_properties(&props)),
        ..Default::default()
    });
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &h).with_body(body.to_vec())
}

fn create_topic(topic: &str, queues: i32, perm: i32) -> RemotingCommand {
    rmq_testkit::create_topic_request(topic, queues, perm)
}

fn pull_req(
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    suspend_ms: i64,
    flags: i32,
) -> RemotingCommand {
    RemotingCommand::request_with_header(
        RequestCode::PULL_MESSAGE,
        &PullMessageRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id,
            queue_offset: offset,
            max_msg_nums: 32,
            sys_flag: flags,
            commit_offset: 0,
            suspend_timeout_millis: suspend_ms,
            subscription: Some("*".into()),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn send_errors_are_the_codes_clients_expect() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let port = free_port();
    let mut s = settings(dir.path(), &ns.local_addr().to_string(), port);
    s.broker.auto_create_topic_enable = false;
    let broker = Broker::start(s).await.unwrap();
    let addr = format!("127.0.0.1:{port}");
    let c = rmq_testkit::admin_client();

    // Auto-create off: unknown topic.
    let r = c
        .invoke(&addr, send_req("Unknown", 0, b"x", "a"), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::TOPIC_NOT_EXIST);
    assert!(r.remark.unwrap().contains("not exist"));
    // Bad names.
    let r = c
        .invoke(&addr, send_req("bad topic", 0, b"x", "a"), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::INVALID_PARAMETER);
    let r = c
        .invoke(&addr, send_req(&"t".repeat(200), 0, b"x", "a"), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::MESSAGE_ILLEGAL);
    // System topics are not for clients.
    let r = c
        .invoke(&addr, send_req("SCHEDULE_TOPIC_XXXX", 0, b"x", "a"), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::NO_PERMISSION);

    c.invoke(&addr, create_topic("Ok", 2, 6), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    c.invoke(&addr, create_topic("ReadOnly", 2, 4), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    // Oversize.
    let r = c
        .invoke(&addr, send_req("Ok", 0, &vec![0u8; 70 * 1024], "a"), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::MESSAGE_ILLEGAL);
    // A properties string over 32767 bytes, refused before it is parsed (tens of thousands
    // of pairs, the last one repeating the first name).
    let mut big = send_req("Ok", 0, b"x", "a");
    let mut props: String = (0..5_000).map(|i| format!("k{i}\u{1}v\u{2}")).collect();
    props.push_str("k0\u{1}v");
    big.ext_fields.insert("i".into(), props);
    let r = c.invoke(&addr, big, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::MESSAGE_ILLEGAL, "{:?}", r.remark);
    // A send-back naming a group that cannot name a retry topic.
    let back = RemotingCommand::request_with_header(
        RequestCode::CONSUMER_SEND_MSG_BACK,
        &ConsumerSendMsgBackRequestHeader {
            offset: 0,
            group: "bad\u{2}group".into(),
            delay_level: 0,
            ..Default::default()
        },
    );
    let r = c.invoke(&addr, back, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::INVALID_PARAMETER, "{:?}", r.remark);
    // Read-only topic.
    let r = c
        .invoke(&addr, send_req("ReadOnly", 0, b"x", "a"), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::NO_PERMISSION);
    // Queue id out of range.
    let r = c
        .invoke(&addr, send_req("Ok", 5, b"x", "a"), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::INVALID_PARAMETER);
    // A good send: the response header clients read, extFields included.
    let r = c
        .invoke(&addr, send_req("Ok", 1, b"hello", "a"), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let h: SendMessageResponseHeader = r.decode_header().unwrap();
    assert_eq!((h.queue_id, h.queue_offset), (1, 0));
    let (host, offset) = rmq_remoting::message::decode_offset_msg_id(&h.msg_id).unwrap();
    assert_eq!(host.to_string(), addr);
    assert!(r.ext_fields.contains_key("MSG_REGION"));
    // VIEW_MESSAGE_BY_ID with the decoded offset returns it.
    let view = RemotingCommand::request_with_header(
        RequestCode::VIEW_MESSAGE_BY_ID,
        &ViewMessageRequestHeader {
            offset,
            topic: None,
        },
    );
    let v = c
        .invoke(&addr, view, T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        MessageExt::decode_all(v.body).unwrap()[0].body.as_ref(),
        b"hello"
    );
    // The route the name server hands out points at us.
    let route = c
        .invoke(
            &ns.local_addr().to_string(),
            RemotingCommand::request_with_header(
                RequestCode::GET_ROUTEINFO_BY_TOPIC,
                &GetRouteInfoRequestHeader {
                    topic: "Ok".into(),
                    accept_standard_json_only: None,
                },
            ),
            T,
        )
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let route = TopicRouteData::decode(&route.body).unwrap();
    assert_eq!(route.broker_datas[0].master_addr(), Some(addr.as_str()));

    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test]
async fn long_polling_offsets_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let port = free_port();
    let s = settings(dir.path(), &ns.local_addr().to_string(), port);
    let broker = Broker::start(s.clone()).await.unwrap();
    let addr = format!("127.0.0.1:{port}");
    let c = rmq_testkit::admin_client();
    c.invoke(&addr, create_topic("LP", 1, 6), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();

    // A pull with SUSPEND on an empty queue waits, and is answered as soon as a message lands.
    let puller = {
        let c = c.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            let r = c
                .invoke(
                    &addr,
                    pull_req("g1", "LP", 0, 0, 10_000, 0x2 | 0x4),
                    Duration::from_secs(15),
                )
                .await
                .unwrap();
            (r, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.invoke(&addr, send_req("LP", 0, b"wake up", "a"), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let (r, waited) = puller.await.unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS, "{:?}", r.remark);
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(
        MessageExt::decode_all(r.body).unwrap()[0].body.as_ref(),
        b"wake up"
    );
    // Without SUSPEND, an empty pull answers PULL_NOT_FOUND at once; past the end, OFFSET_MOVED.
    let r = c
        .invoke(&addr, pull_req("g1", "LP", 0, 1, 10_000, 0x4), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::PULL_NOT_FOUND);
    let r = c
        .invoke(&addr, pull_req("g1", "LP", 0, 99, 0, 0x4), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::PULL_OFFSET_MOVED);
    let h: PullMessageResponseHeader = r.decode_header().unwrap();
    assert_eq!(
        h.next_begin_offset, 0,
        "as RocketMQ: past the end of a queue starting at 0, back to 0"
    );
    // Bad queue id; unknown topic.
    assert_eq!(
        c.invoke(&addr, pull_req("g1", "LP", 3, 0, 0, 0x4), T)
            .await
            .unwrap()
            .code,
        ResponseCode::INVALID_PARAMETER
    );
    assert_eq!(
        c.invoke(&addr, pull_req("g1", "Nope", 0, 0, 0, 0x4), T)
            .await
            .unwrap()
            .code,
        ResponseCode::TOPIC_NOT_EXIST
    );
    // Without an inline subscription and no heartbeat: SUBSCRIPTION_NOT_EXIST.
    assert_eq!(
        c.invoke(&addr, pull_req("g2", "LP", 0, 0, 0, 0), T)
            .await
            .unwrap()
            .code,
        ResponseCode::SUBSCRIPTION_NOT_EXIST
    );

    // Offsets: a group that never committed gets 0 (the queue starts at 0 and its first
    // message is in memory), or QUERY_NOT_FOUND when it asks not to be given 0 (5.x
    // `setZeroIfNotFound=false`); committed → returned; survives a restart.
    let q_with = |group: &str, set_zero_if_not_found: Option<bool>| {
        RemotingCommand::request_with_header(
            RequestCode::QUERY_CONSUMER_OFFSET,
            &QueryConsumerOffsetRequestHeader {
                consumer_group: group.into(),
                topic: "LP".into(),
                queue_id: 0,
                set_zero_if_not_found,
            },
        )
    };
    let q = |group: &str| q_with(group, None);
    let r = c.invoke(&addr, q("g1"), T).await.unwrap();
    assert_eq!(
        (r.code, r.ext_fields.get("offset").map(String::as_str)),
        (ResponseCode::SUCCESS, Some("0"))
    );
    assert_eq!(
        c.invoke(&addr, q_with("g1", Some(false)), T)
            .await
            .unwrap()
            .code,
        ResponseCode::QUERY_NOT_FOUND
    );
    let up = RemotingCommand::request_with_header(
        RequestCode::UPDATE_CONSUMER_OFFSET,
        &UpdateConsumerOffsetRequestHeader {
            consumer_group: "g1".into(),
            topic: "LP".into(),
            queue_id: 0,
            commit_offset: 1,
        },
    );
    c.invoke(&addr, up, T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let r = c
        .invoke(&addr, q("g1"), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        r.decode_header::<QueryConsumerOffsetResponseHeader>()
            .unwrap()
            .offset,
        1
    );
    let max = RemotingCommand::request_with_header(
        RequestCode::GET_MAX_OFFSET,
        &GetMaxOffsetRequestHeader {
            topic: "LP".into(),
            queue_id: 0,
            committed: None,
        },
    );
    let r = c
        .invoke(&addr, max, T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        r.decode_header::<GetMaxOffsetResponseHeader>()
            .unwrap()
            .offset,
        1
    );

    broker.shutdown().await;
    let broker = Broker::start(s).await.unwrap();
    let c = rmq_testkit::admin_client();
    let r = c
        .invoke(&addr, q("g1"), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        r.decode_header::<QueryConsumerOffsetResponseHeader>()
            .unwrap()
            .offset,
        1,
        "offset kept across restart"
    );
    let r = c
        .invoke(&addr, pull_req("g1", "LP", 0, 0, 0, 0x4), T)
        .await
        .unwrap();
    assert_eq!(
        r.code,
        ResponseCode::SUCCESS,
        "messages kept across restart"
    );
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test]
async fn heartbeat_groups_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let port = free_port();
    let broker = Broker::start(settings(dir.path(), &ns.local_addr().to_string(), port))
        .await
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let c = rmq_testkit::admin_client();
    let hb = HeartbeatData {
        client_id: "127.0.0.1@test".into(),
        consumer_data_set: vec![ConsumerData {
            group_name: "hb_group".into(),
            subscription_data_set: vec![SubscriptionData {
                topic: "HB".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = c
        .invoke(
            &addr,
            RemotingCommand::request(RequestCode::HEART_BEAT).with_body(hb.encode()),
            T,
        )
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert_eq!(
        r.ext_fields.get("IS_SUB_CHANGE").map(String::as_str),
        Some("true")
    );
    let list = RemotingCommand::request_with_header(
        RequestCode::GET_CONSUMER_LIST_BY_GROUP,
        &GetConsumerListByGroupRequestHeader {
            consumer_group: "hb_group".into(),
        },
    );
    let r = c
        .invoke(&addr, list, T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    assert!(String::from_utf8_lossy(&r.body).contains("127.0.0.1@test"));
    // The retry topic of the group exists now.
    assert!(broker.inner().topics.contains("%RETRY%hb_group"));

    // Garbage on one socket closes only that socket.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"\x00\x00\x00\x08\x00\x00\x10\x00garbage!")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "server closed the bad connection");
    let r = c
        .invoke(
            &addr,
            RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SUCCESS);
    // Unknown codes: REQUEST_CODE_NOT_SUPPORTED.
    assert_eq!(
        c.invoke(&addr, RemotingCommand::request(7777), T)
            .await
            .unwrap()
            .code,
        ResponseCode::REQUEST_CODE_NOT_SUPPORTED
    );

    // Closing the consumer's connection removes it from the group.
    c.close_all();
    let deadline = std::time::Instant::now() + T;
    while !broker.inner().clients.consumer_ids("hb_group").is_empty() {
        assert!(std::time::Instant::now() < deadline, "consumer not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test]
async fn runtime_info_reports_real_rates() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let port = free_port();
    let broker = Broker::start(settings(dir.path(), &ns.local_addr().to_string(), port))
        .await
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let c = rmq_testkit::admin_client();
    c.invoke(&addr, create_topic("Rates", 1, 6), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    // Let the sampler take a first sample, send 30 messages, wait for the next samples.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..30 {
        c.invoke(&addr, send_req("Rates", 0, b"x", "a"), T)
            .await
            .unwrap()
            .ensure_success()
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = c
        .invoke(
            &addr,
            RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO),
            T,
        )
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let table = rmq_remoting::protocol::KvTable::decode(&r.body)
        .unwrap()
        .table;
    let put_tps: Vec<f64> = table["putTps"]
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(put_tps.len(), 3);
    // 30 messages over the last ~3 one-second samples: a positive 10-second rate of at most 30/s.
    assert!(put_tps[0] > 0.0 && put_tps[0] <= 30.0, "{put_tps:?}");
    assert_eq!(table["msgPutTotalTodayNow"], "30");
    assert!(table["earliestMessageTimeStamp"].parse::<i64>().unwrap() > 0);
    broker.shutdown().await;
    ns.shutdown().await;
}

/// Behind NAT or a Kubernetes NodePort the broker listens on one port and advertises another,
/// possibly under a host name: the name server hands out that address, and message ids carry
/// the resolved IP with the advertised port, so `viewMessage(msgId)` goes where clients can reach.
#[tokio::test]
async fn advertised_host_name_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(dir.path()).await;
    let port = free_port();
    let mut s = settings(dir.path(), &ns.local_addr().to_string(), port);
    s.broker.broker_ip1 = "localhost".into();
    s.broker.broker_advertised_port = 30911;
    let broker = Broker::start(s).await.unwrap();
    let addr = format!("127.0.0.1:{port}");
    let c = rmq_testkit::admin_client();
    c.invoke(&addr, create_topic("Nat", 1, 6), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let r = c
        .invoke(&addr, send_req("Nat", 0, b"hello", "a"), T)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    let h: SendMessageResponseHeader = r.decode_header().unwrap();
    let (host, _) = rmq_remoting::message::decode_offset_msg_id(&h.msg_id).unwrap();
    assert_eq!(host.to_string(), "127.0.0.1:30911");

    let deadline = std::time::Instant::now() + T;
    let route = loop {
        let r = c
            .invoke(
                &ns.local_addr().to_string(),
                RemotingCommand::request_with_header(
                    RequestCode::GET_ROUTEINFO_BY_TOPIC,
                    &GetRouteInfoRequestHeader {
                        topic: "Nat".into(),
                        accept_standard_json_only: None,
                    },
                ),
                T,
            )
            .await
            .unwrap();
        if r.code == ResponseCode::SUCCESS {
            break TopicRouteData::decode(&r.body).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "topic never routed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(route.broker_datas[0].master_addr(), Some("localhost:30911"));
    broker.shutdown().await;
    ns.shutdown().await;
}

/// A broker registering in parts (RocketMQ 5's `enableSplitRegistration`): the name server
/// ends up with every topic of every part, and the broker stays registered.
#[tokio::test]
async fn a_registration_in_parts_reaches_the_name_server_whole() {
    let cluster = rmq_testkit::start_cluster(|s| {
        s.broker.enable_split_registration = true;
        s.broker.split_registration_size = 8;
    })
    .await;
    let addr = format!("127.0.0.1:{}", cluster.settings.broker.listen_port);
    let admin = rmq_testkit::admin_client();
    for i in 0..30 {
        let r = admin
            .invoke(
                &addr,
                rmq_testkit::create_topic_request(&format!("Part{i:02}"), 4, 6),
                T,
            )
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SUCCESS);
    }
    let route = &cluster.namesrv.processor().route;
    let all = rmq_testkit::wait_until(Duration::from_secs(20), || {
        (0..30).all(|i| route.topic_route(&format!("Part{i:02}")).is_some())
    })
    .await;
    assert!(all, "some parts of the registration never arrived");
    assert_eq!(route.live_broker_count(), 1);
    cluster.stop().await;
}

/// Ten thousand topics of 8 queues, created one request each (64 in flight): each creation
/// registers only what changed, so they all reach the name server while the broker stays
/// registered; after a restart the whole registration (in parts of 800 topics) routes every
/// one of them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_topics_register_and_route() {
    use futures::stream::{self, StreamExt};
    const N: usize = 10_000;
    let cluster = rmq_testkit::start_cluster(|s| {
        s.broker.enable_split_registration = true;
        s.broker.split_registration_size = 800;
    })
    .await;
    let addr = format!("127.0.0.1:{}", cluster.settings.broker.listen_port);
    let names: Vec<String> = (0..N).map(|i| format!("Many{i:05}")).collect();
    let admin = rmq_testkit::admin_client();
    let failed = stream::iter(&names)
        .map(|t| {
            let (admin, addr) = (&admin, &addr);
            async move {
                let r = admin
                    .invoke(addr, rmq_testkit::create_topic_request(t, 8, 6), T)
                    .await;
                !matches!(r, Ok(r) if r.code == ResponseCode::SUCCESS)
            }
        })
        .buffer_unordered(64)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    assert_eq!(failed, 0, "creations failed");
    let all_route = |route: &rmq_nameserver::route_info::RouteInfoManager| {
        names.iter().all(|t| {
            route
                .topic_route(t)
                .is_some_and(|r| r.queue_datas.len() == 1 && r.queue_datas[0].read_queue_nums == 8)
        })
    };
    let route = &cluster.namesrv.processor().route;
    assert!(
        rmq_testkit::wait_until(Duration::from_secs(60), || all_route(route)).await,
        "some topics never reached the name server"
    );
    assert_eq!(route.live_broker_count(), 1);

    // A clean stop unregisters (the name server forgets the topics); the next start's
    // registration brings them all back.
    let rmq_testkit::Cluster {
        namesrv,
        broker,
        settings,
        dir,
        ..
    } = cluster;
    broker.shutdown().await;
    let route = &namesrv.processor().route;
    assert!(route.topic_route(&names[0]).is_none());
    let broker = Broker::start(settings).await.unwrap();
    assert!(
        rmq_testkit::wait_until(Duration::from_secs(60), || all_route(route)).await,
        "some topics did not come back after the restart"
    );
    assert_eq!(route.live_broker_count(), 1);
    broker.shutdown().await;
    namesrv.shutdown().await;
    drop(dir);
}
