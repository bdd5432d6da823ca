//! Transactional messages, as RocketMQ 4.x/5.x brokers keep them:
//!
//! * A half message (`TRAN_MSG=true`) is stored in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 with its
//!   real topic and queue saved, so no consumer sees it.
//! * END_TRANSACTION commits (the message is written to its real queue) or rolls back; either
//!   way an op message in `RMQ_SYS_TRANS_OP_HALF_TOPIC` (tag `d`, body: the half's queue offset)
//!   records that the half is finished.
//! * A check task looks at halves still open after `transactionTimeOut` and asks a producer of
//!   their group (CHECK_TRANSACTION_STATE); each check re-appends the half with
//!   `TRANSACTION_CHECK_TIMES` + 1, and after `transactionCheckMax` checks it is discarded
//!   with a log line.
//!
//! Everything lives in the store (halves, ops) and the offsets file (how far the checker got),
//! so the state survives a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rmq_remoting::header::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use rmq_remoting::message::{property, sys_flag, MessageExt, Properties};
use rmq_remoting::util::now_millis;
use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;
use crate::manager::topics::{TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};
use crate::store::PutMessage;

/// The internal group under which the checker's progress in the half queue is kept.
pub const CHECK_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Tag of op messages ("delete").
const OP_TAG: &str = "d";

/// Which halves are finished, learnt from the op queue.
#[derive(Default)]
pub struct TransactionState {
    done: Mutex<BTreeSet<i64>>,
    /// How far the op queue has been read.
    op_read: Mutex<i64>,
}

impl TransactionState {
    /// Reads op messages written since the last call (by us, or before a restart).
    fn refresh(&self, inner: &BrokerInner) {
        let store = &inner.store;
        let mut read = self.op_read.lock();
        let max = store.max_offset_in_queue(TRANS_OP_HALF_TOPIC, 0, true);
        let mut off = (*read).max(store.min_offset_in_queue(TRANS_OP_HALF_TOPIC, 0));
        let mut done = self.done.lock();
        while off < max {
            if let Some(m) = store
                .queue_unit(TRANS_OP_HALF_TOPIC, 0, off)
                .and_then(|u| store.look_message_by_offset(u.commit_log_offset))
            {
                for o in String::from_utf8_lossy(&m.body).split(',') {
                    if let Ok(o) = o.trim().parse::<i64>() {
                        done.insert(o);
                    }
                }
            }
            off += 1;
        }
        *read = off;
    }

    fn is_done(&self, half_offset: i64) -> bool {
        self.done.lock().contains(&half_offset)
    }

    /// Forgets finished halves below `offset` (the checker will not look there again).
    fn prune_below(&self, offset: i64) {
        let mut done = self.done.lock();
        *done = done.split_off(&offset);
    }
}

/// Whether a send is a transaction half (`TRAN_MSG=true`, not a retry of a delayed one).
pub fn is_half(props: &Properties, reconsume_times: i32) -> bool {
    let prepared = props
        .get(property::TRANSACTION_PREPARED)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let delayed_retry = reconsume_times > 0
        && props
            .get(property::DELAY_TIME_LEVEL)
            .and_then(|d| d.parse::<i32>().ok())
            .is_some_and(|d| d > 0);
    prepared && !delayed_retry
}

/// Turns a send into its half: real topic and queue saved, the transaction id recorded,
/// system flag back to "not a transaction" so the half queue indexes it.
pub fn to_half(msg: &mut PutMessage) {
    let props = &mut msg.properties;
    props.insert(property::REAL_TOPIC, &msg.topic);
    props.insert(property::REAL_QUEUE_ID, &msg.queue_id.to_string());
    if let Some(uniq) = props
        .get(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
        .map(String::from)
    {
        props.insert_if_absent(property::TRANSACTION_ID, || uniq);
    }
    msg.sys_flag &= !sys_flag::TRANSACTION_ROLLBACK_TYPE;
    msg.topic = TRANS_HALF_TOPIC.into();
    msg.queue_id = 0;
}

/// Records that the half at `half_offset` is finished.
async fn write_op(inner: &Arc<BrokerInner>, half_offset: i64) -> bool {
    let props = Properties::from_iter([
        (property::TAGS, OP_TAG),
        (property::WAIT_STORE_MSG_OK, "false"),
    ]);
    let op = PutMessage {
        topic: TRANS_OP_HALF_TOPIC.into(),
        queue_id: 0,
        flag: 0,
        body: Bytes::from(half_offset.to_string()),
        properties: props,
        sys_flag: 0,
        born_timestamp: now_millis(),
        born_host: inner.store_host,
        store_host: inner.store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: false,
    };
    let ok = inner.store.put_message(op).await.status.is_stored();
    if ok {
        inner.transactions.done.lock().insert(half_offset);
    }
    ok
}

/// END_TRANSACTION (37), usually oneway from the producer.
pub async fn end_transaction(
    inner: &Arc<BrokerInner>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, rmq_remoting::RemotingError> {
    let h: EndTransactionRequestHeader = req.decode_header()?;
    let role = inner.role.snapshot();
    if role.is_slave() {
        return Ok(RemotingCommand::error(
            ResponseCode::SLAVE_NOT_AVAILABLE,
            "the broker is a slave: END_TRANSACTION is forbidden",
        ));
    }
    if role.unconfirmed_master() {
        return Ok(crate::term_check::refusal(inner));
    }
    let commit = match h.commit_or_rollback {
        sys_flag::TRANSACTION_COMMIT_TYPE => true,
        sys_flag::TRANSACTION_ROLLBACK_TYPE => false,
        // "Unknown": the producer does not know yet; the checker will ask again.
        _ => return Ok(RemotingCommand::success()),
    };
    let Some(half) = inner.store.look_message_by_offset(h.commit_log_offset) else {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            "Find prepared transaction message failed",
        ));
    };
    let pgroup = half
        .properties
        .get(property::PRODUCER_GROUP)
        .map(String::as_str);
    if half.topic != TRANS_HALF_TOPIC
        || pgroup != Some(h.producer_group.as_str())
        || half.queue_offset != h.tran_state_table_offset
    {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            format!(
                "the prepared message does not match: group {:?} / {}, queue offset {} / {}",
                pgroup, h.producer_group, half.queue_offset, h.tran_state_table_offset
            ),
        ));
    }
    inner.transactions.refresh(inner);
    if inner.transactions.is_done(half.queue_offset) {
        return Ok(RemotingCommand::success()); // ended already (a repeated answer)
    }
    if commit {
        // The committed message keeps the half's properties as they are (REAL_TOPIC and
        // REAL_QID included), as RocketMQ stores it.
        let (Some(topic), Some(queue_id)) = (
            half.properties.get(property::REAL_TOPIC).cloned(),
            half.properties
                .get(property::REAL_QUEUE_ID)
                .and_then(|q| q.parse::<i32>().ok()),
        ) else {
            return Ok(RemotingCommand::error(
                ResponseCode::SYSTEM_ERROR,
                "the prepared message has no REAL_TOPIC/REAL_QID",
            ));
        };
        let mut msg = PutMessage::copy_of(&half, &half.properties, inner.store_host);
        msg.topic = topic;
        msg.queue_id = queue_id;
        msg.sys_flag = (half.sys_flag & !sys_flag::TRANSACTION_ROLLBACK_TYPE)
            | sys_flag::TRANSACTION_COMMIT_TYPE;
        msg.prepared_transaction_offset = h.commit_log_offset;
        crate::schedule::apply_delay(&mut msg, inner.store.delay_levels().len());
        let r = inner.store.put_message(msg).await;
        if !r.status.is_stored() {
            return Ok(RemotingCommand::error(
                ResponseCode::SYSTEM_ERROR,
                format!("committing the transaction message failed: {:?}", r.status),
            ));
        }
    }
    if !write_op(inner, half.queue_offset).await {
        tracing::warn!(
            offset = half.queue_offset,
            "transaction ended but its op was not stored; it may be checked again"
        );
    }
    tracing::debug!(group = %h.producer_group, commit, offset = half.queue_offset, "transaction ended");
    Ok(RemotingCommand::success())
}

/// One pass of the checker.
async fn check_once(inner: &Arc<BrokerInner>) {
    let (timeout, check_max) = inner
        .settings
        .broker(|b| (b.transaction_time_out as i64, b.transaction_check_max));
    let store = &inner.store;
    let tx = &inner.transactions;
    tx.refresh(inner);
    let committed = inner.offsets.query(CHECK_GROUP, TRANS_HALF_TOPIC, 0);
    let start = committed.max(store.min_offset_in_queue(TRANS_HALF_TOPIC, 0));
    let max = store.max_offset_in_queue(TRANS_HALF_TOPIC, 0, true);
    let mut next = start;
    let mut off = start;
    while off < max {
        let at = off;
        off += 1;
        if tx.is_done(at) {
            if next == at {
                next = at + 1;
            }
            continue;
        }
        let Some(m) = store
            .queue_unit(TRANS_HALF_TOPIC, 0, at)
            .and_then(|u| store.look_message_by_offset(u.commit_log_offset))
        else {
            if next == at {
                next = at + 1; // gone with retention
            }
            continue;
        };
        // Both come from the producer: an immunity whose milliseconds overflow is as good as
        // none (the default applies), and a born time of i64::MIN is simply old.
        let immunity = m
            .properties
            .get(property::CHECK_IMMUNITY_TIME_IN_SECONDS)
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| s.checked_mul(1000))
            .unwrap_or(timeout);
        if now_millis().saturating_sub(m.born_timestamp) < immunity {
            break; // later halves are younger still
        }
        let checks: i32 = m
            .properties
            .get(property::TRANSACTION_CHECK_TIMES)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if checks >= check_max {
            tracing::warn!(
                msg_id = ?m.uniq_key(),
                group = ?m.properties.get(property::PRODUCER_GROUP),
                checks,
                "transaction message discarded: still unknown after transactionCheckMax checks"
            );
            write_op(inner, at).await;
            if next == at {
                next = at + 1;
            }
            continue;
        }
        // Re-append with one more check counted; the copy is what the producer answers about.
        let mut props = m.properties.clone();
        props.insert(
            property::TRANSACTION_CHECK_TIMES.into(),
            (checks + 1).to_string(),
        );
        let copy = PutMessage::copy_of(&m, &props, inner.store_host);
        let r = store.put_message(copy).await;
        let Some(append) = r.append.filter(|_| r.status.is_stored()) else {
            tracing::warn!(status = ?r.status, "cannot re-append a transaction half; checking later");
            break;
        };
        write_op(inner, at).await;
        if next == at {
            next = at + 1;
        }
        send_check(inner, &m, append.wrote_offset, append.logics_offset).await;
    }
    if next != committed {
        inner.offsets.commit(CHECK_GROUP, TRANS_HALF_TOPIC, 0, next);
        tx.prune_below(next);
    }
}

/// CHECK_TRANSACTION_STATE to one producer of the half's group, about the copy at
/// (`commit_log_offset`, `queue_offset`).
async fn send_check(
    inner: &Arc<BrokerInner>,
    m: &MessageExt,
    commit_log_offset: i64,
    queue_offset: i64,
) {
    let Some(group) = m.properties.get(property::PRODUCER_GROUP) else {
        return;
    };
    let channels = inner.clients.producer_channels(group);
    let Some(ch) = channels.first() else {
        tracing::info!(group, msg_id = ?m.uniq_key(), "no producer of the group online to check a transaction");
        return;
    };
    let Some(body) = inner.store.select_one_message_by_offset(commit_log_offset) else {
        return;
    };
    let header = CheckTransactionStateRequestHeader {
        topic: m.properties.get(property::REAL_TOPIC).cloned(),
        tran_state_table_offset: queue_offset,
        commit_log_offset,
        msg_id: m.uniq_key().map(String::from),
        transaction_id: m
            .properties
            .get(property::TRANSACTION_ID)
            .cloned()
            .or_else(|| m.uniq_key().map(String::from)),
        offset_msg_id: Some(rmq_remoting::message::encode_offset_msg_id(
            inner.store_host,
            commit_log_offset,
        )),
    };
    let cmd = RemotingCommand::request_with_header(RequestCode::CHECK_TRANSACTION_STATE, &header)
        .with_body(body);
    if let Err(e) = ch.conn.invoke_oneway(cmd).await {
        tracing::debug!(group, error = %e, "transaction check not sent");
    }
}

/// The checker: every `transactionCheckInterval` until `stop`.
pub async fn run(inner: Arc<BrokerInner>, stop: CancellationToken) {
    loop {
        let interval = Duration::from_millis(
            inner
                .settings
                .broker(|b| b.transaction_check_interval)
                .max(100),
        );
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        check_once(&inner).await;
    }
}
