//! Client heartbeats, subscriptions, message queues and queue locks.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{java_enum, lenient_i32_vec, lenient_i64, JsonBody};

java_enum!(
    /// `ConsumeType`.
    ConsumeType (ConsumePassively) {
        ConsumeActively = "CONSUME_ACTIVELY",
        ConsumePassively = "CONSUME_PASSIVELY",
        ConsumePop = "CONSUME_POP",
    }
);

java_enum!(
    /// `MessageModel`.
    MessageModel (Clustering) {
        Broadcasting = "BROADCASTING",
        Clustering = "CLUSTERING",
    }
);

java_enum!(
    /// `ConsumeFromWhere`, deprecated values included (ordinals as Java declares them).
    ConsumeFromWhere (ConsumeFromLastOffset) {
        ConsumeFromLastOffset = "CONSUME_FROM_LAST_OFFSET",
        ConsumeFromLastOffsetAndFromMinWhenBootFirst = "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        ConsumeFromMinOffset = "CONSUME_FROM_MIN_OFFSET",
        ConsumeFromMaxOffset = "CONSUME_FROM_MAX_OFFSET",
        ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET",
        ConsumeFromTimestamp = "CONSUME_FROM_TIMESTAMP",
    }
);

/// `MessageQueue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageQueue {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
}

/// `SubscriptionData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionData {
    pub class_filter_mode: bool,
    pub topic: String,
    pub sub_string: String,
    pub tags_set: Vec<String>,
    #[serde(with = "lenient_i32_vec")]
    pub code_set: Vec<i32>,
    #[serde(with = "lenient_i64")]
    pub sub_version: i64,
    pub expression_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_class_source: Option<String>,
}

impl Default for SubscriptionData {
    fn default() -> Self {
        SubscriptionData {
            class_filter_mode: false,
            topic: String::new(),
            sub_string: "*".into(),
            tags_set: Vec::new(),
            code_set: Vec::new(),
            sub_version: 0,
            expression_type: "TAG".into(),
            filter_class_source: None,
        }
    }
}

/// `ConsumerData`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerData {
    pub group_name: String,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    pub subscription_data_set: Vec<SubscriptionData>,
    pub unit_mode: bool,
}

/// `ProducerData`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProducerData {
    pub group_name: String,
}

/// `HeartbeatData`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub producer_data_set: Vec<ProducerData>,
    pub consumer_data_set: Vec<ConsumerData>,
    pub heartbeat_fingerprint: i32,
    pub without_sub: bool,
}

/// `LockBatchRequestBody` (UNLOCK_BATCH_MQ's body has the same fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    pub consumer_group: String,
    pub client_id: String,
    pub only_this_broker: bool,
    pub mq_set: HashSet<MessageQueue>,
}

/// `LockBatchResponseBody`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet")]
    pub lock_ok_mq_set: HashSet<MessageQueue>,
}

/// `CheckClientRequestBody` (CHECK_CLIENT_CONFIG): a consumer asks whether the broker accepts
/// its subscription before it starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckClientRequestBody {
    pub client_id: String,
    pub group: String,
    pub subscription_data: Option<SubscriptionData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `GetConsumerListByGroupResponseBody`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerListBody {
    pub consumer_id_list: Vec<String>,
}

impl JsonBody for MessageQueue {}
impl JsonBody for SubscriptionData {}
impl JsonBody for ConsumerData {}
impl JsonBody for HeartbeatData {}
impl JsonBody for LockBatchRequestBody {}
impl JsonBody for LockBatchResponseBody {}
impl JsonBody for ConsumerListBody {}
impl JsonBody for CheckClientRequestBody {}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::protocol::strategies::{name, text};
    use proptest::collection::{hash_set, vec};
    use proptest::prelude::*;

    pub fn message_queue() -> impl Strategy<Value = MessageQueue> {
        (name(), name(), any::<i32>()).prop_map(|(topic, broker_name, queue_id)| MessageQueue {
            topic,
            broker_name,
            queue_id,
        })
    }

    pub fn subscription() -> impl Strategy<Value = SubscriptionData> {
        (
            name(),
            text(),
            vec(text(), 0..3),
            vec(any::<i32>(), 0..3),
            any::<i64>(),
            prop_oneof![Just("TAG".to_string()), Just("SQL92".to_string())],
        )
            .prop_map(|(topic, sub, tags, codes, ver, et)| SubscriptionData {
                topic,
                sub_string: sub,
                tags_set: tags,
                code_set: codes,
                sub_version: ver,
                expression_type: et,
                ..Default::default()
            })
    }

    pub fn heartbeat() -> impl Strategy<Value = HeartbeatData> {
        (
            text(),
            vec(name(), 0..3),
            vec(
                (name(), vec(subscription(), 0..3), 0..3usize, 0..2usize),
                0..3,
            ),
            any::<i32>(),
            any::<bool>(),
        )
            .prop_map(
                |(client_id, producers, consumers, fp, without_sub)| HeartbeatData {
                    client_id,
                    producer_data_set: producers
                        .into_iter()
                        .map(|group_name| ProducerData { group_name })
                        .collect(),
                    consumer_data_set: consumers
                        .into_iter()
                        .map(|(group_name, subs, ct, mm)| ConsumerData {
                            group_name,
                            consume_type: [
                                ConsumeType::ConsumeActively,
                                ConsumeType::ConsumePassively,
                                ConsumeType::ConsumePop,
                            ][ct],
                            message_model: [MessageModel::Broadcasting, MessageModel::Clustering]
                                [mm],
                            subscription_data_set: subs,
                            ..Default::default()
                        })
                        .collect(),
                    heartbeat_fingerprint: fp,
                    without_sub,
                },
            )
    }

    pub fn lock_request() -> impl Strategy<Value = LockBatchRequestBody> {
        (
            name(),
            text(),
            any::<bool>(),
            hash_set(message_queue(), 0..4),
        )
            .prop_map(|(g, c, o, mqs)| LockBatchRequestBody {
                consumer_group: g,
                client_id: c,
                only_this_broker: o,
                mq_set: mqs,
            })
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
        fn heartbeat_round_trips(v in heartbeat()) { round_trip(&v); }
        #[test]
        fn subscription_round_trips(v in subscription()) { round_trip(&v); }
        #[test]
        fn lock_round_trips(v in lock_request()) {
            round_trip(&v);
            round_trip(&LockBatchResponseBody { lock_ok_mq_set: v.mq_set.clone() });
        }
        #[test]
        fn consumer_list_round_trips(ids in proptest::collection::vec(".*", 0..4)) {
            round_trip(&ConsumerListBody { consumer_id_list: ids });
        }
    }

    #[test]
    fn lenient_heartbeat_from_other_clients() {
        // Ordinal enums, subVersion as a string, missing sets: as the C++ and Node clients send.
        let hb = HeartbeatData::decode(
            br#"{"clientID":"10.0.0.1@1","consumerDataSet":[{"groupName":"g","consumeType":1,"messageModel":1,"consumeFromWhere":4,"subscriptionDataSet":[{"topic":"T","subString":"*","subVersion":"17"}]}]}"#,
        )
        .unwrap();
        let c = &hb.consumer_data_set[0];
        assert_eq!(c.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(c.message_model, MessageModel::Clustering);
        assert_eq!(
            c.consume_from_where,
            ConsumeFromWhere::ConsumeFromFirstOffset
        );
        assert_eq!(c.subscription_data_set[0].sub_version, 17);
        assert!(hb.producer_data_set.is_empty());
    }

    #[test]
    fn lock_body_without_only_this_broker() {
        let body = LockBatchRequestBody::decode(
            br#"{"clientId":"c","consumerGroup":"g","mqSet":[{"topic":"T","brokerName":"b","queueId":1}]}"#,
        )
        .unwrap();
        assert!(!body.only_this_broker);
        assert_eq!(body.mq_set.len(), 1);
    }
}
