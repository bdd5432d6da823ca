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
    // Unknown group on this queue. RocketMQ answers 0 only when the queue starts at 0 and its
    // first message is no longer in memory; ours is mapped, so the answer is "not found" and
    // the client applies its consumeFromWhere.
    Ok(RemotingCommand::error(
        ResponseCode::QUERY_NOT_FOUND,
        "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
    ))
}

pub fn update_consumer_offset(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: UpdateConsumerOffsetRequestHeader = req.decode_header()?;
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
