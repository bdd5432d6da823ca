//! Subcommands answered by the name server (plus clusterList's runtime info from brokers).

use rmq_remoting::header::{GetKvConfigRequestHeader, RegisterBrokerRequestHeader};
use rmq_remoting::protocol::topic::RegisterBrokerBody;
use rmq_remoting::{JsonBody, RemotingClient, RemotingCommand, RequestCode};

use crate::harness::{
    invoke, mqadmin, mqadmin_env, route, start_cluster, start_namesrv, CLUSTER, TIMEOUT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_list_shows_every_broker_and_tolerates_silent_ones() {
    let c = start_cluster().await;
    // A broker registered at an address where nothing listens.
    let _dead = register_dead_broker(&c.ns.addr).await;
    let run = mqadmin(&["clusterList", "-n", &c.ns.addr]).await.ok();
    let header = run.stdout.lines().next().unwrap_or_default();
    let columns = [
        "#Cluster Name",
        "#Broker Name",
        "#BID",
        "#Addr",
        "#Version",
        "#InTPS(LOAD)",
        "#OutTPS(LOAD)",
        "#Timer(Progress)",
        "#PCWait(ms)",
        "#Hour",
        "#SPACE",
        "#ACTIVATED",
    ];
    let mut at = 0;
    for col in columns {
        let pos = header[at..]
            .find(col)
            .unwrap_or_else(|| panic!("{col} missing or out of order in {header:?}"));
        at += pos + col.len();
    }
    let a = run.line(&format!(
        "{CLUSTER:<22}  {:<22}  {:<4}  {}",
        "broker-a", 0, c.a.addr
    ));
    assert!(a.contains("V5_3_3"), "{a}");
    assert!(a.contains("    12.50(0,0ms)"), "{a}");
    assert!(a.contains("     3.25(0,0ms|N,Nms)"), "{a}");
    assert!(a.contains("0.2500"), "{a}");
    assert!(a.trim_end().ends_with("true"), "{a}");
    run.line(&format!(
        "{CLUSTER:<22}  {:<22}  {:<4}  {}",
        "broker-a", 1, c.a_slave.addr
    ));
    run.line(&format!(
        "{CLUSTER:<22}  {:<22}  {:<4}  {}",
        "broker-b", 0, c.b.addr
    ));
    let dead = run.line(&format!("{CLUSTER:<22}  {:<22}", "broker-z"));
    assert!(dead.contains("0.00(,ms)"), "{dead}");
    assert!(dead.trim_end().ends_with("false"), "{dead}");
    assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);
    // Every live broker was asked for its runtime info.
    for b in [&c.a, &c.a_slave, &c.b] {
        assert_eq!(b.requests(RequestCode::GET_BROKER_RUNTIME_INFO).len(), 1);
    }

    // -c filters by cluster; -m prints day totals.
    let run = mqadmin(&["clusterList", "-n", &c.ns.addr, "-c", "Other"])
        .await
        .ok();
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let run = mqadmin(&["clusterList", "-n", &c.ns.addr, "-m"]).await.ok();
    assert!(run.stdout.starts_with("#Cluster Name"), "{}", run.stdout);
    let row = run.line(&format!("{CLUSTER:<16}  {:<32}", "broker-b"));
    let numbers: Vec<&str> = row.split_whitespace().skip(2).collect();
    assert_eq!(numbers, ["20", "1", "5", "2"], "{row}");
}

/// Registers `broker-z` at `127.0.0.1:1`, where nothing listens; the returned client holds
/// the registration.
async fn register_dead_broker(namesrv: &str) -> RemotingClient {
    let client = rmq_testkit::admin_client();
    let header = RegisterBrokerRequestHeader {
        broker_name: "broker-z".into(),
        broker_addr: "127.0.0.1:1".into(),
        cluster_name: CLUSTER.into(),
        ha_server_addr: "127.0.0.1:2".into(),
        broker_id: 0,
        ..Default::default()
    };
    let req = RemotingCommand::request_with_header(RequestCode::REGISTER_BROKER, &header)
        .with_body(RegisterBrokerBody::default().encode());
    client
        .invoke(namesrv, req, TIMEOUT)
        .await
        .unwrap()
        .ensure_success()
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_list_and_route() {
    let c = start_cluster().await;
    let run = mqadmin(&["topicList", "-n", &c.ns.addr]).await.ok();
    let mut topics: Vec<&str> = run.stdout.lines().collect();
    topics.sort();
    assert_eq!(topics, ["%RETRY%G", "T"]);

    let run = mqadmin(&["topicList", "-n", &c.ns.addr, "-c"]).await.ok();
    assert!(run.stdout.starts_with(&format!(
        "{:<20}  {:<48}  {:<48}",
        "#Cluster Name", "#Topic", "#Consumer Group"
    )));
    let row = run.line(CLUSTER);
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [CLUSTER, "T", "G"]
    );
    assert!(!run.stdout.contains("%RETRY%"), "{}", run.stdout);
    assert_eq!(
        c.a.requests(RequestCode::QUERY_TOPIC_CONSUME_BY_WHO).len(),
        1
    );

    let run = mqadmin(&["topicRoute", "-n", &c.ns.addr, "-t", "T"])
        .await
        .ok();
    assert!(
        run.stdout.starts_with("{\n\t\"brokerDatas\":["),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("\t0:\"{}\"", c.a.addr)),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&format!("\t1:\"{}\"", c.a_slave.addr)));
    assert!(run.stdout.contains("\"brokerName\":\"broker-b\""));
    assert!(run.stdout.contains("\"writeQueueNums\":4"));

    let run = mqadmin(&["topicRoute", "-n", &c.ns.addr, "-t", "T", "-l"])
        .await
        .ok();
    let a = run.line(CLUSTER);
    assert!(a.contains("broker-a"), "{a}");
    assert!(
        a.contains(&format!("{{0={}, 1={}}}", c.a.addr, c.a_slave.addr)),
        "{a}"
    );
    let total = run.line("Total:");
    assert_eq!(
        total.split_whitespace().collect::<Vec<_>>(),
        ["Total:", "2", "8", "8"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_config_goes_to_every_name_server() {
    let ns1 = start_namesrv().await;
    let ns2 = start_namesrv().await;
    let list = format!("{};{}", ns1.addr, ns2.addr);
    let run = mqadmin(&[
        "updateKvConfig",
        "-n",
        &list,
        "-s",
        "NS",
        "-k",
        "key",
        "-v",
        "value",
    ])
    .await
    .ok();
    assert_eq!(
        run.stdout,
        "create or update kv config to namespace success.\n"
    );
    let get = || {
        RemotingCommand::request_with_header(
            RequestCode::GET_KV_CONFIG,
            &GetKvConfigRequestHeader {
                namespace: "NS".into(),
                key: "key".into(),
            },
        )
    };
    for ns in [&ns1.addr, &ns2.addr] {
        let resp = invoke(ns, get()).await;
        assert_eq!(resp.code, 0);
        assert_eq!(
            resp.ext_fields.get("value").map(String::as_str),
            Some("value")
        );
    }
    let run = mqadmin_env(&["deleteKvConfig", "-s", "NS", "-k", "key"], Some(&list))
        .await
        .ok();
    assert_eq!(run.stdout, "delete kv config from namespace success.\n");
    for ns in [&ns1.addr, &ns2.addr] {
        assert_eq!(invoke(ns, get()).await.code, 22, "deleted from {ns}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_perm_wipe_and_add() {
    let c = start_cluster().await;
    let run = mqadmin(&["wipeWritePerm", "-n", &c.ns.addr, "-b", "broker-a"])
        .await
        .ok();
    assert_eq!(
        run.stdout,
        format!(
            "wipe write perm of broker[broker-a] in name server[{}] OK, 2\n",
            c.ns.addr
        )
    );
    let perm = |r: &rmq_remoting::protocol::route::TopicRouteData| {
        r.queue_datas
            .iter()
            .find(|q| q.broker_name == "broker-a")
            .map(|q| q.perm)
    };
    assert_eq!(perm(&route(&c.ns.addr, "T").await.unwrap()), Some(4));
    let run = mqadmin(&["addWritePerm", "-n", &c.ns.addr, "-b", "broker-a"])
        .await
        .ok();
    assert_eq!(
        run.stdout,
        format!(
            "add write perm of broker[broker-a] in name server[{}] OK, 2\n",
            c.ns.addr
        )
    );
    assert_eq!(perm(&route(&c.ns.addr, "T").await.unwrap()), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namesrv_config_get_and_update() {
    let ns = start_namesrv().await;
    let run = mqadmin(&["getNamesrvConfig", "-n", &ns.addr]).await.ok();
    assert!(run
        .stdout
        .starts_with(&format!("============{}============\n", ns.addr)));
    assert_eq!(
        run.line("orderMessageEnable"),
        format!("{:<50}=  false", "orderMessageEnable")
    );
    let run = mqadmin(&[
        "updateNamesrvConfig",
        "-n",
        &ns.addr,
        "-k",
        "orderMessageEnable",
        "-v",
        "true",
    ])
    .await
    .ok();
    assert_eq!(
        run.stdout,
        format!(
            "update name server config success![{}]\norderMessageEnable : true\n",
            ns.addr
        )
    );
    let run = mqadmin(&["getNamesrvConfig", "-n", &ns.addr]).await.ok();
    assert_eq!(
        run.line("orderMessageEnable"),
        format!("{:<50}=  true", "orderMessageEnable")
    );
    // A refused key is an error with the name server's remark.
    let run = mqadmin(&[
        "updateNamesrvConfig",
        "-n",
        &ns.addr,
        "-k",
        "kvConfigPath",
        "-v",
        "/x",
    ])
    .await
    .failed();
    assert!(run.stderr.contains(&ns.addr), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_1_with_code_name_remark_and_address() {
    let ns = start_namesrv().await;
    let run = mqadmin(&["topicRoute", "-n", &ns.addr, "-t", "Nope"])
        .await
        .failed();
    assert!(
        run.stderr.contains("TOPIC_NOT_EXIST (17)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("No topic route info in name server for the topic: Nope"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&ns.addr), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // Nothing listens at 127.0.0.1:1.
    let run = mqadmin(&["clusterList", "-n", "127.0.0.1:1"])
        .await
        .failed();
    assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);

    // The next name server is tried when one is down.
    let list = format!("127.0.0.1:1;{}", ns.addr);
    mqadmin(&["clusterList", "-n", &list]).await.ok();

    let run = mqadmin(&["topicList"]).await.failed();
    assert!(run.stderr.contains("NAMESRV_ADDR"), "{}", run.stderr);
    mqadmin_env(&["topicList"], Some(&ns.addr)).await.ok();

    // Unknown clusters are refused before anything is sent.
    let run = mqadmin(&["updateTopic", "-n", &ns.addr, "-c", "Nope", "-t", "T"])
        .await
        .failed();
    assert!(
        run.stderr
            .contains("Make sure the specified clusterName exists"),
        "{}",
        run.stderr
    );
}
