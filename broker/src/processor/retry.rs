//! Consumer retries and dead letters (RocketMQ's `consumerSendMsgBack` and `handleRetryAndDLQ`):
//! a message a consumer failed goes to `%RETRY%<group>` with a growing delay level, keeping its
//! id, keys and properties, until it has been reconsumed `maxReconsumeTimes` times; then it goes
//! to `%DLQ%<group>`.

use std::sync::Arc;

use rand::Rng;
use rmq_remoting::header::ConsumerSendMsgBackRequestHeader;
use rmq_remoting::message::property;
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::topic::{DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};
use rmq_remoting::{Connection, RemotingCommand, ResponseCode};

use super::Response;
use crate::broker::BrokerInner;
use crate::store::{PutMessage, PutStatus};

/// Dead-letter queues per group, as RocketMQ's `DLQ_NUMS_PER_GROUP`.
const DLQ_QUEUES: i32 = 1;

/// The group's dead-letter topic, created (1 queue, read-write) if missing.
pub fn dlq_topic(inner: &Arc<BrokerInner>, group: &str) -> String {
    let topic = format!("{DLQ_GROUP_TOPIC_PREFIX}{group}");
    if !inner.topics.contains(&topic) {
        inner
            .topics
            .create_if_missing(&topic, DLQ_QUEUES, perm::READ | perm::WRITE);
        crate::namesrv::register_topics_soon(inner, [topic.clone()]);
    }
    topic
}

fn not_writable(inner: &BrokerInner) -> Option<RemotingCommand> {
    let role = inner.role.snapshot();
    if role.unconfirmed_master() {
        return Some(crate::term_check::refusal(inner));
    }
    (!role.writable()).then(|| {
        RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!(
                "the broker[{}] sending message is forbidden",
                inner.broker_addr
            ),
        )
    })
}

/// CONSUMER_SEND_MSG_BACK (36).
pub async fn consumer_send_msg_back(
    inner: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Response {
    let h: ConsumerSendMsgBackRequestHeader = req.decode_header()?;
    // The group names the retry and dead-letter topics: it must make valid topic names.
    if let Err(e) =
        rmq_remoting::topic::validate_topic(&format!("{RETRY_GROUP_TOPIC_PREFIX}{}", h.group))
    {
        return Ok(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "consumer group {:?} cannot name a retry topic: {e}",
                h.group
            ),
        ));
    }
    let auto_create = inner.settings.broker(|b| b.auto_create_subscription_group);
    let group = match inner.groups.find_or_create(&h.group, auto_create) {
        Ok(g) => g,
        Err(why) => {
            return Ok(RemotingCommand::error(
                ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!(
                    "subscription group not exist, {} ({why}) see https://rocketmq.apache.org/docs/bestPractice/06FAQ",
                    h.group
                ),
            ))
        }
    };
    if let Some(refused) = not_writable(inner) {
        return Ok(refused);
    }
    if group.retry_queue_nums <= 0 {
        // RocketMQ drops the message for a group without retry queues.
        return Ok(RemotingCommand::success());
    }
    let Some(mut msg) = inner.store.look_message_by_offset(h.offset) else {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            format!("look message by offset failed, {}", h.offset),
        ));
    };
    msg.properties
        .entry(property::RETRY_TOPIC.to_string())
        .or_insert_with(|| msg.topic.clone());
    // The client's own limit wins (clients since 3.4.9 send it), as RocketMQ takes it;
    // else the group's.
    let max_reconsume = h
        .max_reconsume_times
        .filter(|_| req.version >= rmq_remoting::code::version::V3_4_9)
        .unwrap_or(group.retry_max_times);
    let origin_msg_id = msg
        .properties
        .get(property::ORIGIN_MESSAGE_ID)
        .filter(|id| !id.is_empty())
        .cloned()
        .or_else(|| h.origin_msg_id.clone().filter(|id| !id.is_empty()))
        .unwrap_or_else(|| msg.offset_msg_id());
    let (topic, queue_id) = if msg.reconsume_times >= max_reconsume || h.delay_level < 0 {
        msg.properties.remove(property::DELAY_TIME_LEVEL);
        msg.properties
            .insert(property::DLQ_ORIGIN_TOPIC.into(), msg.topic.clone());
        msg.properties.insert(
            property::DLQ_ORIGIN_MESSAGE_ID.into(),
            origin_msg_id.clone(),
        );
        tracing::info!(group = %h.group, msg_id = %origin_msg_id, reconsume = msg.reconsume_times, "message moved to the dead-letter queue");
        (
            dlq_topic(inner, &h.group),
            rand::thread_rng().gen_range(0..DLQ_QUEUES),
        )
    } else {
        let level = if h.delay_level == 0 {
            3 + msg.reconsume_times
        } else {
            h.delay_level
        };
        msg.properties
            .insert(property::DELAY_TIME_LEVEL.into(), level.to_string());
        let topic = format!("{RETRY_GROUP_TOPIC_PREFIX}{}", h.group);
        let queues = group.retry_queue_nums.min(super::client::MAX_QUEUE_NUMS);
        inner
            .topics
            .create_if_missing(&topic, queues, perm::READ | perm::WRITE);
        (topic, rand::thread_rng().gen_range(0..queues))
    };
    msg.properties
        .insert(property::ORIGIN_MESSAGE_ID.into(), origin_msg_id);
    msg.properties
        .insert(property::WAIT_STORE_MSG_OK.into(), "false".into());
    let mut put = PutMessage {
        topic,
        queue_id,
        reconsume_times: msg.reconsume_times + 1,
        ..PutMessage::copy_of(&msg, &msg.properties, inner.store_host)
    };
    crate::schedule::apply_delay(&mut put, inner.store.delay_levels().len());
    let r = inner.store.put_message(put).await;
    if r.status.is_stored() {
        return Ok(RemotingCommand::success());
    }
    let remark = match r.status {
        PutStatus::ServiceNotAvailable(s)
        | PutStatus::MessageIllegal(s)
        | PutStatus::CreateMappedFileFailed(s)
        | PutStatus::UnknownError(s) => s,
        other => format!("{other:?}"),
    };
    tracing::warn!(group = %h.group, peer = %conn.peer_addr(), %remark, "send back failed");
    Ok(RemotingCommand::error(ResponseCode::SYSTEM_ERROR, remark))
}

/// A client sending straight to `%RETRY%<group>` (its fallback when send-back fails): past
/// its limit the message goes to the dead-letter queue instead. The limit is the one the
/// client put in the header (`header_max`, clients since 3.4.9), else the group's, as
/// RocketMQ's `handleRetryAndDLQ` decides. The error is the response to refuse the send with.
pub fn route_direct_retry(
    inner: &Arc<BrokerInner>,
    msg: &mut PutMessage,
    header_max: Option<i32>,
) -> Result<(), super::Refusal> {
    let Some(group) = msg.topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) else {
        return Ok(());
    };
    let group = group.to_string();
    let Some(cfg) = inner.groups.get(&group) else {
        return Err(super::Refusal::new(
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group not exist, {group}"),
        ));
    };
    let max = header_max.unwrap_or(cfg.retry_max_times);
    if msg.reconsume_times >= max {
        msg.properties.remove(property::DELAY_TIME_LEVEL);
        msg.topic = dlq_topic(inner, &group);
        msg.queue_id = 0;
    }
    Ok(())
}
