//! PULL_MESSAGE: subscription and permission checks, tag filtering by hash, long polling, and
//! RocketMQ's status mapping (PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY, PULL_OFFSET_MOVED).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rmq_remoting::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use rmq_remoting::protocol::heartbeat::{MessageModel, SubscriptionData};
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::util::java_hash_code;
use rmq_remoting::{Connection, RemotingCommand, ResponseCode};

use super::Response;
use crate::broker::BrokerInner;
use crate::store::{GetStatus, MessageFilter};

/// Pull flags (`PullSysFlag`).
const FLAG_COMMIT_OFFSET: i32 = 0x1;
const FLAG_SUSPEND: i32 = 0x2;
const FLAG_SUBSCRIPTION: i32 = 0x4;

/// Whether a pull reads so far behind the newest data that it no longer sits in memory, as
/// RocketMQ judges it (then a slave is suggested for the next pull).
fn behind_beyond_memory(inner: &BrokerInner, result: &crate::store::GetResult) -> bool {
    let Some(last) = result.messages.last() else {
        return false;
    };
    last.get(28..36)
        .and_then(|b| b.try_into().ok())
        .is_some_and(|b| inner.store.is_beyond_memory(i64::from_be_bytes(b)))
}

/// Filters by the tag hash codes of a subscription (`*` or none: everything).
pub struct TagFilter {
    codes: Option<Vec<i64>>,
}

impl TagFilter {
    /// The codes are hashed here from the expression rather than taken from the client's
    /// `codeSet` (used only when the expression names no tag): clients get it wrong (the C++
    /// client sends `[0,0]`, rocketmq-client-rust 1.0 hashes the untrimmed `"A "` and `" C"`).
    pub fn from_subscription(sub: &SubscriptionData) -> TagFilter {
        let expr = sub.sub_string.trim();
        if expr.is_empty() || expr == "*" {
            return TagFilter { codes: None };
        }
        // Hashed from the expression's slices: no tag strings are allocated per pull.
        let mut codes: Vec<i64> = expr
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| java_hash_code(t) as i64)
            .collect();
        if codes.is_empty() {
            codes = sub.code_set.iter().map(|c| *c as i64).collect();
        }
        TagFilter { codes: Some(codes) }
    }
}

impl MessageFilter for TagFilter {
    fn matches_tags_code(&self, code: i64) -> bool {
        match &self.codes {
            None => true,
            Some(codes) => codes.contains(&code),
        }
    }
}

/// `"TagA || TagB"` → tags.
pub fn parse_tags(expr: &str) -> Vec<String> {
    expr.split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// A subscription sent inline with the pull (PullSysFlag SUBSCRIPTION).
fn inline_subscription(h: &PullMessageRequestHeader) -> SubscriptionData {
    let sub_string = h.subscription.clone().unwrap_or_else(|| "*".into());
    let tags = if sub_string.trim() == "*" {
        vec![]
    } else {
        parse_tags(&sub_string)
    };
    SubscriptionData {
        topic: h.topic.clone(),
        code_set: tags.iter().map(|t| java_hash_code(t)).collect(),
        tags_set: tags,
        sub_string,
        sub_version: h.sub_version,
        expression_type: h.expression_type.clone().unwrap_or_else(|| "TAG".into()),
        ..Default::default()
    }
}

pub async fn pull(inner: &Arc<BrokerInner>, conn: &Connection, req: &RemotingCommand) -> Response {
    let h: PullMessageRequestHeader = req.decode_header()?;
    let resp = match pull_once(inner, &h, true).await? {
        PullOutcome::Done(r) => return Ok(r),
        PullOutcome::Suspend(r) => r,
    };
    // Nothing yet: hold the request until a message reaches the queue or time runs out.
    let (long_polling, short) = inner
        .settings
        .broker(|b| (b.long_polling_enable, b.short_polling_time_mills));
    let wait = if long_polling {
        h.suspend_timeout_millis.max(0) as u64
    } else {
        short
    };
    let woken = inner.holds.hold(&h.topic, h.queue_id, h.queue_offset);
    // Re-check after registering: a message may have arrived in between.
    if inner.store.max_offset_in_queue(&h.topic, h.queue_id, true) <= h.queue_offset {
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_millis(wait), woken) => {}
            // Nobody is left to answer: a pull suspended for i64::MAX ms on a quiet queue
            // kept its task and request for good once its client went away.
            _ = conn.closed() => return Ok(resp),
        }
    }
    match pull_once(inner, &h, false).await? {
        PullOutcome::Done(r) => Ok(r),
        PullOutcome::Suspend(_) => Ok(resp),
    }
}

enum PullOutcome {
    Done(RemotingCommand),
    /// PULL_NOT_FOUND that may be held (the response to send if nothing arrives).
    Suspend(RemotingCommand),
}

async fn pull_once(
    inner: &Arc<BrokerInner>,
    h: &PullMessageRequestHeader,
    allow_suspend: bool,
) -> Result<PullOutcome, rmq_remoting::RemotingError> {
    let done = |r: RemotingCommand| Ok(PullOutcome::Done(r));
    let role = inner.role.snapshot();
    let (broker_perm, is_slave) = (role.permission, role.is_slave());
    let (auto_group, max_count, max_bytes) = inner.settings.broker(|b| {
        (
            b.auto_create_subscription_group,
            b.max_transfer_count_on_message_in_memory,
            b.max_transfer_bytes_on_message_in_memory,
        )
    });
    if !broker_perm.is_readable() {
        return done(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!(
                "the broker[{}] pulling message is forbidden",
                inner.broker_addr
            ),
        ));
    }
    let Some(group) = inner.groups.find_or_create(&h.consumer_group, auto_group) else {
        return done(RemotingCommand::error(
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{}] does not exist", h.consumer_group),
        ));
    };
    if !group.consume_enable {
        return done(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!("subscription group no permission, {}", h.consumer_group),
        ));
    }
    let Some(topic) = inner.topics.get(&h.topic) else {
        return done(RemotingCommand::error(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please!", h.topic),
        ));
    };
    if !perm::is_readable(topic.perm) {
        return done(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        ));
    }
    if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
        return done(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, topic.read_queue_nums
            ),
        ));
    }
    let sub = if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
        inline_subscription(h)
    } else {
        let Some(info) = inner.clients.consumer_group(&h.consumer_group) else {
            return done(RemotingCommand::error(
                ResponseCode::SUBSCRIPTION_NOT_EXIST,
                format!(
                    "the consumer's group info not exist, group: {}",
                    h.consumer_group
                ),
            ));
        };
        if info.message_model == MessageModel::Broadcasting && !group.consume_broadcast_enable {
            return done(RemotingCommand::error(
                ResponseCode::NO_PERMISSION,
                format!(
                    "the consumer group[{}] can not consume by broadcast way",
                    h.consumer_group
                ),
            ));
        }
        let Some(sub) = info.subscriptions.get(&h.topic).cloned() else {
            return done(RemotingCommand::error(
                ResponseCode::SUBSCRIPTION_NOT_EXIST,
                format!(
                    "the consumer's subscription not exist, group: {}, topic: {}",
                    h.consumer_group, h.topic
                ),
            ));
        };
        if sub.sub_version < h.sub_version {
            return done(RemotingCommand::error(
                ResponseCode::SUBSCRIPTION_NOT_LATEST,
                "the consumer's subscription not latest",
            ));
        }
        sub
    };
    let sql = if sub.expression_type.eq_ignore_ascii_case("SQL92") {
        if !inner.settings.broker(|b| b.enable_property_filter) {
            return done(RemotingCommand::error(
                ResponseCode::SYSTEM_ERROR,
                "The broker does not support consumer to filter message by SQL92",
            ));
        }
        match inner.sql_filters.get(&sub.sub_string) {
            Ok(f) => Some(crate::filter::SqlMessageFilter(f)),
            Err(e) => {
                tracing::warn!(group = %h.consumer_group, topic = %h.topic, error = %e, "bad SQL92 subscription");
                return done(RemotingCommand::error(
                    ResponseCode::SUBSCRIPTION_PARSE_FAILED,
                    "Parse the consumer's subscription failed",
                ));
            }
        }
    } else if !sub.expression_type.is_empty() && !sub.expression_type.eq_ignore_ascii_case("TAG") {
        return done(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            format!(
                "The broker does not support consumer to filter message by {}",
                sub.expression_type
            ),
        ));
    } else {
        None
    };
    if allow_suspend {
        inner
            .metrics
            .pulls
            .with_label_values(&[h.consumer_group.as_str()])
            .inc();
    }
    let tags = TagFilter::from_subscription(&sub);
    let filter: &dyn MessageFilter = match &sql {
        Some(f) => f,
        None => &tags,
    };
    let count = (h.max_msg_nums.max(1) as usize).min(max_count.max(1));
    let result = inner.store.get_messages(
        &h.topic,
        h.queue_id,
        h.queue_offset,
        count,
        max_bytes,
        Some(filter),
    );
    let (code, remark) = match result.status {
        GetStatus::Found => (ResponseCode::SUCCESS, None),
        GetStatus::NoMatchedMessage | GetStatus::MessageWasRemoving => {
            (ResponseCode::PULL_RETRY_IMMEDIATELY, None)
        }
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => {
            if h.queue_offset != 0 {
                (
                    ResponseCode::PULL_OFFSET_MOVED,
                    Some("the queue has no message, offset moved".to_string()),
                )
            } else {
                (ResponseCode::PULL_NOT_FOUND, None)
            }
        }
        GetStatus::OffsetFoundNull | GetStatus::OffsetOverflowOne => {
            (ResponseCode::PULL_NOT_FOUND, None)
        }
        GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => {
            (ResponseCode::PULL_OFFSET_MOVED, None)
        }
    };
    // Where the client should pull next (RocketMQ's suggestWhichBrokerId): with
    // slaveReadEnable, a consumer this far behind is sent to a slave (the data it needs has
    // left the master's page cache); a slave sends consumers back to a connected master
    // unless slave reads are allowed, and serves them when the master is gone.
    let slave_read = inner.settings.broker(|b| b.slave_read_enable);
    let mut code = code;
    let suggest = if is_slave {
        let master_up = inner.ha.connected_master().is_some();
        if !slave_read && master_up && code == ResponseCode::SUCCESS {
            code = ResponseCode::PULL_RETRY_IMMEDIATELY;
            0
        } else if master_up {
            0
        } else {
            group.broker_id.max(1)
        }
    } else if slave_read && behind_beyond_memory(inner, &result) {
        group.which_broker_when_consume_slowly
    } else {
        group.broker_id
    };
    let header = PullMessageResponseHeader {
        suggest_which_broker_id: suggest,
        next_begin_offset: result.next_begin_offset,
        min_offset: result.min_offset,
        max_offset: result.max_offset,
        offset_delta: None,
        topic_sys_flag: Some(topic.topic_sys_flag),
        group_sys_flag: Some(group.group_sys_flag),
        forbidden_type: None,
    };
    let mut resp = RemotingCommand::response(code, remark).with_header(&header);
    if code == ResponseCode::SUCCESS {
        let mut body = BytesMut::with_capacity(result.total_bytes);
        for m in &result.messages {
            body.extend_from_slice(m);
        }
        inner.traffic.delivered(result.messages.len() as u64);
        let labels = [h.topic.as_str(), h.consumer_group.as_str()];
        inner
            .metrics
            .messages_out
            .with_label_values(&labels)
            .inc_by(result.messages.len() as u64);
        inner
            .metrics
            .bytes_out
            .with_label_values(&labels)
            .inc_by(result.total_bytes as u64);
        resp = resp.with_body(body.freeze());
    }
    // The consumer's progress rides along with its pulls.
    if allow_suspend && h.sys_flag & FLAG_COMMIT_OFFSET != 0 && !is_slave {
        inner
            .offsets
            .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
    }
    if code == ResponseCode::PULL_NOT_FOUND && allow_suspend && h.sys_flag & FLAG_SUSPEND != 0 {
        return Ok(PullOutcome::Suspend(resp));
    }
    Ok(PullOutcome::Done(resp))
}
