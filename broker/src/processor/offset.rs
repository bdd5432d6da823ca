//! Consumer offsets and queue offsets: QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET,
//! GET_EARLIEST_MSG_STORETIME, SEARCH_OFFSET_BY_TIMESTAMP.

use std::sync::Arc;

use rmq_remoting::header::*;
use rmq_remoting::{RemotingCommand, ResponseCode};

use super::Response;
use crate::broker::BrokerInner;

pub fn query_consumer_offset(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: QueryConsumerOffsetRequestHeader = req.decode_header()?;
    let offset = inner.offsets.query(&h.consumer_group, &h.topic, h.queue_id);
    if offset >= 0 {
        return Ok(
            RemotingCommand::success().with_header(&QueryConsumerOffsetResponseHeader { offset })
        );
    }
    // No offset committed for this group on this queue. As RocketMQ: a client that asks for
    // "not found" (5.x `setZeroIfNotFound=false`) gets it; otherwise a queue that starts at 0
    // and whose first message is still in memory (or that is empty) is consumed from 0, so a
    // consumer started with the first producer of a new topic misses nothing; otherwise "not
    // found", and the client applies its consumeFromWhere.
    if h.set_zero_if_not_found == Some(false) {
        return Ok(RemotingCommand::error(
            ResponseCode::QUERY_NOT_FOUND,
            "Not found, do not set to zero, maybe this group boot first",
        ));
    }
    let store = &inner.store;
    if store.min_offset_in_queue(&h.topic, h.queue_id) <= 0
        && !store.is_beyond_memory_at(&h.topic, h.queue_id, 0)
    {
        return Ok(RemotingCommand::success()
            .with_header(&QueryConsumerOffsetResponseHeader { offset: 0 }));
    }
    Ok(RemotingCommand::error(
        ResponseCode::QUERY_NOT_FOUND,
        "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
    ))
}

pub fn update_consumer_offset(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: UpdateConsumerOffsetRequestHeader = req.decode_header()?;
    // As RocketMQ 5: offsets only for a group and a topic the broker has (the group created
    // as a pull would, within the limits). An offset table keyed by whatever names arrive
    // grows without bound and ends up in every GET_ALL_CONSUMER_OFFSET.
    if let Err(e) = rmq_remoting::topic::validate_group(&h.consumer_group) {
        return Ok(RemotingCommand::error(ResponseCode::INVALID_PARAMETER, e));
    }
    let auto_group = inner.settings.broker(|b| b.auto_create_subscription_group);
    if let Err(why) = inner.groups.find_or_create(&h.consumer_group, auto_group) {
        return Ok(RemotingCommand::error(
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("Group {} not exist! ({why})", h.consumer_group),
        ));
    }
    if !inner.topics.contains(&h.topic) {
        return Ok(RemotingCommand::error(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("Topic {} not exist!", h.topic),
        ));
    }
    if !(0..=crate::store::message_store::MAX_QUEUE_ID).contains(&h.queue_id) {
        return Ok(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!("queue id {} of topic {}", h.queue_id, h.topic),
        ));
    }
    if inner.role.is_slave() {
        inner.ha.note_offset_committed();
    }
    inner
        .offsets
        .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
    Ok(RemotingCommand::success())
}

pub fn max_offset(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: GetMaxOffsetRequestHeader = req.decode_header()?;
    let offset = inner
        .store
        .max_offset_in_queue(&h.topic, h.queue_id, h.committed.unwrap_or(true));
    Ok(RemotingCommand::success().with_header(&GetMaxOffsetResponseHeader { offset }))
}

pub fn min_offset(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: GetMinOffsetRequestHeader = req.decode_header()?;
    let offset = inner.store.min_offset_in_queue(&h.topic, h.queue_id);
    Ok(RemotingCommand::success().with_header(&GetMinOffsetResponseHeader { offset }))
}

pub fn earliest_time(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: GetEarliestMsgStoretimeRequestHeader = req.decode_header()?;
    let timestamp = inner
        .store
        .earliest_message_time(&h.topic, h.queue_id)
        .unwrap_or(-1);
    Ok(
        RemotingCommand::success()
            .with_header(&GetEarliestMsgStoretimeResponseHeader { timestamp }),
    )
}

pub fn search_by_time(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: SearchOffsetRequestHeader = req.decode_header()?;
    let upper = h
        .boundary_type
        .as_deref()
        .map(|b| b.eq_ignore_ascii_case("upper"))
        .unwrap_or(false);
    let offset = inner
        .store
        .offset_in_queue_by_time(&h.topic, h.queue_id, h.timestamp, upper);
    Ok(RemotingCommand::success().with_header(&SearchOffsetResponseHeader { offset }))
}

/// INVOKE_BROKER_TO_RESET_OFFSET (222), `mqadmin resetOffsetByTime`: every queue of the topic
/// back (or, with `isForce`, also forward) to the first message stored at or after
/// `timestamp` (-1: the newest offset). The broker commits the new offsets itself and tells
/// the group's online consumers (RESET_CONSUMER_CLIENT_OFFSET) so they drop what they hold.
/// RocketMQ answers CONSUMER_NOT_ONLINE when nobody is connected and leaves the commit to
/// the tool; here the reset is done either way.
pub fn reset_offset(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    use rmq_remoting::protocol::admin::ResetOffsetBody;
    use rmq_remoting::protocol::heartbeat::MessageQueue;
    use rmq_remoting::RequestCode;

    let h: ResetOffsetRequestHeader = req.decode_header()?;
    let Some(tc) = inner.topics.get(&h.topic) else {
        return Ok(RemotingCommand::error(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist", h.topic),
        ));
    };
    let broker_name = inner.broker_name();
    let mut body = ResetOffsetBody::default();
    for q in 0..tc.write_queue_nums.max(tc.read_queue_nums) {
        let current = inner.offsets.query(&h.group, &h.topic, q);
        let target = if h.timestamp == -1 {
            inner.store.max_offset_in_queue(&h.topic, q, true)
        } else {
            inner
                .store
                .offset_in_queue_by_time(&h.topic, q, h.timestamp, false)
        }
        .max(0);
        let offset = if h.is_force || current < 0 || target < current {
            target
        } else {
            current
        };
        inner.offsets.commit(&h.group, &h.topic, q, offset);
        body.offset_table.insert(
            MessageQueue {
                topic: h.topic.clone(),
                broker_name: broker_name.clone(),
                queue_id: q,
            },
            offset,
        );
    }
    let encoded = body.encode_fastjson();
    for conn in inner.clients.consumer_connections(&h.group) {
        let cmd =
            RemotingCommand::request_with_header(RequestCode::RESET_CONSUMER_CLIENT_OFFSET, &h)
                .with_body(encoded.clone());
        tokio::spawn(async move {
            if let Err(e) = conn.invoke_oneway(cmd).await {
                tracing::debug!(peer = %conn.peer_addr(), error = %e, "reset-offset notice not sent");
            }
        });
    }
    tracing::info!(group = %h.group, topic = %h.topic, timestamp = h.timestamp, force = h.is_force, "consumer offsets reset");
    Ok(RemotingCommand::success().with_body(encoded))
}
