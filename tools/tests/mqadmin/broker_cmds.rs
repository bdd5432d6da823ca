//! Subcommands that reach the brokers of a cluster.

use rmq_remoting::header::{
    CreateTopicRequestHeader, DeleteTopicRequestHeader, GetConsumeStatsRequestHeader,
    GetKvConfigRequestHeader,
};
use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};
use serde_json::Value;

use crate::harness::{invoke, mqadmin, route, start_cluster, CLUSTER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_topic_goes_to_every_master_of_the_cluster() {
    let c = start_cluster().await;
    let run = mqadmin(&[
        "updateTopic",
        "-n",
        &c.ns.addr,
        "-c",
        CLUSTER,
        "-t",
        "NewTopic",
        "-r",
        "4",
        "-w",
        "4",
    ])
    .await
    .ok();
    let mut masters = [c.a.addr.clone(), c.b.addr.clone()];
    masters.sort();
    let expected = format!(
        "create topic to {} success.\ncreate topic to {} success.\n\
         TopicConfig [topicName=NewTopic, readQueueNums=4, writeQueueNums=4, perm=RW-, \
         topicFilterType=SINGLE_TAG, topicSysFlag=0, order=false, attributes={{}}]\n",
        masters[0], masters[1]
    );
    assert_eq!(run.stdout, expected);
    for master in [&c.a, &c.b] {
        let reqs = master.requests(RequestCode::UPDATE_AND_CREATE_TOPIC);
        assert_eq!(reqs.len(), 1);
        let h: CreateTopicRequestHeader = reqs[0].decode_header().unwrap();
        assert_eq!(h.topic, "NewTopic");
        assert_eq!(h.default_topic, "TBW102");
        assert_eq!((h.read_queue_nums, h.write_queue_nums, h.perm), (4, 4, 6));
        assert_eq!(h.topic_filter_type, "SINGLE_TAG");
        assert_eq!(h.topic_sys_flag, Some(0));
        assert!(!h.order);
    }
    assert!(c
        .a_slave
        .requests(RequestCode::UPDATE_AND_CREATE_TOPIC)
        .is_empty());

    // Order topics also get ORDER_TOPIC_CONFIG on the name server.
    let run = mqadmin(&[
        "updateTopic",
        "-n",
        &c.ns.addr,
        "-c",
        CLUSTER,
        "-t",
        "Ordered",
        "-o",
        "true",
    ])
    .await
    .ok();
    run.line("set cluster orderConf. isOrder=true, orderConf=[broker-a:8;broker-b:8]");
    assert_eq!(
        kv(&c.ns.addr, "Ordered").await.as_deref(),
        Some("broker-a:8;broker-b:8")
    );
    let last =
        c.b.requests(RequestCode::UPDATE_AND_CREATE_TOPIC)
            .pop()
            .unwrap();
    assert!(
        last.decode_header::<CreateTopicRequestHeader>()
            .unwrap()
            .order
    );

    // -b: only that broker; its order entry replaces its own and keeps the others.
    let run = mqadmin(&[
        "updateTopic",
        "-n",
        &c.ns.addr,
        "-b",
        &c.b.addr,
        "-t",
        "Ordered",
        "-o",
        "true",
        "-w",
        "2",
        "-p",
        "4",
    ])
    .await
    .ok();
    run.line("set broker orderConf. isOrder=true, orderConf=[broker-b:2]");
    run.line(&format!("create topic to {} success.", c.b.addr));
    run.line("TopicConfig [topicName=Ordered, readQueueNums=8, writeQueueNums=2, perm=R--,");
    assert_eq!(
        kv(&c.ns.addr, "Ordered").await.as_deref(),
        Some("broker-a:8;broker-b:2")
    );
    assert_eq!(c.a.requests(RequestCode::UPDATE_AND_CREATE_TOPIC).len(), 2);

    // A broker's refusal: exit 1 with the code name and remark.
    c.a.fail(
        RequestCode::UPDATE_AND_CREATE_TOPIC,
        ResponseCode::SYSTEM_ERROR,
        "disk full",
    );
    let run = mqadmin(&["updateTopic", "-n", &c.ns.addr, "-b", &c.a.addr, "-t", "X"])
        .await
        .failed();
    assert!(
        run.stderr.contains("SYSTEM_ERROR (1): disk full"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&c.a.addr), "{}", run.stderr);
    let run = mqadmin(&[
        "updateTopic",
        "-n",
        &c.ns.addr,
        "-b",
        &c.a.addr,
        "-t",
        "X",
        "-p",
        "9",
    ])
    .await
    .failed();
    assert!(
        run.stderr.contains("topicPermission value: 9 is invalid."),
        "{}",
        run.stderr
    );
}

async fn kv(namesrv: &str, key: &str) -> Option<String> {
    let resp = invoke(
        namesrv,
        RemotingCommand::request_with_header(
            RequestCode::GET_KV_CONFIG,
            &GetKvConfigRequestHeader {
                namespace: "ORDER_TOPIC_CONFIG".into(),
                key: key.into(),
            },
        ),
    )
    .await;
    resp.ext_fields.get("value").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topic_from_masters_then_name_server() {
    let c = start_cluster().await;
    assert!(route(&c.ns.addr, "T").await.is_some());
    let run = mqadmin(&["deleteTopic", "-n", &c.ns.addr, "-t", "T", "-c", CLUSTER])
        .await
        .ok();
    assert_eq!(
        run.stdout,
        format!(
            "delete topic [T] from cluster [{CLUSTER}] success.\ndelete topic [T] from NameServer success.\n"
        )
    );
    for master in [&c.a, &c.b] {
        let reqs = master.requests(RequestCode::DELETE_TOPIC_IN_BROKER);
        assert_eq!(reqs.len(), 1);
        let h: DeleteTopicRequestHeader = reqs[0].decode_header().unwrap();
        assert_eq!(h.topic, "T");
    }
    assert!(c
        .a_slave
        .requests(RequestCode::DELETE_TOPIC_IN_BROKER)
        .is_empty());
    assert!(
        route(&c.ns.addr, "T").await.is_none(),
        "216 removed the route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_status_lists_queues_of_every_broker() {
    let c = start_cluster().await;
    let run = mqadmin(&["topicStatus", "-n", &c.ns.addr, "-t", "T"])
        .await
        .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{:<32}  {:<4}  {:<20}  {:<20}    #Last Updated",
            "#Broker Name", "#QID", "#Min Offset", "#Max Offset"
        )
    );
    let rows: Vec<Vec<&str>> = lines[1..9]
        .iter()
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    let mut expected = Vec::new();
    for b in ["broker-a", "broker-b"] {
        for q in 0..4 {
            expected.push(vec![
                b.to_string(),
                q.to_string(),
                "0".into(),
                (100 + q).to_string(),
            ]);
        }
    }
    assert_eq!(rows, expected);
    assert!(lines[1].ends_with(",000"), "{}", lines[1]);
    assert_eq!(lines[9], "");
    assert_eq!(lines[10], "Topic Put TPS: 3.0");
    // Masters only.
    assert!(c
        .a_slave
        .requests(RequestCode::GET_TOPIC_STATS_INFO)
        .is_empty());
    assert_eq!(c.b.requests(RequestCode::GET_TOPIC_STATS_INFO).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_progress_of_a_group() {
    let c = start_cluster().await;
    let run = mqadmin(&["consumerProgress", "-n", &c.ns.addr, "-g", "G", "-t", "T"])
        .await
        .ok();
    let header = run.stdout.lines().next().unwrap();
    assert!(header.starts_with("#Topic"), "{header}");
    for col in [
        "#Broker Name",
        "#QID",
        "#Broker Offset",
        "#Consumer Offset",
        "#Diff",
        "#LastTime",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = run.line(&format!("{:<64}  {:<32}  {:<4}", "T", "broker-b", 2));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>()[3..6],
        ["102", "92", "10"]
    );
    assert!(run
        .line(&format!("{:<64}  {:<32}  {:<4}", "T", "broker-a", 0))
        .ends_with("N/A"));
    run.line("Consume TPS: 5.00");
    run.line("Consume Diff Total: 80");
    run.line("Consume Inflight Total: 40");
    for master in [&c.a, &c.b] {
        let reqs = master.requests(RequestCode::GET_CONSUME_STATS);
        assert_eq!(reqs.len(), 1);
        let h: GetConsumeStatsRequestHeader = reqs[0].decode_header().unwrap();
        assert_eq!(
            (h.consumer_group.as_str(), h.topic.as_deref()),
            ("G", Some("T"))
        );
    }

    // -s true: the client IP of each queue from the consumer's running info.
    let run = mqadmin(&[
        "consumerProgress",
        "-n",
        &c.ns.addr,
        "-g",
        "G",
        "-s",
        "true",
    ])
    .await
    .ok();
    assert!(run.stdout.lines().next().unwrap().contains("#Client IP"));
    let row = run.line(&format!("{:<64}  {:<32}  {:<4}", "T", "broker-a", 0));
    assert!(row.contains("10.1.2.3"), "{row}");
    let row = run.line(&format!("{:<64}  {:<32}  {:<4}", "T", "broker-a", 1));
    assert!(row.contains("N/A"), "{row}");

    // Without -g: one line per group.
    let run = mqadmin(&["consumerProgress", "-n", &c.ns.addr]).await.ok();
    let row = run.line("G ");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["G", "1", "V4_9_4", "PUSH", "CLUSTERING", "5", "80"]
    );

    // A group nobody consumes with.
    let run = mqadmin(&[
        "consumerProgress",
        "-n",
        &c.ns.addr,
        "-g",
        "Nobody",
        "-t",
        "T",
    ])
    .await
    .failed();
    assert!(run.stderr.contains("CONSUMER_NOT_ONLINE"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_status_and_config() {
    let c = start_cluster().await;
    let run = mqadmin(&["brokerStatus", "-n", &c.ns.addr, "-b", &c.a.addr])
        .await
        .ok();
    assert_eq!(
        run.line("brokerVersionDesc"),
        format!("{:<32}: V5_3_3", "brokerVersionDesc")
    );
    let keys: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let run = mqadmin(&["brokerStatus", "-n", &c.ns.addr, "-c", CLUSTER])
        .await
        .ok();
    run.line(&format!(
        "{:<24} {:<32}: V5_3_3",
        c.a_slave.addr, "brokerVersionDesc"
    ));

    let run = mqadmin(&["getBrokerConfig", "-n", &c.ns.addr, "-b", &c.a.addr])
        .await
        .ok();
    assert!(run
        .stdout
        .starts_with(&format!("============{}============\n", c.a.addr)));
    assert_eq!(
        run.line("brokerName"),
        format!("{:<50}=  broker-a", "brokerName")
    );

    let run = mqadmin(&[
        "updateBrokerConfig",
        "-n",
        &c.ns.addr,
        "-c",
        CLUSTER,
        "-k",
        "flushDiskType",
        "-v",
        "SYNC_FLUSH",
    ])
    .await
    .ok();
    run.line(&format!("update broker config success, {}", c.a.addr));
    run.line(&format!("update broker config success, {}", c.b.addr));
    let reqs = c.a.requests(RequestCode::UPDATE_BROKER_CONFIG);
    assert_eq!(&reqs[0].body[..], b"flushDiskType=SYNC_FLUSH\n");
    assert!(c
        .a_slave
        .requests(RequestCode::UPDATE_BROKER_CONFIG)
        .is_empty());

    let run = mqadmin(&["getBrokerConfig", "-n", &c.ns.addr, "-c", CLUSTER])
        .await
        .ok();
    run.line(&format!("============Master: {}============", c.a.addr));
    run.line(&format!(
        "============My Master: {}=====Slave: {}============",
        c.a.addr, c.a_slave.addr
    ));
    let flush: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("flushDiskType"))
        .collect();
    assert_eq!(flush.len(), 3);
    assert_eq!(
        flush
            .iter()
            .filter(|l| l.ends_with("=  SYNC_FLUSH"))
            .count(),
        2
    );

    let run = mqadmin(&[
        "updateBrokerConfig",
        "-n",
        &c.ns.addr,
        "-b",
        &c.a.addr,
        "-k",
        "brokerPermission",
        "-v",
        "8",
    ])
    .await
    .failed();
    assert!(run.stderr.contains("NO_PERMISSION"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_sub_group_sends_java_config_json() {
    let c = start_cluster().await;
    let run = mqadmin(&[
        "updateSubGroup",
        "-n",
        &c.ns.addr,
        "-c",
        CLUSTER,
        "-g",
        "G2",
        "-r",
        "3",
        "-q",
        "2",
        "-d",
        "true",
        "-i",
        "1",
        "-w",
        "2",
    ])
    .await
    .ok();
    run.line(&format!(
        "create subscription group to {} success.",
        c.a.addr
    ));
    run.line(&format!(
        "create subscription group to {} success.",
        c.b.addr
    ));
    run.line("SubscriptionGroupConfig{groupName=G2, consumeEnable=true, consumeFromMinEnable=false, consumeBroadcastEnable=true,");
    assert!(c
        .a_slave
        .requests(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
        .is_empty());
    let req =
        &c.b.requests(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)[0];
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["groupName"], "G2");
    assert_eq!(body["consumeEnable"], true);
    assert_eq!(body["consumeFromMinEnable"], false);
    assert_eq!(body["consumeBroadcastEnable"], true);
    assert_eq!(body["retryQueueNums"], 2);
    assert_eq!(body["retryMaxTimes"], 3);
    assert_eq!(body["brokerId"], 1);
    assert_eq!(body["whichBrokerWhenConsumeSlowly"], 2);
    assert_eq!(body["notifyConsumerIdsChangedEnable"], true);
    assert_eq!(body["groupSysFlag"], 0);
    assert_eq!(body["consumeTimeoutMinute"], 15);

    let run = mqadmin(&[
        "updateSubGroup",
        "-n",
        &c.ns.addr,
        "-b",
        &c.a.addr,
        "-g",
        "G3",
    ])
    .await
    .ok();
    assert!(run.stdout.starts_with(&format!(
        "create subscription group to {} success.\n",
        c.a.addr
    )));
    let req =
        c.a.requests(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .pop()
            .unwrap();
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        (body["groupName"].as_str(), body["retryMaxTimes"].as_i64()),
        (Some("G3"), Some(16))
    );
}
