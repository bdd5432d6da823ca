//! `rocketmq-client-rust` (crates.io), a client nobody here wrote, reads routes, cluster info,
//! topic lists and KV config from our name server, and administers it.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use cheetah_string::CheetahString;
use common::*;
use rocketmq_client_rust::{
    BrokerAdmin, ClientRuntime, ClientRuntimeConfig, DefaultMQAdminExt, RouteAdmin,
    TelemetryHandle, TopicAdmin,
};
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

static OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    RuntimeOwner::plan(RuntimeConfig {
        thread_name: "interop-client".to_string(),
        ..Default::default()
    })
    .expect("runtime plan")
    .build()
    .expect("runtime owner")
});

fn client_runtime() -> Arc<ClientRuntime> {
    ClientRuntime::try_new(
        OWNER.root_context().component("interop-admin"),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_admin_client_reads_and_administers() {
    let ns = start_namesrv(|c| c.order_message_enable = true).await;
    let ours = rmq_testkit::admin_client();
    register(
        &ours,
        &ns.addr,
        "DefaultCluster",
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("TopicA", 4), ("broker-a", 1)],
    )
    .await;
    register(
        &ours,
        &ns.addr,
        "DefaultCluster",
        "broker-a",
        1,
        "127.0.0.1:20911",
        &[("TopicA", 4), ("broker-a", 1)],
    )
    .await;
    register(
        &ours,
        &ns.addr,
        "OtherCluster",
        "broker-b",
        0,
        "127.0.0.2:10911",
        &[("TopicB", 2), ("broker-b", 1)],
    )
    .await;

    let rt = client_runtime();
    // Its own ACL hook signs with the cluster's admin credential: KV writes and broker
    // permission changes are the control plane.
    let admin_key = rmq_testkit::admin_credential();
    let mut admin = DefaultMQAdminExt::with_admin_ext_group_and_rpc_hook(
        rt.clone(),
        "interop_admin_group",
        rmq_testkit::client::acl_hook(&admin_key.access_key, &admin_key.secret_key),
    );
    admin.set_namesrv_addr(ns.addr.as_str());
    admin
        .client_config_mut()
        .set_instance_name(CheetahString::from("interop-admin"));
    admin.start().await.expect("admin starts");

    // clusterList
    let info = admin
        .examine_broker_cluster_info()
        .await
        .expect("cluster info");
    let brokers = info.broker_addr_table.as_ref().expect("broker table");
    let clusters = info.cluster_addr_table.as_ref().expect("cluster table");
    assert!(clusters["DefaultCluster"].contains(&CheetahString::from("broker-a")));
    assert!(clusters["OtherCluster"].contains(&CheetahString::from("broker-b")));
    let a = &brokers[&CheetahString::from("broker-a")];
    assert_eq!(
        a.broker_addrs().get(&0).map(|s| s.as_str()),
        Some("127.0.0.1:10911")
    );
    assert_eq!(
        a.broker_addrs().get(&1).map(|s| s.as_str()),
        Some("127.0.0.1:20911")
    );
    assert_eq!(a.cluster(), "DefaultCluster");

    // topicRoute
    let route = admin
        .examine_topic_route_info(CheetahString::from("TopicA"))
        .await
        .expect("route")
        .expect("route exists");
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(route.broker_datas[0].broker_addrs().len(), 2);
    let q = &route.queue_datas[0];
    assert_eq!((q.read_queue_nums, q.write_queue_nums, q.perm), (4, 4, 6));
    let missing = admin
        .examine_topic_route_info(CheetahString::from("NoSuchTopic"))
        .await
        .expect("answered");
    assert!(missing.is_none(), "TOPIC_NOT_EXIST reads as no route");

    // topicList and topics by cluster
    let all = admin.fetch_all_topic_list().await.expect("topic list");
    for t in ["TopicA", "TopicB", "broker-a", "broker-b"] {
        assert!(
            all.topic_list.iter().any(|x| x.as_str() == t),
            "{t} missing"
        );
    }
    let other = admin
        .fetch_topics_by_cluster(CheetahString::from("OtherCluster"))
        .await
        .expect("by cluster");
    let names: HashSet<&str> = other.topic_list.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, HashSet::from(["TopicB", "broker-b"]));

    // KV config: put, get, list, order-topic config in the route, delete.
    admin
        .create_and_update_kv_config(
            "ORDER_TOPIC_CONFIG".into(),
            "TopicA".into(),
            "broker-a:4".into(),
        )
        .await
        .expect("kv put");
    let v = admin
        .get_kv_config("ORDER_TOPIC_CONFIG".into(), "TopicA".into())
        .await
        .expect("kv get");
    assert_eq!(v.as_str(), "broker-a:4");
    let table = admin
        .get_kv_list_by_namespace("ORDER_TOPIC_CONFIG".into())
        .await
        .expect("kv list");
    assert_eq!(table.table.len(), 1);
    let route = admin
        .examine_topic_route_info("TopicA".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        route.order_topic_conf.as_ref().map(|s| s.as_str()),
        Some("broker-a:4")
    );
    admin
        .delete_kv_config("ORDER_TOPIC_CONFIG".into(), "TopicA".into())
        .await
        .expect("kv delete");
    assert_eq!(
        admin
            .get_kv_config("ORDER_TOPIC_CONFIG".into(), "TopicA".into())
            .await
            .expect("kv get")
            .as_str(),
        ""
    );

    // wipeWritePerm / addWritePerm
    let wiped = admin
        .wipe_write_perm_of_broker(ns.addr.as_str().into(), "broker-a".into())
        .await
        .expect("wipe");
    assert_eq!(wiped, 2);
    let route = admin
        .examine_topic_route_info("TopicA".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.queue_datas[0].perm, 4);
    let added = admin
        .add_write_perm_of_broker(ns.addr.as_str().into(), "broker-a".into())
        .await
        .expect("add");
    assert_eq!(added, 2);

    // deleteTopic in the name server
    admin
        .delete_topic_in_name_server(
            HashSet::from([CheetahString::from(ns.addr.as_str())]),
            None,
            "TopicB".into(),
        )
        .await
        .expect("delete topic");
    assert!(admin
        .examine_topic_route_info("TopicB".into())
        .await
        .unwrap()
        .is_none());

    admin.shutdown().await;
    ns.server.shutdown().await;
}
