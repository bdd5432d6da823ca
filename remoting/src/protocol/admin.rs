//! Admin bodies whose maps are keyed by `MessageQueue` (fastjson writes object keys).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::heartbeat::{
    ConsumeFromWhere, ConsumeType, MessageModel, MessageQueue, SubscriptionData,
};
use super::JsonBody;
use crate::fastjson::{self, object_key_map};

/// `TopicOffset`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicOffset {
    pub min_offset: i64,
    pub max_offset: i64,
    pub last_update_timestamp: i64,
}

/// `TopicStatsTable`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicStatsTable {
    #[serde(with = "object_key_map")]
    pub offset_table: HashMap<MessageQueue, TopicOffset>,
    pub topic_put_tps: f64,
}

/// `OffsetWrapper`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OffsetWrapper {
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub pull_offset: i64,
    pub last_timestamp: i64,
}

/// `ConsumeStats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumeStats {
    #[serde(with = "object_key_map")]
    pub offset_table: HashMap<MessageQueue, OffsetWrapper>,
    pub consume_tps: f64,
}

/// Java writes these bodies with object keys; `encode_fastjson` reproduces that form.
macro_rules! object_keyed {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn encode_fastjson(&self) -> Vec<u8> {
                fastjson::to_vec_fastjson(self, &["offsetTable"])
            }
        }
        impl JsonBody for $t {}
    )*};
}
/// `ResetOffsetBody`: the offset each queue was reset to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResetOffsetBody {
    #[serde(with = "object_key_map")]
    pub offset_table: HashMap<MessageQueue, i64>,
}

object_keyed!(TopicStatsTable, ConsumeStats, ResetOffsetBody);

/// `Connection`: one client connection as admin tools list it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Connection {
    pub client_id: String,
    pub client_addr: String,
    pub language: String,
    pub version: i32,
}

/// `ConsumerConnection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerConnection {
    pub connection_set: Vec<Connection>,
    pub subscription_table: HashMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

impl JsonBody for ConsumerConnection {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::heartbeat::strategies::message_queue;
    use crate::protocol::tests::round_trip;
    use proptest::collection::hash_map;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn topic_stats_round_trip(m in hash_map(message_queue(), (any::<i64>(), any::<i64>(), any::<i64>()), 0..4)) {
            let v = TopicStatsTable {
                offset_table: m.into_iter().map(|(k, (a, b, c))| (k, TopicOffset { min_offset: a, max_offset: b, last_update_timestamp: c })).collect(),
                topic_put_tps: 1.5,
            };
            round_trip(&v);
            prop_assert_eq!(&TopicStatsTable::decode(&v.encode_fastjson()).unwrap(), &v);
        }

        #[test]
        fn consume_stats_round_trip(m in hash_map(message_queue(), (any::<i64>(), any::<i64>()), 0..4)) {
            let v = ConsumeStats {
                offset_table: m.into_iter().map(|(k, (a, b))| (k, OffsetWrapper { broker_offset: a, consumer_offset: b, ..Default::default() })).collect(),
                consume_tps: 0.0,
            };
            round_trip(&v);
            prop_assert_eq!(&ConsumeStats::decode(&v.encode_fastjson()).unwrap(), &v);
        }
    }

    #[test]
    fn object_keys_as_java_writes_them() {
        let mut v = ConsumeStats::default();
        v.offset_table.insert(
            MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id: 0,
            },
            OffsetWrapper {
                broker_offset: 5,
                consumer_offset: 3,
                pull_offset: 0,
                last_timestamp: 0,
            },
        );
        let text = String::from_utf8(v.encode_fastjson()).unwrap();
        assert!(
            text.contains(r#"{{"brokerName":"b","queueId":0,"topic":"T"}:{"#),
            "{text}"
        );
        let conn = ConsumerConnection::default();
        round_trip(&conn);
    }
}

/// `SubscriptionGroupConfig`: a consumer group's settings on a broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub consume_message_orderly: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
    pub group_sys_flag: i32,
    pub consume_timeout_minute: i32,
    pub attributes: HashMap<String, String>,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
            attributes: HashMap::new(),
        }
    }
}

impl JsonBody for SubscriptionGroupConfig {}
