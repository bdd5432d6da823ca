//! Route and cluster data served by the name server.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::JsonBody;
use crate::fastjson;

/// The broker id of a master.
pub const MASTER_ID: i64 = 0;

/// `QueueData`: one broker's queues of a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// `BrokerData`: one broker name, its master (id 0) and slaves by broker id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<i64, String>,
    pub enable_acting_master: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

impl BrokerData {
    /// The master's address, if the master is registered.
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }
}

/// `TopicRouteData`: answer to GET_ROUTEINFO_BY_TOPIC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicRouteData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
    pub filter_server_table: HashMap<String, Vec<String>>,
    /// Static-topic mapping, passed through as it was registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_by_broker: Option<Value>,
}

impl TopicRouteData {
    /// fastjson's default form, with bare numeric keys in `brokerAddrs`, for clients older
    /// than 4.9.4 and the Go client, which parse that text by hand.
    pub fn encode_fastjson(&self) -> Vec<u8> {
        fastjson::to_vec_fastjson(self, &["brokerAddrs"])
    }
}

/// `ClusterInfo`: answer to GET_BROKER_CLUSTER_INFO.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterInfo {
    pub broker_addr_table: HashMap<String, BrokerData>,
    pub cluster_addr_table: HashMap<String, HashSet<String>>,
}

impl ClusterInfo {
    /// fastjson's default form (bare numeric keys in `brokerAddrs`).
    pub fn encode_fastjson(&self) -> Vec<u8> {
        fastjson::to_vec_fastjson(self, &["brokerAddrs"])
    }
}

/// `BrokerMemberGroup`: answer to GET_BROKER_MEMBER_GROUP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BrokerMemberGroup {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<i64, String>,
}

impl JsonBody for QueueData {}
impl JsonBody for BrokerData {}
impl JsonBody for TopicRouteData {}
impl JsonBody for ClusterInfo {}
impl JsonBody for BrokerMemberGroup {}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::protocol::strategies::{name, text};
    use proptest::collection::{btree_map, hash_map, hash_set, vec};
    use proptest::prelude::*;

    pub fn queue_data() -> impl Strategy<Value = QueueData> {
        (
            name(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
        )
            .prop_map(|(broker_name, r, w, perm, flag)| QueueData {
                broker_name,
                read_queue_nums: r,
                write_queue_nums: w,
                perm,
                topic_sys_flag: flag,
            })
    }

    pub fn broker_data() -> impl Strategy<Value = BrokerData> {
        (
            name(),
            name(),
            btree_map(any::<i64>(), text(), 0..4),
            any::<bool>(),
            proptest::option::of(text()),
        )
            .prop_map(
                |(cluster, broker_name, broker_addrs, acting, zone)| BrokerData {
                    cluster,
                    broker_name,
                    broker_addrs,
                    enable_acting_master: acting,
                    zone_name: zone,
                },
            )
    }

    pub fn topic_route_data() -> impl Strategy<Value = TopicRouteData> {
        (
            proptest::option::of(text()),
            vec(queue_data(), 0..3),
            vec(broker_data(), 0..3),
            hash_map(text(), vec(text(), 0..2), 0..2),
        )
            .prop_map(
                |(order, queue_datas, broker_datas, filter)| TopicRouteData {
                    order_topic_conf: order,
                    queue_datas,
                    broker_datas,
                    filter_server_table: filter,
                    topic_queue_mapping_by_broker: None,
                },
            )
    }

    pub fn cluster_info() -> impl Strategy<Value = ClusterInfo> {
        (
            hash_map(name(), broker_data(), 0..3),
            hash_map(name(), hash_set(name(), 0..3), 0..3),
        )
            .prop_map(|(b, c)| ClusterInfo {
                broker_addr_table: b,
                cluster_addr_table: c,
            })
    }

    pub fn broker_member_group() -> impl Strategy<Value = BrokerMemberGroup> {
        (name(), name(), btree_map(any::<i64>(), text(), 0..4)).prop_map(
            |(cluster, broker_name, broker_addrs)| BrokerMemberGroup {
                cluster,
                broker_name,
                broker_addrs,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::*;
    use super::*;
    use crate::protocol::tests::round_trip;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn queue_data_round_trips(v in queue_data()) { round_trip(&v); }
        #[test]
        fn broker_data_round_trips(v in broker_data()) { round_trip(&v); }
        #[test]
        fn route_round_trips(v in topic_route_data()) {
            round_trip(&v);
            // The fastjson form reads back to the same value.
            prop_assert_eq!(&TopicRouteData::decode(&v.encode_fastjson()).unwrap(), &v);
        }
        #[test]
        fn cluster_info_round_trips(v in cluster_info()) {
            round_trip(&v);
            prop_assert_eq!(&ClusterInfo::decode(&v.encode_fastjson()).unwrap(), &v);
        }
        #[test]
        fn member_group_round_trips(v in broker_member_group()) { round_trip(&v); }
    }

    #[test]
    fn field_names_match_java() {
        let mut addrs = BTreeMap::new();
        addrs.insert(0, "10.0.0.1:10911".to_string());
        addrs.insert(1, "10.0.0.2:10911".to_string());
        let route = TopicRouteData {
            order_topic_conf: None,
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
                topic_sys_flag: 0,
            }],
            broker_datas: vec![BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: addrs,
                enable_acting_master: false,
                zone_name: None,
            }],
            ..Default::default()
        };
        let standard = String::from_utf8(route.encode()).unwrap();
        assert_eq!(
            standard,
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        let legacy = String::from_utf8(route.encode_fastjson()).unwrap();
        assert!(legacy.contains(r#""brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"}"#));
    }

    #[test]
    fn reads_java_fastjson_cluster_info() {
        let text = br#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#;
        let info = ClusterInfo::decode(text).unwrap();
        assert_eq!(
            info.broker_addr_table["broker-a"].master_addr(),
            Some("127.0.0.1:10911")
        );
        assert!(info.cluster_addr_table["DefaultCluster"].contains("broker-a"));
    }
}
