//! LOCK_BATCH_MQ and UNLOCK_BATCH_MQ: queue locks for orderly consumers.

use std::sync::Arc;
use std::time::Duration;

use rmq_remoting::protocol::heartbeat::{LockBatchRequestBody, LockBatchResponseBody};
use rmq_remoting::{JsonBody, RemotingCommand};

use super::Response;
use crate::broker::BrokerInner;

fn max_live(inner: &BrokerInner) -> Duration {
    Duration::from_millis(inner.settings.broker(|b| b.rebalance_lock_max_live_time))
}

/// LOCK_BATCH_MQ (41): the body lists the queues wanted; the answer, those now held.
pub fn lock_batch(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let body = LockBatchRequestBody::decode(&req.body)?;
    let granted = inner.locks.try_lock_batch(
        &body.consumer_group,
        &body.mq_set,
        &body.client_id,
        max_live(inner),
    );
    let resp = LockBatchResponseBody {
        lock_ok_mq_set: granted,
    };
    Ok(RemotingCommand::success().with_body(resp.encode()))
}

/// UNLOCK_BATCH_MQ (42).
pub fn unlock_batch(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let body = LockBatchRequestBody::decode(&req.body)?;
    inner
        .locks
        .unlock_batch(&body.consumer_group, &body.mq_set, &body.client_id);
    Ok(RemotingCommand::success())
}
