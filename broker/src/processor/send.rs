//! SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE: checks with RocketMQ's response codes,
//! topic auto-creation, and the store put.
//!
//! A send goes through its steps in order: [`SendSettings`] (one look at the broker's settings),
//! [`check_topic`], [`resolve_topic`], [`choose_queue`], [`messages`] (the properties string is
//! parsed once into [`Properties`]; retry, half and delay routing edit that, and the record is
//! encoded once, by the store), [`append`] and [`answer`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rmq_remoting::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use rmq_remoting::message::{decode_batch, property, sys_flag, Properties};
use rmq_remoting::protocol::topic::{perm, TopicConfig};
use rmq_remoting::topic::RETRY_GROUP_TOPIC_PREFIX;
use rmq_remoting::{Connection, RemotingCommand, RequestCode, ResponseCode};

use super::{Refusal, Response};
use crate::broker::BrokerInner;
use crate::manager::topics::is_not_allowed_send_topic;
use crate::store::{AppendResult, PutMessage, PutStatus};

fn decode_header(
    req: &RemotingCommand,
) -> Result<SendMessageRequestHeader, rmq_remoting::RemotingError> {
    // V2 headers use one-letter keys; batches come either way.
    if req.code == RequestCode::SEND_MESSAGE_V2 || req.ext_fields.contains_key("a") {
        Ok(req.decode_header::<SendMessageRequestHeaderV2>()?.into_v1())
    } else {
        req.decode_header()
    }
}

/// What a send needs of the broker's settings, read once (the role can change at run time).
struct SendSettings {
    writable: bool,
    /// A master whose term is not confirmed yet (started from a config that may be stale).
    unconfirmed: bool,
    auto_create: bool,
    cluster: String,
    broker_name: String,
    reject_transactions: bool,
    sync_master: bool,
    slave_timeout: Duration,
}

impl SendSettings {
    fn read(inner: &BrokerInner) -> SendSettings {
        let role = inner.role.snapshot();
        // Only the fields a send needs: every send reads them.
        inner.settings.read(|s| SendSettings {
            writable: role.writable(),
            unconfirmed: role.unconfirmed_master(),
            auto_create: s.broker.auto_create_topic_enable,
            cluster: s.broker.broker_cluster_name.clone(),
            broker_name: s.broker.broker_name.clone(),
            reject_transactions: s.broker.reject_transaction_message,
            sync_master: role.sync_master(),
            slave_timeout: Duration::from_millis(s.store.sync_flush_timeout.max(1)),
        })
    }
}

pub async fn send(inner: &Arc<BrokerInner>, conn: &Connection, req: &RemotingCommand) -> Response {
    let mut h = decode_header(req)?;
    // Back-pressure: too many sends in flight is SYSTEM_BUSY, which clients retry.
    let Some(_permit) = inner.traffic.admit_send() else {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_BUSY,
            "[REJECTREQUEST]system busy, start flow control for a while",
        ));
    };
    let settings = SendSettings::read(inner);
    if settings.unconfirmed {
        return Ok(crate::term_check::refusal(inner));
    }
    if !settings.writable {
        return Ok(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!(
                "the broker[{}] sending message is forbidden",
                inner.broker_addr
            ),
        ));
    }
    if let Err(refused) = check_topic(&h.topic) {
        return Ok(refused.into());
    }
    // As RocketMQ's msgContentCheck, and before any parsing: a record holds at most i16::MAX
    // bytes of properties.
    let props_len = h.properties.as_ref().map_or(0, String::len);
    if props_len > i16::MAX as usize {
        return Ok(RemotingCommand::error(
            ResponseCode::MESSAGE_ILLEGAL,
            format!("the message properties are {props_len} bytes, more than 32767"),
        ));
    }
    let topic_config = match resolve_topic(inner, &h, settings.auto_create) {
        Ok(tc) => tc,
        Err(refused) => return Ok(refused.into()),
    };
    let queue_id = match choose_queue(&topic_config, &h, conn) {
        Ok(q) => q,
        Err(refused) => return Ok(refused.into()),
    };
    // The properties string is moved out of the header, parsed and edited in place.
    let props = Properties::from_string(h.properties.take().unwrap_or_default());
    let msgs = match messages(inner, req, &h, props, queue_id, &settings, conn) {
        Ok(msgs) => msgs,
        Err(refused) => return Ok(refused.into()),
    };
    let append = match append(inner, &h.topic, msgs).await {
        Ok(done) => done,
        Err(refused) => return Ok(refused.into()),
    };
    Ok(answer(inner, &settings, append, queue_id).await)
}

/// Topic name rules and the topics nobody may send to.
fn check_topic(topic: &str) -> Result<(), Refusal> {
    if let Err(e) = rmq_remoting::topic::validate_topic(topic) {
        let code = if topic.len() > rmq_remoting::topic::TOPIC_MAX_LENGTH
            && rmq_remoting::topic::has_only_legal_characters(topic)
        {
            ResponseCode::MESSAGE_ILLEGAL
        } else {
            ResponseCode::INVALID_PARAMETER
        };
        return Err(Refusal::new(code, e));
    }
    if is_not_allowed_send_topic(topic) {
        return Err(Refusal::new(
            ResponseCode::NO_PERMISSION,
            format!("Sending message to topic[{topic}] is forbidden."),
        ));
    }
    Ok(())
}

/// The topic's config, auto-created from `defaultTopic` (or, for retry and dead-letter topics,
/// with one queue) when allowed; the topic must be writable.
fn resolve_topic(
    inner: &Arc<BrokerInner>,
    h: &SendMessageRequestHeader,
    auto_create: bool,
) -> Result<TopicConfig, Refusal> {
    let tc = match inner.topics.get(&h.topic) {
        Some(tc) => tc,
        None => {
            let not_exist = |why: String| {
                Refusal::new(
                    ResponseCode::TOPIC_NOT_EXIST,
                    format!("topic[{}] not exist, apply first please! ({why})", h.topic),
                )
            };
            let created = if let Some(group) = retry_or_dlq_group(&h.topic) {
                // Only for a group the broker has: names from the wire must not create
                // topics without bound.
                if inner.groups.get(group).is_none() {
                    return Err(not_exist(format!("no subscription group {group}")));
                }
                Ok(inner
                    .topics
                    .create_if_missing(&h.topic, 1, perm::READ | perm::WRITE))
            } else if auto_create {
                inner.topics.create_from_default(
                    &h.topic,
                    &h.default_topic,
                    h.default_topic_queue_nums,
                )
            } else {
                Err(crate::manager::topics::AutoCreate::NoTemplate)
            };
            let tc = match created {
                Ok(tc) => tc,
                Err(crate::manager::topics::AutoCreate::NoTemplate) => {
                    return Err(not_exist(
                        "autoCreateTopicEnable is off or no template".into(),
                    ))
                }
                Err(limit) => return Err(not_exist(limit.to_string())),
            };
            crate::namesrv::register_topics_soon(inner, [tc.topic_name.clone()]);
            tc
        }
    };
    if !perm::is_writeable(tc.perm) {
        return Err(Refusal::new(
            ResponseCode::NO_PERMISSION,
            format!("the topic[{}] sending message is forbidden", h.topic),
        ));
    }
    Ok(tc)
}

/// The group a retry (`%RETRY%g`) or dead-letter (`%DLQ%g`) topic belongs to.
fn retry_or_dlq_group(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(rmq_remoting::topic::RETRY_GROUP_TOPIC_PREFIX)
        .or_else(|| topic.strip_prefix(rmq_remoting::topic::DLQ_GROUP_TOPIC_PREFIX))
}

/// The queue asked for, or a random writable one for a negative id.
fn choose_queue(
    tc: &TopicConfig,
    h: &SendMessageRequestHeader,
    conn: &Connection,
) -> Result<i32, Refusal> {
    if h.queue_id >= tc.write_queue_nums.max(tc.read_queue_nums) {
        return Err(Refusal::new(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "request queueId[{}] is illegal, {} Producer: {}",
                h.queue_id,
                h.topic,
                conn.peer_addr()
            ),
        ));
    }
    Ok(if h.queue_id < 0 {
        rand::thread_rng().gen_range(0..tc.write_queue_nums.max(1))
    } else {
        h.queue_id
    })
}

/// The messages to store, their properties parsed once and edited as RocketMQ's broker edits
/// them: `CLUSTER` set to this broker's cluster, a `UNIQ_KEY` where the client sent none; a
/// single message is then routed (retry past its limit → dead letters, half, delay).
fn messages(
    inner: &Arc<BrokerInner>,
    req: &RemotingCommand,
    h: &SendMessageRequestHeader,
    mut props: Properties,
    queue_id: i32,
    settings: &SendSettings,
    conn: &Connection,
) -> Result<Vec<PutMessage>, Refusal> {
    // A batch is SEND_BATCH_MESSAGE or a send whose header says `batch` (as RocketMQ decides
    // it): the C++ client 2.x sends batches as SEND_MESSAGE_V2 with `m` = "1", which a Java
    // broker reads as false and stores as one message; here it is read as the batch it is.
    let batch = req.code == RequestCode::SEND_BATCH_MESSAGE || h.batch == Some(true);
    let reconsume_times = h.reconsume_times.unwrap_or(0);
    let half = crate::transaction::is_half(&props, reconsume_times);
    if half && settings.reject_transactions {
        return Err(Refusal::new(
            ResponseCode::NO_PERMISSION,
            format!(
                "the broker[{}] sending transaction message is forbidden",
                settings.broker_name
            ),
        ));
    }
    let new_uniq_key = || rmq_remoting::message::create_uniq_id(store_ipv4(inner));
    let base = PutMessage {
        topic: h.topic.clone(),
        queue_id,
        flag: h.flag,
        body: Bytes::new(),
        properties: Properties::new(),
        sys_flag: h.sys_flag & !sys_flag::TRANSACTION_ROLLBACK_TYPE,
        born_timestamp: h.born_timestamp,
        born_host: conn.peer_addr(),
        store_host: inner.store_host,
        reconsume_times,
        prepared_transaction_offset: 0,
        // Java's Message#isWaitStoreMsgOK: absent is true, else Boolean.parseBoolean.
        wait_store_msg_ok: props
            .get(property::WAIT_STORE_MSG_OK)
            .is_none_or(|w| w.eq_ignore_ascii_case("true")),
    };
    if batch {
        return batch_messages(req, h, props, base, &settings.cluster, new_uniq_key);
    }
    props.insert(property::CLUSTER, &settings.cluster);
    props.insert_if_absent(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, new_uniq_key);
    let mut msg = PutMessage {
        body: req.body.clone(),
        properties: props,
        ..base
    };
    if msg.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
        // Clients since 3.4.9 carry their limit in the header (the Java client moves it there
        // from the MAX_RECONSUME_TIMES property before sending).
        let header_max = h
            .max_reconsume_times
            .filter(|_| req.version >= rmq_remoting::code::version::V3_4_9);
        super::retry::route_direct_retry(inner, &mut msg, header_max)?;
    }
    if half {
        crate::transaction::to_half(&mut msg);
    } else {
        crate::schedule::apply_delay(&mut msg, inner.store.delay_levels().len());
    }
    Ok(vec![msg])
}

/// The items of a SEND_BATCH_MESSAGE body. Each keeps its own properties (as RocketMQ 5
/// stores them: the batch header's are not copied into the items — the Java 5.x client gives
/// the batch a `UNIQ_KEY` of its own, which must not replace the items'), with `CLUSTER` set
/// and a `UNIQ_KEY` where the item has none (the Go client sends items without).
fn batch_messages(
    req: &RemotingCommand,
    h: &SendMessageRequestHeader,
    batch_props: Properties,
    base: PutMessage,
    cluster: &str,
    new_uniq_key: impl Fn() -> String,
) -> Result<Vec<PutMessage>, Refusal> {
    let illegal = |remark: String| Refusal::new(ResponseCode::MESSAGE_ILLEGAL, remark);
    if h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
        return Err(illegal(format!(
            "batch request does not support retry group {}",
            h.topic
        )));
    }
    if sys_flag::transaction_value(h.sys_flag) != sys_flag::TRANSACTION_NOT_TYPE
        || batch_props
            .get(property::DELAY_TIME_LEVEL)
            .and_then(|d| d.parse::<i32>().ok())
            .is_some_and(|d| d > 0)
    {
        return Err(illegal(
            "a batch can be neither a transaction nor delayed".into(),
        ));
    }
    let items = match decode_batch(req.body.clone()) {
        Ok(items) if !items.is_empty() => items,
        Ok(_) => return Err(illegal("empty batch".into())),
        Err(e) => return Err(illegal(e.to_string())),
    };
    Ok(items
        .into_iter()
        .map(|item| {
            let mut p = item.properties;
            p.insert(property::CLUSTER, cluster);
            p.insert_if_absent(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, &new_uniq_key);
            PutMessage {
                flag: item.flag,
                body: item.body,
                properties: p,
                ..base.clone()
            }
        })
        .collect())
}

/// Stores the messages and counts them; the error is the response to send.
async fn append(
    inner: &Arc<BrokerInner>,
    topic: &str,
    msgs: Vec<PutMessage>,
) -> Result<(i32, AppendResult), Refusal> {
    let count = msgs.len() as u64;
    let bytes: u64 = msgs.iter().map(|m| m.body.len() as u64).sum();
    let result = inner.store.put_messages(msgs).await;
    let code = match &result.status {
        PutStatus::PutOk => ResponseCode::SUCCESS,
        PutStatus::FlushDiskTimeout => ResponseCode::FLUSH_DISK_TIMEOUT,
        PutStatus::ServiceNotAvailable(_) => ResponseCode::SERVICE_NOT_AVAILABLE,
        PutStatus::MessageIllegal(_) | PutStatus::PropertiesSizeExceeded => {
            ResponseCode::MESSAGE_ILLEGAL
        }
        PutStatus::CreateMappedFileFailed(_) | PutStatus::UnknownError(_) => {
            ResponseCode::SYSTEM_ERROR
        }
    };
    let Some(append) = result.append else {
        let remark = match result.status {
            PutStatus::ServiceNotAvailable(s) => s,
            PutStatus::MessageIllegal(s) => s,
            PutStatus::PropertiesSizeExceeded => "the message properties are too large".into(),
            PutStatus::CreateMappedFileFailed(s) => {
                format!("create mapped file failed, server is busy or broken: {s}")
            }
            PutStatus::UnknownError(s) => s,
            other => format!("{other:?}"),
        };
        return Err(Refusal::new(code, remark));
    };
    inner.traffic.stored(count);
    inner
        .metrics
        .messages_in
        .with_label_values(&[topic])
        .inc_by(count);
    inner
        .metrics
        .bytes_in
        .with_label_values(&[topic])
        .inc_by(bytes);
    Ok((code, append))
}

/// The send response. SYNC_MASTER: acknowledged only once a slave holds it (the message is
/// stored either way; clients see SLAVE_NOT_AVAILABLE or FLUSH_SLAVE_TIMEOUT as a send status).
async fn answer(
    inner: &Arc<BrokerInner>,
    settings: &SendSettings,
    (mut code, append): (i32, AppendResult),
    queue_id: i32,
) -> RemotingCommand {
    if settings.sync_master && code == ResponseCode::SUCCESS {
        let end = append.wrote_offset + append.wrote_bytes as i64;
        if let Err(c) = crate::ha::wait_for_slave(inner, end, settings.slave_timeout).await {
            code = c;
        }
    }
    let header = SendMessageResponseHeader {
        msg_id: append.msg_ids().join(","),
        queue_id,
        queue_offset: append.logics_offset,
        transaction_id: None,
        batch_uniq_id: None,
        recall_handle: None,
    };
    let mut resp = RemotingCommand::response(code, None).with_header(&header);
    resp.ext_fields
        .insert("MSG_REGION".into(), "DefaultRegion".into());
    resp.ext_fields.insert("TRACE_ON".into(), "true".into());
    resp
}

fn store_ipv4(inner: &BrokerInner) -> std::net::Ipv4Addr {
    match inner.store_host.ip() {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => std::net::Ipv4Addr::LOCALHOST,
    }
}
