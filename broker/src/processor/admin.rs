//! Admin requests: topics, subscription groups, stats, runtime info, config, message lookup.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use rmq_remoting::config::{parse_properties, properties_to_text};
use rmq_remoting::header::*;
use rmq_remoting::protocol::admin::{
    Connection as ConnectionInfo, ConsumeStats, ConsumerConnection, OffsetWrapper,
    SubscriptionGroupConfig, TopicOffset, TopicStatsTable,
};
use rmq_remoting::protocol::heartbeat::MessageQueue;
use rmq_remoting::protocol::topic::{TopicConfig, TopicFilterType};
use rmq_remoting::protocol::KvTable;
use rmq_remoting::{JsonBody, RemotingCommand, ResponseCode};

use super::Response;
use crate::broker::BrokerInner;

/// The answer once a metadata change is on disk: success, or the write's error (the change
/// is in memory and will be written again, but the caller must not believe it durable).
async fn answer_durable(
    written: impl std::future::Future<Output = std::io::Result<()>>,
) -> Response {
    match written.await {
        Ok(()) => Ok(RemotingCommand::success()),
        Err(e) => Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            format!("the change is not on disk: {e}"),
        )),
    }
}

pub async fn create_topic(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: CreateTopicRequestHeader = req.decode_header()?;
    if let Err(e) = rmq_remoting::topic::validate_topic(&h.topic) {
        return Ok(RemotingCommand::error(ResponseCode::INVALID_PARAMETER, e));
    }
    if h.topic == inner.cluster_name()
        || h.topic == rmq_remoting::topic::AUTO_CREATE_TOPIC_KEY_TOPIC
    {
        return Ok(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!("The topic[{}] is conflict with system topic.", h.topic),
        ));
    }
    let max = super::client::MAX_QUEUE_NUMS;
    if !(1..=max).contains(&h.read_queue_nums) || !(1..=max).contains(&h.write_queue_nums) {
        return Ok(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "queue numbers must be in 1..={max} (read {}, write {})",
                h.read_queue_nums, h.write_queue_nums
            ),
        ));
    }
    let attributes: HashMap<String, String> = h
        .attributes
        .as_deref()
        .map(|a| {
            a.split(',')
                .filter_map(|kv| kv.trim().trim_start_matches('+').split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let tc = TopicConfig {
        topic_name: h.topic.clone(),
        read_queue_nums: h.read_queue_nums,
        write_queue_nums: h.write_queue_nums,
        perm: h.perm,
        topic_filter_type: TopicFilterType::from_name(&h.topic_filter_type).unwrap_or_default(),
        topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
        order: h.order,
        attributes,
    };
    let version = inner.topics.put(tc);
    crate::namesrv::register_topics_soon(inner, [h.topic.clone()]);
    answer_durable(inner.topics.durable(version)).await
}

pub async fn delete_topic(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: DeleteTopicRequestHeader = req.decode_header()?;
    if let Err(e) = rmq_remoting::topic::validate_topic(&h.topic) {
        return Ok(RemotingCommand::error(ResponseCode::INVALID_PARAMETER, e));
    }
    if let Some(version) = inner.topics.delete(&h.topic) {
        if let Err(e) = inner.topics.durable(version).await {
            return Ok(RemotingCommand::error(
                ResponseCode::SYSTEM_ERROR,
                format!("the deletion is not on disk: {e}"),
            ));
        }
    }
    inner.offsets.remove_topic(&h.topic);
    let store = inner.store.clone();
    let topic = h.topic.clone();
    let _ = tokio::task::spawn_blocking(move || store.delete_topics(&[topic.as_str()])).await;
    crate::namesrv::register_soon(inner);
    Ok(RemotingCommand::success())
}

pub fn all_topic_config(inner: &Arc<BrokerInner>) -> Response {
    let w = inner.topics.wrapper();
    let n = w.topic_config_table.len() as i32;
    Ok(RemotingCommand::success()
        .with_header(&GetAllTopicConfigResponseHeader {
            total_topic_num: Some(n),
        })
        .with_body(w.encode()))
}

pub fn topic_stats(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: GetTopicStatsInfoRequestHeader = req.decode_header()?;
    let Some(tc) = inner.topics.get(&h.topic) else {
        return Ok(RemotingCommand::error(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist", h.topic),
        ));
    };
    let mut table = TopicStatsTable::default();
    let broker_name = inner.broker_name();
    for q in 0..tc.write_queue_nums {
        let max = inner.store.max_offset_in_queue(&h.topic, q, true);
        let last = if max > 0 {
            inner
                .store
                .message_store_timestamp(&h.topic, q, max - 1)
                .unwrap_or(0)
        } else {
            0
        };
        table.offset_table.insert(
            MessageQueue {
                topic: h.topic.clone(),
                broker_name: broker_name.clone(),
                queue_id: q,
            },
            TopicOffset {
                min_offset: inner.store.min_offset_in_queue(&h.topic, q),
                max_offset: max,
                last_update_timestamp: last,
            },
        );
    }
    Ok(RemotingCommand::success().with_body(table.encode_fastjson_for(req)))
}

pub fn consume_stats(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: GetConsumeStatsRequestHeader = req.decode_header()?;
    let topics: Vec<String> = match h.topic.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => vec![t.to_string()],
        None => inner.offsets.topics_of_group(&h.consumer_group),
    };
    let broker_name = inner.broker_name();
    let mut stats = ConsumeStats::default();
    for topic in topics {
        let Some(tc) = inner.topics.get(&topic) else {
            continue;
        };
        for q in 0..tc.write_queue_nums {
            let broker_offset = inner.store.max_offset_in_queue(&topic, q, true);
            let consumer_offset = inner.offsets.query(&h.consumer_group, &topic, q).max(0);
            let last_timestamp = if consumer_offset > 0 {
                inner
                    .store
                    .message_store_timestamp(&topic, q, consumer_offset - 1)
                    .unwrap_or(0)
            } else {
                0
            };
            stats.offset_table.insert(
                MessageQueue {
                    topic: topic.clone(),
                    broker_name: broker_name.clone(),
                    queue_id: q,
                },
                OffsetWrapper {
                    broker_offset,
                    consumer_offset,
                    pull_offset: consumer_offset,
                    last_timestamp,
                },
            );
        }
    }
    Ok(RemotingCommand::success().with_body(stats.encode_fastjson_for(req)))
}

pub fn consumer_connections(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: GetConsumerConnectionListRequestHeader = req.decode_header()?;
    let Some(info) = inner.clients.consumer_group(&h.consumer_group) else {
        return Ok(RemotingCommand::error(
            ResponseCode::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{}] not online", h.consumer_group),
        ));
    };
    let body = ConsumerConnection {
        connection_set: info
            .channels
            .values()
            .map(|c| ConnectionInfo {
                client_id: c.client_id.clone(),
                client_addr: c.conn.peer_addr().to_string(),
                language: c.language.name().to_string(),
                version: c.version,
            })
            .collect(),
        subscription_table: info.subscriptions.clone(),
        consume_type: info.consume_type,
        message_model: info.message_model,
        consume_from_where: info.consume_from_where,
    };
    Ok(RemotingCommand::success().with_body(body.encode()))
}

pub fn runtime_info(inner: &Arc<BrokerInner>) -> Response {
    let mut t = HashMap::new();
    let traffic = &inner.traffic;
    let (put_total, get_total) = traffic.totals();
    let store = &inner.store;
    t.insert("brokerVersionDesc".into(), "V5_3_3".into());
    t.insert(
        "brokerVersion".into(),
        rmq_remoting::code::version::CURRENT.to_string(),
    );
    t.insert("msgPutTotalTodayNow".into(), put_total.to_string());
    t.insert("msgGetTotalTodayNow".into(), get_total.to_string());
    t.insert(
        "commitLogMinOffset".into(),
        store.min_phy_offset().to_string(),
    );
    t.insert(
        "commitLogMaxOffset".into(),
        store.max_phy_offset().to_string(),
    );
    t.insert(
        "dispatchBehindBytes".into(),
        (store.max_phy_offset() - store.dispatched_phy_offset())
            .max(0)
            .to_string(),
    );
    t.insert(
        "bootTimestamp".into(),
        (rmq_remoting::util::now_millis() - traffic.uptime().as_millis() as i64).to_string(),
    );
    t.insert(
        "runtime".into(),
        format!("[ {} seconds ]", traffic.uptime().as_secs()),
    );
    t.insert(
        "pullThreadPoolQueueSize".into(),
        inner.holds.held_count().to_string(),
    );
    let (put_tps, get_tps) = traffic.tps();
    t.insert("putTps".into(), put_tps);
    t.insert("getTransferredTps".into(), get_tps);
    // No page-cache lock or thread-pool queues here: writes go through one writer thread
    // and requests run as tasks, so these read as RocketMQ's idle values.
    t.insert("pageCacheLockTimeMills".into(), "0".into());
    t.insert(
        "sendThreadPoolQueueSize".into(),
        traffic.sends_in_flight().to_string(),
    );
    t.insert("sendThreadPoolQueueHeadWaitTimeMills".into(), "0".into());
    t.insert("pullThreadPoolQueueHeadWaitTimeMills".into(), "0".into());
    let earliest = store.earliest_commit_log_time().unwrap_or(0);
    t.insert("earliestMessageTimeStamp".into(), earliest.to_string());
    let ratio = crate::store::retention::disk_usage_percent(&store.config().commit_log_dir())
        .unwrap_or(0.0)
        / 100.0;
    t.insert("commitLogDiskRatio".into(), format!("{ratio:.4}"));
    t.insert("brokerActive".into(), "true".into());
    // Replication, for `mqadmin haStatus` (RocketMQ's GET_BROKER_HA_STATUS shows the same).
    let role = inner.role.snapshot();
    t.insert("brokerRole".into(), role.role.to_string());
    // Ours: false while a master started from its config has not confirmed its term.
    t.insert("termConfirmed".into(), role.confirmed.to_string());
    if let Some(why) = inner.term_check.waiting_for().filter(|_| !role.confirmed) {
        t.insert("termUnconfirmedReason".into(), why);
    }
    let max = store.max_phy_offset();
    let slaves = inner.ha.slaves();
    t.insert("haSlaveCount".into(), slaves.len().to_string());
    let mut list: Vec<String> = slaves
        .iter()
        .map(|s| {
            format!(
                "{}:{}:{}:{}",
                s.addr,
                s.acked,
                (max - s.acked).max(0),
                s.last_report.elapsed().as_millis()
            )
        })
        .collect();
    list.sort();
    // address:ackOffset:lagBytes:msSinceReport, comma-separated.
    t.insert("haSlaves".into(), list.join(","));
    if let Some(m) = inner.ha.connected_master() {
        t.insert("haMasterAddress".into(), m);
    }
    // A slave's master as the name servers name it (mqadmin promote switches from it).
    if let Some(m) = inner.ha.master() {
        t.insert("masterAddr".into(), m);
    }
    t.insert("brokerId".into(), role.broker_id.to_string());
    t.insert("brokerName".into(), inner.broker_name());
    t.insert("brokerEpoch".into(), role.epoch.to_string());
    Ok(RemotingCommand::success().with_body(KvTable { table: t }.encode()))
}

pub fn get_config(inner: &Arc<BrokerInner>) -> Response {
    let text = properties_to_text(&inner.current_settings().properties());
    let version = inner.topics.data_version().encode();
    Ok(RemotingCommand::success()
        .with_header(&GetBrokerConfigResponseHeader {
            version: String::from_utf8_lossy(&version).to_string(),
        })
        .with_body(text.into_bytes()))
}

/// Keys that can change at run time (the rest need a restart, as in RocketMQ).
const RUNTIME_KEYS: &[&str] = &[
    "brokerPermission",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "defaultTopicQueueNums",
    "longPollingEnable",
    "shortPollingTimeMills",
    "registerNameServerPeriod",
    "maxTransferBytesOnMessageInMemory",
    "maxTransferCountOnMessageInMemory",
    "channelExpiredTimeout",
    "rejectTransactionMessage",
    "slaveReadEnable",
];

/// UPDATE_BROKER_CONFIG; when it makes the broker read-only, it answers once the sends
/// already past the permission check are done (at most 3 s), so a switchover that reads the
/// master's offset next sees everything it acknowledged.
pub async fn update_config_drained(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let r = update_config(inner, req)?;
    let read_only = !inner.role.snapshot().permission.is_writeable();
    if r.code == ResponseCode::SUCCESS && read_only {
        // A send admitted before the permission changed is counted in flight, so once none
        // is, every acknowledged message is below the offset a switchover reads next.
        let deadline = tokio::time::Instant::now() + DRAIN;
        while inner.traffic.sends_in_flight() > 0 {
            if tokio::time::Instant::now() >= deadline {
                // Saying "done" now would let a switchover cut a send that is still being
                // stored, and acknowledged after: refuse, and let the caller back off.
                return Ok(RemotingCommand::error(
                    ResponseCode::SYSTEM_BUSY,
                    format!(
                        "brokerPermission is read-only now, but {} sends are still being stored after {DRAIN:?}: do not switch over yet",
                        inner.traffic.sends_in_flight()
                    ),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    Ok(r)
}

/// How long a change to read-only waits for the sends in flight.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

pub fn update_config(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let text = String::from_utf8_lossy(&req.body);
    let props = match parse_properties(&text) {
        Ok(p) => p,
        Err(e) => {
            return Ok(RemotingCommand::error(
                ResponseCode::INVALID_PARAMETER,
                e.to_string(),
            ))
        }
    };
    if let Some(k) = props.keys().find(|k| !RUNTIME_KEYS.contains(&k.as_str())) {
        return Ok(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!("config {k} cannot be changed at run time (restart with it in broker.conf)"),
        ));
    }
    // The permission is the role's (a promotion or a fence changes it too); the other keys
    // are settings. All are checked before any is applied.
    let updated = match inner.settings.update(&props) {
        Ok(u) => u,
        Err(e) => {
            return Ok(RemotingCommand::error(
                ResponseCode::INVALID_PARAMETER,
                e.to_string(),
            ))
        }
    };
    let perm_changed = props.contains_key("brokerPermission")
        && inner.role.set_permission(updated.broker.broker_permission);
    tracing::info!(?props, "broker config updated");
    if perm_changed {
        crate::namesrv::register_now(inner);
    }
    Ok(RemotingCommand::success())
}

pub async fn update_group(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let g = SubscriptionGroupConfig::decode(&req.body)?;
    if let Err(e) = rmq_remoting::topic::validate_group(&g.group_name) {
        return Ok(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!("invalid group name `{}`: {e}", g.group_name),
        ));
    }
    let max = super::client::MAX_QUEUE_NUMS;
    if !(0..=max).contains(&g.retry_queue_nums) {
        return Ok(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "retryQueueNums must be in 0..={max}, not {}",
                g.retry_queue_nums
            ),
        ));
    }
    let version = inner.groups.put(g);
    answer_durable(inner.groups.durable(version)).await
}

pub fn all_groups(inner: &Arc<BrokerInner>) -> Response {
    let w = inner.groups.wrapper();
    let n = w.subscription_group_table.len() as i32;
    Ok(RemotingCommand::success()
        .with_header(&GetAllSubscriptionGroupResponseHeader {
            total_group_num: Some(n),
        })
        .with_body(serde_json::to_vec(&w).unwrap_or_default()))
}

pub async fn delete_group(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: DeleteSubscriptionGroupRequestHeader = req.decode_header()?;
    let deleted = inner.groups.delete(&h.group_name);
    if h.clean_offset.unwrap_or(false) {
        inner.offsets.remove_group(&h.group_name);
    }
    match deleted {
        Some(version) => answer_durable(inner.groups.durable(version)).await,
        None => Ok(RemotingCommand::success()),
    }
}

pub fn view_message(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: ViewMessageRequestHeader = req.decode_header()?;
    match inner.store.select_one_message_by_offset(h.offset) {
        Some(rec) => Ok(RemotingCommand::success().with_body(rec)),
        None => Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            format!("can not find message by the offset, {}", h.offset),
        )),
    }
}

pub fn query_message(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: QueryMessageRequestHeader = req.decode_header()?;
    let unique = req
        .ext_fields
        .get("_UNIQUE_KEY_QUERY")
        .map(|v| v == "true")
        .unwrap_or(false);
    // RocketMQ caps a query at maxMsgsNumBatch (64): each hit is a record in the answer.
    let max = if unique {
        32
    } else {
        h.max_num.clamp(1, 64) as usize
    };
    let found =
        inner
            .store
            .query_message(&h.topic, &h.key, max, h.begin_timestamp, h.end_timestamp);
    let header = QueryMessageResponseHeader {
        index_last_update_timestamp: found.index_last_update_timestamp,
        index_last_update_phyoffset: found.index_last_update_phyoffset,
    };
    if found.messages.is_empty() {
        return Ok(RemotingCommand::error(
            ResponseCode::QUERY_NOT_FOUND,
            "can not find message, maybe time range not correct",
        )
        .with_header(&header));
    }
    let mut body = BytesMut::new();
    for m in &found.messages {
        body.extend_from_slice(m);
    }
    Ok(RemotingCommand::success()
        .with_header(&header)
        .with_body(body.freeze()))
}

/// Object-keyed bodies: fastjson's form for Java tools, standard JSON for clients that
/// asked for it (5.x clients parse both).
trait ForRequest {
    fn encode_fastjson_for(&self, req: &RemotingCommand) -> Vec<u8>;
}

impl ForRequest for TopicStatsTable {
    fn encode_fastjson_for(&self, _req: &RemotingCommand) -> Vec<u8> {
        self.encode_fastjson()
    }
}

impl ForRequest for ConsumeStats {
    fn encode_fastjson_for(&self, _req: &RemotingCommand) -> Vec<u8> {
        self.encode_fastjson()
    }
}
