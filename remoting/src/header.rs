//! Typed custom headers, carried in a command's `extFields` as strings.
//!
//! Java puts every non-null field of a header class into `extFields` as `toString()`; a
//! missing `@CFNotNull` field fails the request. Here a field of a plain type is required and a
//! field of an `Option` type is optional. Values are parsed leniently where real clients
//! differ: booleans as `true`/`false` or `1`/`0`, numbers with surrounding spaces.

use std::collections::HashMap;

use crate::error::{RemotingError, Result};

/// A header that converts to and from `extFields`.
pub trait CommandHeader: Sized {
    fn write_ext_fields(&self, ext: &mut HashMap<String, String>);
    fn from_ext_fields(ext: &HashMap<String, String>) -> Result<Self>;

    fn to_ext_fields(&self) -> HashMap<String, String> {
        let mut ext = HashMap::new();
        self.write_ext_fields(&mut ext);
        ext
    }
}

/// A value type that can be a header field.
pub trait HeaderValue: Sized {
    /// Reads the field named `key`; `raw` is `None` when it is absent.
    fn read(key: &str, raw: Option<&String>) -> Result<Self>;
    /// The text to send, `None` to leave the field out.
    fn write(&self) -> Option<String>;
}

trait Scalar: Sized {
    fn parse(raw: &str) -> Option<Self>;
    fn text(&self) -> String;
}

macro_rules! scalar_number {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            fn parse(raw: &str) -> Option<Self> { raw.trim().parse().ok() }
            fn text(&self) -> String { self.to_string() }
        }
    )*};
}
scalar_number!(i32, i64, u32, u64);

impl Scalar for bool {
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            t if t.eq_ignore_ascii_case("true") || t == "1" => Some(true),
            f if f.eq_ignore_ascii_case("false") || f == "0" => Some(false),
            _ => None,
        }
    }
    fn text(&self) -> String {
        self.to_string()
    }
}

impl Scalar for String {
    fn parse(raw: &str) -> Option<Self> {
        Some(raw.to_string())
    }
    fn text(&self) -> String {
        self.clone()
    }
}

impl Scalar for crate::role::Epoch {
    fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }
    fn text(&self) -> String {
        self.to_string()
    }
}

impl Scalar for crate::role::BrokerRole {
    fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }
    fn text(&self) -> String {
        self.as_str().to_string()
    }
}

impl<T: Scalar> HeaderValue for T {
    fn read(key: &str, raw: Option<&String>) -> Result<Self> {
        let raw = raw.ok_or_else(|| RemotingError::MissingField(key.to_string()))?;
        T::parse(raw).ok_or_else(|| RemotingError::BadField {
            field: key.to_string(),
            value: raw.clone(),
        })
    }
    fn write(&self) -> Option<String> {
        Some(self.text())
    }
}

impl<T: Scalar> HeaderValue for Option<T> {
    fn read(key: &str, raw: Option<&String>) -> Result<Self> {
        match raw {
            None => Ok(None),
            // An optional field that does not parse is left unset, as Java logs and skips it.
            Some(raw) => {
                let parsed = T::parse(raw);
                if parsed.is_none() {
                    tracing::debug!(field = key, value = %raw, "ignoring unparsable optional header field");
                }
                Ok(parsed)
            }
        }
    }
    fn write(&self) -> Option<String> {
        self.as_ref().map(Scalar::text)
    }
}

/// Declares a header struct with its `extFields` key for every field.
macro_rules! command_header {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty => $key:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl CommandHeader for $name {
            #[allow(unused_variables)]
            fn write_ext_fields(&self, ext: &mut HashMap<String, String>) {
                $(
                    if let Some(v) = HeaderValue::write(&self.$field) {
                        ext.insert($key.to_string(), v);
                    }
                )*
            }

            #[allow(unused_variables)]
            fn from_ext_fields(ext: &HashMap<String, String>) -> Result<Self> {
                Ok($name {
                    $($field: <$ty as HeaderValue>::read($key, ext.get($key))?,)*
                })
            }
        }

        #[cfg(test)]
        impl $name {
            /// Proptest strategy over every field.
            #[allow(dead_code)]
            pub fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
                #[allow(unused_imports)]
                use proptest::prelude::*;
                let s = Just($name::default()).boxed();
                $(
                    let s = s
                        .prop_flat_map(|h| {
                            proptest::arbitrary::any::<$ty>().prop_map(move |v| {
                                let mut h = h.clone();
                                h.$field = v;
                                h
                            })
                        })
                        .boxed();
                )*
                s
            }
        }
    };
}

/// Runs `$body!(Type)` for every header type (used by round-trip tests).
#[cfg(test)]
macro_rules! for_each_header {
    ($m:ident) => {
        $m! {
            GetRouteInfoRequestHeader,
            RegisterBrokerRequestHeader,
            RegisterBrokerResponseHeader,
            UnregisterBrokerRequestHeader,
            QueryDataVersionRequestHeader,
            QueryDataVersionResponseHeader,
            BrokerHeartbeatRequestHeader,
            GetBrokerMemberGroupRequestHeader,
            PutKvConfigRequestHeader,
            GetKvConfigRequestHeader,
            GetKvConfigResponseHeader,
            DeleteKvConfigRequestHeader,
            GetKvListByNamespaceRequestHeader,
            GetTopicsByClusterRequestHeader,
            DeleteTopicFromNamesrvRequestHeader,
            RegisterTopicRequestHeader,
            WipeWritePermOfBrokerRequestHeader,
            WipeWritePermOfBrokerResponseHeader,
            AddWritePermOfBrokerRequestHeader,
            AddWritePermOfBrokerResponseHeader,
            SendMessageRequestHeader,
            SendMessageRequestHeaderV2,
            SendMessageResponseHeader,
            PullMessageRequestHeader,
            PullMessageResponseHeader,
            UnregisterClientRequestHeader,
            GetConsumerListByGroupRequestHeader,
            QueryConsumerOffsetRequestHeader,
            QueryConsumerOffsetResponseHeader,
            UpdateConsumerOffsetRequestHeader,
            GetMaxOffsetRequestHeader,
            GetMaxOffsetResponseHeader,
            GetMinOffsetRequestHeader,
            GetMinOffsetResponseHeader,
            GetEarliestMsgStoretimeRequestHeader,
            GetEarliestMsgStoretimeResponseHeader,
            SearchOffsetRequestHeader,
            SearchOffsetResponseHeader,
            ConsumerSendMsgBackRequestHeader,
            EndTransactionRequestHeader,
            CheckTransactionStateRequestHeader,
            NotifyConsumerIdsChangedRequestHeader,
            QueryMessageRequestHeader,
            QueryMessageResponseHeader,
            ViewMessageRequestHeader,
            CreateTopicRequestHeader,
            DeleteTopicRequestHeader,
            GetAllTopicConfigResponseHeader,
            GetTopicStatsInfoRequestHeader,
            GetConsumerConnectionListRequestHeader,
            GetProducerConnectionListRequestHeader,
            GetConsumeStatsRequestHeader,
            ResetOffsetRequestHeader,
            GetBrokerConfigResponseHeader,
            GetAllSubscriptionGroupResponseHeader,
            DeleteSubscriptionGroupRequestHeader,
            NotifyBrokerRoleChangedRequestHeader
        }
    };
}

// ---- name server ----

command_header!(
    /// GET_ROUTEINFO_BY_TOPIC (105).
    GetRouteInfoRequestHeader {
        topic: String => "topic",
        accept_standard_json_only: Option<bool> => "acceptStandardJsonOnly",
    }
);

command_header!(
    /// REGISTER_BROKER (103).
    RegisterBrokerRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        ha_server_addr: String => "haServerAddr",
        broker_id: i64 => "brokerId",
        heartbeat_timeout_millis: Option<i64> => "heartbeatTimeoutMillis",
        enable_acting_master: Option<bool> => "enableActingMaster",
        compressed: Option<bool> => "compressed",
        body_crc32: Option<i32> => "bodyCrc32",
    }
);

command_header!(
    /// REGISTER_BROKER response.
    RegisterBrokerResponseHeader {
        ha_server_addr: Option<String> => "haServerAddr",
        master_addr: Option<String> => "masterAddr",
    }
);

command_header!(
    /// UNREGISTER_BROKER (104).
    UnregisterBrokerRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        broker_id: i64 => "brokerId",
    }
);

command_header!(
    /// QUERY_DATA_VERSION (322).
    QueryDataVersionRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        broker_id: i64 => "brokerId",
    }
);

command_header!(
    /// QUERY_DATA_VERSION response.
    QueryDataVersionResponseHeader {
        changed: bool => "changed",
    }
);

command_header!(
    /// BROKER_HEARTBEAT (904).
    BrokerHeartbeatRequestHeader {
        cluster_name: String => "clusterName",
        broker_addr: String => "brokerAddr",
        broker_name: String => "brokerName",
        broker_id: Option<i64> => "brokerId",
        epoch: Option<i32> => "epoch",
        max_offset: Option<i64> => "maxOffset",
        confirm_offset: Option<i64> => "confirmOffset",
        heartbeat_timeout_mills: Option<i64> => "heartbeatTimeoutMills",
        election_priority: Option<i32> => "electionPriority",
    }
);

command_header!(
    /// GET_BROKER_MEMBER_GROUP (901).
    GetBrokerMemberGroupRequestHeader {
        cluster_name: String => "clusterName",
        broker_name: String => "brokerName",
    }
);

command_header!(
    /// PUT_KV_CONFIG (100).
    PutKvConfigRequestHeader {
        namespace: String => "namespace",
        key: String => "key",
        value: String => "value",
    }
);

command_header!(
    /// GET_KV_CONFIG (101).
    GetKvConfigRequestHeader {
        namespace: String => "namespace",
        key: String => "key",
    }
);

command_header!(
    /// GET_KV_CONFIG response.
    GetKvConfigResponseHeader {
        value: Option<String> => "value",
    }
);

command_header!(
    /// DELETE_KV_CONFIG (102).
    DeleteKvConfigRequestHeader {
        namespace: String => "namespace",
        key: String => "key",
    }
);

command_header!(
    /// GET_KVLIST_BY_NAMESPACE (219).
    GetKvListByNamespaceRequestHeader {
        namespace: String => "namespace",
    }
);

command_header!(
    /// GET_TOPICS_BY_CLUSTER (224).
    GetTopicsByClusterRequestHeader {
        cluster: String => "cluster",
    }
);

command_header!(
    /// DELETE_TOPIC_IN_NAMESRV (216).
    DeleteTopicFromNamesrvRequestHeader {
        topic: String => "topic",
        cluster_name: Option<String> => "clusterName",
    }
);

command_header!(
    /// REGISTER_TOPIC_IN_NAMESRV (217).
    RegisterTopicRequestHeader {
        topic: String => "topic",
    }
);

command_header!(
    /// WIPE_WRITE_PERM_OF_BROKER (205).
    WipeWritePermOfBrokerRequestHeader {
        broker_name: String => "brokerName",
    }
);

command_header!(
    /// WIPE_WRITE_PERM_OF_BROKER response.
    WipeWritePermOfBrokerResponseHeader {
        wipe_topic_count: i32 => "wipeTopicCount",
    }
);

command_header!(
    /// ADD_WRITE_PERM_OF_BROKER (327).
    AddWritePermOfBrokerRequestHeader {
        broker_name: String => "brokerName",
    }
);

command_header!(
    /// ADD_WRITE_PERM_OF_BROKER response.
    AddWritePermOfBrokerResponseHeader {
        add_topic_count: i32 => "addTopicCount",
    }
);

// ---- broker: send and pull ----

command_header!(
    /// SEND_MESSAGE (10) and SEND_BATCH_MESSAGE in its V1 form.
    SendMessageRequestHeader {
        producer_group: String => "producerGroup",
        topic: String => "topic",
        default_topic: String => "defaultTopic",
        default_topic_queue_nums: i32 => "defaultTopicQueueNums",
        queue_id: i32 => "queueId",
        sys_flag: i32 => "sysFlag",
        born_timestamp: i64 => "bornTimestamp",
        flag: i32 => "flag",
        properties: Option<String> => "properties",
        reconsume_times: Option<i32> => "reconsumeTimes",
        unit_mode: Option<bool> => "unitMode",
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
        batch: Option<bool> => "batch",
        broker_name: Option<String> => "bname",
    }
);

command_header!(
    /// SEND_MESSAGE_V2 (310) / SEND_BATCH_MESSAGE (320): the same fields with one-letter keys.
    SendMessageRequestHeaderV2 {
        a: String => "a",
        b: String => "b",
        c: String => "c",
        d: i32 => "d",
        e: i32 => "e",
        f: i32 => "f",
        g: i64 => "g",
        h: i32 => "h",
        i: Option<String> => "i",
        j: Option<i32> => "j",
        k: Option<bool> => "k",
        l: Option<i32> => "l",
        m: Option<bool> => "m",
        n: Option<String> => "n",
    }
);

impl SendMessageRequestHeaderV2 {
    /// The V1 header these one-letter fields stand for.
    pub fn into_v1(self) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: self.a,
            topic: self.b,
            default_topic: self.c,
            default_topic_queue_nums: self.d,
            queue_id: self.e,
            sys_flag: self.f,
            born_timestamp: self.g,
            flag: self.h,
            properties: self.i,
            reconsume_times: self.j,
            unit_mode: self.k,
            max_reconsume_times: self.l,
            batch: self.m,
            broker_name: self.n,
        }
    }

    pub fn from_v1(v1: SendMessageRequestHeader) -> Self {
        SendMessageRequestHeaderV2 {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.broker_name,
        }
    }
}

command_header!(
    /// Response to the send family.
    SendMessageResponseHeader {
        msg_id: String => "msgId",
        queue_id: i32 => "queueId",
        queue_offset: i64 => "queueOffset",
        transaction_id: Option<String> => "transactionId",
        batch_uniq_id: Option<String> => "batchUniqId",
        recall_handle: Option<String> => "recallHandle",
    }
);

command_header!(
    /// PULL_MESSAGE (11) / LITE_PULL_MESSAGE (361).
    PullMessageRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        queue_offset: i64 => "queueOffset",
        max_msg_nums: i32 => "maxMsgNums",
        sys_flag: i32 => "sysFlag",
        commit_offset: i64 => "commitOffset",
        suspend_timeout_millis: i64 => "suspendTimeoutMillis",
        subscription: Option<String> => "subscription",
        sub_version: i64 => "subVersion",
        expression_type: Option<String> => "expressionType",
        max_msg_bytes: Option<i32> => "maxMsgBytes",
        request_source: Option<i32> => "requestSource",
        proxy_forward_client_id: Option<String> => "proxyFrowardClientId",
    }
);

command_header!(
    /// PULL_MESSAGE response.
    PullMessageResponseHeader {
        suggest_which_broker_id: i64 => "suggestWhichBrokerId",
        next_begin_offset: i64 => "nextBeginOffset",
        min_offset: i64 => "minOffset",
        max_offset: i64 => "maxOffset",
        offset_delta: Option<i64> => "offsetDelta",
        topic_sys_flag: Option<i32> => "topicSysFlag",
        group_sys_flag: Option<i32> => "groupSysFlag",
        forbidden_type: Option<i32> => "forbiddenType",
    }
);

// ---- broker: clients, offsets ----

command_header!(
    /// UNREGISTER_CLIENT (35).
    UnregisterClientRequestHeader {
        client_id: String => "clientID",
        producer_group: Option<String> => "producerGroup",
        consumer_group: Option<String> => "consumerGroup",
    }
);

command_header!(
    /// GET_CONSUMER_LIST_BY_GROUP (38).
    GetConsumerListByGroupRequestHeader {
        consumer_group: String => "consumerGroup",
    }
);

command_header!(
    /// QUERY_CONSUMER_OFFSET (14).
    QueryConsumerOffsetRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        set_zero_if_not_found: Option<bool> => "setZeroIfNotFound",
    }
);

command_header!(
    /// QUERY_CONSUMER_OFFSET response.
    QueryConsumerOffsetResponseHeader {
        offset: i64 => "offset",
    }
);

command_header!(
    /// UPDATE_CONSUMER_OFFSET (15).
    UpdateConsumerOffsetRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        commit_offset: i64 => "commitOffset",
    }
);

command_header!(
    /// GET_MAX_OFFSET (30).
    GetMaxOffsetRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
        committed: Option<bool> => "committed",
    }
);

command_header!(
    /// GET_MAX_OFFSET response.
    GetMaxOffsetResponseHeader {
        offset: i64 => "offset",
    }
);

command_header!(
    /// GET_MIN_OFFSET (31).
    GetMinOffsetRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
    }
);

command_header!(
    /// GET_MIN_OFFSET response.
    GetMinOffsetResponseHeader {
        offset: i64 => "offset",
    }
);

command_header!(
    /// GET_EARLIEST_MSG_STORETIME (32).
    GetEarliestMsgStoretimeRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
    }
);

command_header!(
    /// GET_EARLIEST_MSG_STORETIME response.
    GetEarliestMsgStoretimeResponseHeader {
        timestamp: i64 => "timestamp",
    }
);

command_header!(
    /// SEARCH_OFFSET_BY_TIMESTAMP (29).
    SearchOffsetRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
        timestamp: i64 => "timestamp",
        boundary_type: Option<String> => "boundaryType",
    }
);

command_header!(
    /// SEARCH_OFFSET_BY_TIMESTAMP response.
    SearchOffsetResponseHeader {
        offset: i64 => "offset",
    }
);

command_header!(
    /// CONSUMER_SEND_MSG_BACK (36).
    ConsumerSendMsgBackRequestHeader {
        offset: i64 => "offset",
        group: String => "group",
        delay_level: i32 => "delayLevel",
        origin_msg_id: Option<String> => "originMsgId",
        origin_topic: Option<String> => "originTopic",
        unit_mode: Option<bool> => "unitMode",
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
    }
);

command_header!(
    /// END_TRANSACTION (37).
    EndTransactionRequestHeader {
        producer_group: String => "producerGroup",
        tran_state_table_offset: i64 => "tranStateTableOffset",
        commit_log_offset: i64 => "commitLogOffset",
        commit_or_rollback: i32 => "commitOrRollback",
        from_transaction_check: Option<bool> => "fromTransactionCheck",
        msg_id: String => "msgId",
        transaction_id: Option<String> => "transactionId",
        topic: Option<String> => "topic",
    }
);

command_header!(
    /// CHECK_TRANSACTION_STATE (39), broker to producer.
    CheckTransactionStateRequestHeader {
        topic: Option<String> => "topic",
        tran_state_table_offset: i64 => "tranStateTableOffset",
        commit_log_offset: i64 => "commitLogOffset",
        msg_id: Option<String> => "msgId",
        transaction_id: Option<String> => "transactionId",
        offset_msg_id: Option<String> => "offsetMsgId",
    }
);

command_header!(
    /// NOTIFY_CONSUMER_IDS_CHANGED (40), broker to consumer.
    NotifyConsumerIdsChangedRequestHeader {
        consumer_group: String => "consumerGroup",
    }
);

// ---- broker: query ----

command_header!(
    /// QUERY_MESSAGE (12).
    QueryMessageRequestHeader {
        topic: String => "topic",
        key: String => "key",
        max_num: i32 => "maxNum",
        begin_timestamp: i64 => "beginTimestamp",
        end_timestamp: i64 => "endTimestamp",
    }
);

command_header!(
    /// QUERY_MESSAGE response.
    QueryMessageResponseHeader {
        index_last_update_timestamp: i64 => "indexLastUpdateTimestamp",
        index_last_update_phyoffset: i64 => "indexLastUpdatePhyoffset",
    }
);

command_header!(
    /// VIEW_MESSAGE_BY_ID (33).
    ViewMessageRequestHeader {
        offset: i64 => "offset",
        topic: Option<String> => "topic",
    }
);

// ---- broker: admin ----

command_header!(
    /// UPDATE_AND_CREATE_TOPIC (17).
    CreateTopicRequestHeader {
        topic: String => "topic",
        default_topic: String => "defaultTopic",
        read_queue_nums: i32 => "readQueueNums",
        write_queue_nums: i32 => "writeQueueNums",
        perm: i32 => "perm",
        topic_filter_type: String => "topicFilterType",
        topic_sys_flag: Option<i32> => "topicSysFlag",
        order: bool => "order",
        attributes: Option<String> => "attributes",
        force: Option<bool> => "force",
    }
);

command_header!(
    /// DELETE_TOPIC_IN_BROKER (215).
    DeleteTopicRequestHeader {
        topic: String => "topic",
    }
);

command_header!(
    /// GET_ALL_TOPIC_CONFIG response.
    GetAllTopicConfigResponseHeader {
        total_topic_num: Option<i32> => "totalTopicNum",
    }
);

command_header!(
    /// GET_TOPIC_STATS_INFO (202).
    GetTopicStatsInfoRequestHeader {
        topic: String => "topic",
    }
);

command_header!(
    /// GET_CONSUMER_CONNECTION_LIST (203).
    GetConsumerConnectionListRequestHeader {
        consumer_group: String => "consumerGroup",
    }
);

command_header!(
    /// GET_PRODUCER_CONNECTION_LIST (204).
    GetProducerConnectionListRequestHeader {
        producer_group: String => "producerGroup",
    }
);

command_header!(
    /// INVOKE_BROKER_TO_RESET_OFFSET (222), admin to broker, and RESET_CONSUMER_CLIENT_OFFSET
    /// (220), broker to consumer. `timestamp` -1 means the newest offset.
    ResetOffsetRequestHeader {
        topic: String => "topic",
        group: String => "group",
        timestamp: i64 => "timestamp",
        is_force: bool => "isForce",
    }
);

command_header!(
    /// GET_CONSUME_STATS (208).
    GetConsumeStatsRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: Option<String> => "topic",
        topic_list: Option<String> => "topicList",
    }
);

command_header!(
    /// GET_BROKER_CONFIG response.
    GetBrokerConfigResponseHeader {
        version: String => "version",
    }
);

command_header!(
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG response.
    GetAllSubscriptionGroupResponseHeader {
        total_group_num: Option<i32> => "totalGroupNum",
    }
);

command_header!(
    /// DELETE_SUBSCRIPTIONGROUP (207).
    DeleteSubscriptionGroupRequestHeader {
        group_name: String => "groupName",
        clean_offset: Option<bool> => "cleanOffset",
    }
);

command_header!(
    /// NOTIFY_BROKER_ROLE_CHANGED (1008). RocketMQ 5's fields: the group's master
    /// (`masterAddress`, `masterBrokerId`) from `masterEpoch` on. Ours besides: the role the
    /// promoted broker takes (`brokerRole`), the id its former master takes when it steps down
    /// (`formerMasterBrokerId`), the id a demoted master takes (`brokerId`), where it follows
    /// (`masterHaAddress`), the group it is meant for (`brokerName`, refused elsewhere), and
    /// whether a demoted master may cut records it acknowledged to SYNC_MASTER producers
    /// (`forceTruncate`).
    NotifyBrokerRoleChangedRequestHeader {
        master_address: Option<String> => "masterAddress",
        master_epoch: Option<crate::role::Epoch> => "masterEpoch",
        sync_state_set_epoch: Option<i32> => "syncStateSetEpoch",
        master_broker_id: Option<i64> => "masterBrokerId",
        master_ha_address: Option<String> => "masterHaAddress",
        broker_role: Option<crate::role::BrokerRole> => "brokerRole",
        former_master_broker_id: Option<i64> => "formerMasterBrokerId",
        broker_id: Option<i64> => "brokerId",
        broker_name: Option<String> => "brokerName",
        force_truncate: Option<bool> => "forceTruncate",
    }
);

command_header!(
    /// UPDATE_AND_CREATE_ACL_CONFIG (50): one account; the perm lists comma-joined.
    CreateAccessConfigRequestHeader {
        access_key: String => "accessKey",
        secret_key: Option<String> => "secretKey",
        white_remote_address: Option<String> => "whiteRemoteAddress",
        admin: Option<bool> => "admin",
        default_topic_perm: Option<String> => "defaultTopicPerm",
        default_group_perm: Option<String> => "defaultGroupPerm",
        topic_perms: Option<String> => "topicPerms",
        group_perms: Option<String> => "groupPerms",
    }
);

command_header!(
    /// DELETE_ACL_CONFIG (51).
    DeleteAccessConfigRequestHeader {
        access_key: String => "accessKey",
    }
);

command_header!(
    /// UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53): the comma list replaces the file's.
    UpdateGlobalWhiteAddrsConfigRequestHeader {
        global_white_addrs: String => "globalWhiteAddrs",
        acl_file_full_path: Option<String> => "aclFileFullPath",
    }
);

command_header!(
    /// GET_BROKER_CLUSTER_ACL_INFO (52)'s answer: the main file's data version, every file's
    /// (`{"path":{"counter":..,"timestamp":..}}`), and which broker answered.
    GetBrokerAclConfigResponseHeader {
        version: String => "version",
        all_acl_file_version: Option<String> => "allAclFileVersion",
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::RemotingCodec;
    use crate::command::{RemotingCommand, SerializeType};
    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn missing_required_field_is_an_error() {
        let err = GetRouteInfoRequestHeader::from_ext_fields(&HashMap::new()).unwrap_err();
        assert!(matches!(err, RemotingError::MissingField(f) if f == "topic"));
    }

    #[test]
    fn lenient_booleans_and_numbers() {
        let mut ext = HashMap::new();
        ext.insert("topic".to_string(), "T".to_string());
        ext.insert("queueId".to_string(), " 4 ".to_string());
        ext.insert("committed".to_string(), "0".to_string());
        let h = GetMaxOffsetRequestHeader::from_ext_fields(&ext).unwrap();
        assert_eq!(h.queue_id, 4);
        assert_eq!(h.committed, Some(false));
        ext.insert("queueId".to_string(), "four".to_string());
        assert!(matches!(
            GetMaxOffsetRequestHeader::from_ext_fields(&ext),
            Err(RemotingError::BadField { .. })
        ));
    }

    #[test]
    fn v2_maps_to_v1() {
        let v1 = SendMessageRequestHeader {
            producer_group: "pg".into(),
            topic: "T".into(),
            queue_id: 3,
            properties: Some("KEYS\u{1}k\u{2}".into()),
            ..Default::default()
        };
        let v2 = SendMessageRequestHeaderV2::from_v1(v1.clone());
        assert_eq!(v2.to_ext_fields().get("b").map(String::as_str), Some("T"));
        assert_eq!(v2.into_v1(), v1);
    }

    fn through_frame<H: CommandHeader + PartialEq + std::fmt::Debug>(
        h: &H,
        st: SerializeType,
    ) -> H {
        let mut cmd = RemotingCommand::request_with_header(10, h);
        cmd.serialize_type = st;
        let mut buf = BytesMut::new();
        let mut codec = RemotingCodec::default();
        codec.encode(cmd, &mut buf).unwrap();
        let back = codec.decode(&mut buf).unwrap().unwrap();
        back.decode_header().unwrap()
    }

    macro_rules! header_round_trips {
        ($($t:ident),*) => {$(
            #[allow(non_snake_case)]
            mod $t {
                use super::*;
                proptest! {
                    #![proptest_config(ProptestConfig::with_cases(32))]
                    #[test]
                    fn round_trips(h in crate::header::$t::strategy()) {
                        prop_assert_eq!(&crate::header::$t::from_ext_fields(&h.to_ext_fields()).unwrap(), &h);
                        prop_assert_eq!(&through_frame(&h, SerializeType::Json), &h);
                        prop_assert_eq!(&through_frame(&h, SerializeType::RocketMq), &h);
                    }
                }
            }
        )*};
    }
    mod round_trip {
        use super::*;
        for_each_header! {header_round_trips}
    }
}
