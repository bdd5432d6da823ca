//! SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE: checks with RocketMQ's response codes,
//! topic auto-creation, and the store put.

use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use rmq_remoting::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use rmq_remoting::message::{decode_batch, encode_properties, property, sys_flag};
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::{Connection, RemotingCommand, RequestCode, ResponseCode};

use super::Response;
use crate::broker::BrokerInner;
use crate::manager::topics::is_not_allowed_send_topic;
use crate::store::{find_property, PutMessage, PutStatus};

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

pub async fn send(inner: &Arc<BrokerInner>, conn: &Connection, req: &RemotingCommand) -> Response {
    let h = decode_header(req)?;
    // Back-pressure: too many sends in flight is SYSTEM_BUSY, which clients retry.
    let Ok(_permit) = inner.send_permits.clone().try_acquire_owned() else {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_BUSY,
            "[REJECTREQUEST]system busy, start flow control for a while",
        ));
    };
    // One look at the settings per send (the role can change at run time: promotion).
    let (
        broker_perm,
        auto_create,
        cluster,
        broker_name,
        is_slave,
        reject_transactions,
        sync_master,
        slave_timeout,
    ) = {
        let s = inner.settings.read();
        (
            s.broker.broker_permission,
            s.broker.auto_create_topic_enable,
            s.broker.broker_cluster_name.clone(),
            s.broker.broker_name.clone(),
            s.broker.is_slave(),
            s.broker.reject_transaction_message,
            s.broker.broker_role.eq_ignore_ascii_case("SYNC_MASTER"),
            std::time::Duration::from_millis(s.store.sync_flush_timeout.max(1)),
        )
    };
    if !perm::is_writeable(broker_perm) || is_slave {
        return Ok(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!(
                "the broker[{}] sending message is forbidden",
                inner.broker_addr
            ),
        ));
    }
    if let Err(e) = rmq_remoting::topic::validate_topic(&h.topic) {
        let code = if h.topic.len() > rmq_remoting::topic::TOPIC_MAX_LENGTH
            && rmq_remoting::topic::has_only_legal_characters(&h.topic)
        {
            ResponseCode::MESSAGE_ILLEGAL
        } else {
            ResponseCode::INVALID_PARAMETER
        };
        return Ok(RemotingCommand::error(code, e));
    }
    if is_not_allowed_send_topic(&h.topic) {
        return Ok(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!("Sending message to topic[{}] is forbidden.", h.topic),
        ));
    }
    let topic_config = match inner.topics.get(&h.topic) {
        Some(tc) => tc,
        None => {
            let created = if rmq_remoting::topic::is_retry_or_dlq(&h.topic) {
                Some(
                    inner
                        .topics
                        .create_if_missing(&h.topic, 1, perm::READ | perm::WRITE),
                )
            } else if auto_create {
                inner.topics.create_from_default(
                    &h.topic,
                    &h.default_topic,
                    h.default_topic_queue_nums,
                )
            } else {
                None
            };
            match created {
                Some(tc) => {
                    crate::namesrv::register_soon(inner);
                    tc
                }
                None => {
                    return Ok(RemotingCommand::error(
                        ResponseCode::TOPIC_NOT_EXIST,
                        format!("topic[{}] not exist, apply first please!", h.topic),
                    ))
                }
            }
        }
    };
    if !perm::is_writeable(topic_config.perm) {
        return Ok(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!("the topic[{}] sending message is forbidden", h.topic),
        ));
    }
    let valid_queues = topic_config
        .write_queue_nums
        .max(topic_config.read_queue_nums);
    if h.queue_id >= valid_queues {
        return Ok(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "request queueId[{}] is illegal, {} Producer: {}",
                h.queue_id,
                h.topic,
                conn.peer_addr()
            ),
        ));
    }
    let queue_id = if h.queue_id < 0 {
        rand::thread_rng().gen_range(0..topic_config.write_queue_nums.max(1))
    } else {
        h.queue_id
    };
    let mut props = h.properties.clone().unwrap_or_default();
    let half = crate::transaction::is_half(&props, h.reconsume_times.unwrap_or(0));
    if half && reject_transactions {
        return Ok(RemotingCommand::error(
            ResponseCode::NO_PERMISSION,
            format!("the broker[{broker_name}] sending transaction message is forbidden"),
        ));
    }
    let batch = req.code == RequestCode::SEND_BATCH_MESSAGE;
    let base = PutMessage {
        topic: h.topic.clone(),
        queue_id,
        flag: h.flag,
        body: Bytes::new(),
        properties: String::new(),
        sys_flag: h.sys_flag & !sys_flag::TRANSACTION_ROLLBACK_TYPE,
        born_timestamp: h.born_timestamp,
        born_host: conn.peer_addr(),
        store_host: inner.store_host,
        reconsume_times: h.reconsume_times.unwrap_or(0),
        prepared_transaction_offset: 0,
    };
    let msgs = if batch {
        let items = match decode_batch(req.body.clone()) {
            Ok(items) if !items.is_empty() => items,
            Ok(_) => {
                return Ok(RemotingCommand::error(
                    ResponseCode::MESSAGE_ILLEGAL,
                    "empty batch",
                ))
            }
            Err(e) => {
                return Ok(RemotingCommand::error(
                    ResponseCode::MESSAGE_ILLEGAL,
                    e.to_string(),
                ))
            }
        };
        items
            .into_iter()
            .map(|item| {
                let mut p = item.properties;
                p.insert(property::CLUSTER.to_string(), cluster.clone());
                p.entry(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX.to_string())
                    .or_insert_with(|| rmq_remoting::message::create_uniq_id(store_ipv4(inner)));
                PutMessage {
                    flag: item.flag,
                    body: item.body,
                    properties: encode_properties(&p),
                    ..base.clone()
                }
            })
            .collect()
    } else {
        if find_property(&props, property::CLUSTER).is_none() {
            push_property(&mut props, property::CLUSTER, &cluster);
        }
        if find_property(&props, property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX).is_none() {
            let id = rmq_remoting::message::create_uniq_id(store_ipv4(inner));
            push_property(&mut props, property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, &id);
        }
        let mut msg = PutMessage {
            body: req.body.clone(),
            properties: props,
            ..base
        };
        if let Some(refused) = super::retry::route_direct_retry(inner, &mut msg) {
            return Ok(refused);
        }
        if half {
            crate::transaction::to_half(&mut msg);
        } else {
            crate::schedule::apply_delay(&mut msg, inner.store.delay_levels().len());
        }
        vec![msg]
    };
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
        return Ok(RemotingCommand::error(code, remark));
    };
    inner
        .stats
        .put_messages
        .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    inner
        .stats
        .put_bytes
        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    inner
        .metrics
        .messages_in
        .with_label_values(&[h.topic.as_str()])
        .inc_by(count);
    inner
        .metrics
        .bytes_in
        .with_label_values(&[h.topic.as_str()])
        .inc_by(bytes);
    // SYNC_MASTER: acknowledged only once a slave holds it (the message is stored either way;
    // clients see SLAVE_NOT_AVAILABLE or FLUSH_SLAVE_TIMEOUT as a send status).
    let mut code = code;
    if sync_master && code == ResponseCode::SUCCESS {
        let end = append.wrote_offset + append.wrote_bytes as i64;
        if let Err(c) = crate::ha::wait_for_slave(inner, end, slave_timeout).await {
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
    Ok(resp)
}

fn push_property(props: &mut String, name: &str, value: &str) {
    props.push_str(name);
    props.push('\u{1}');
    props.push_str(value);
    props.push('\u{2}');
}

fn store_ipv4(inner: &BrokerInner) -> std::net::Ipv4Addr {
    match inner.store_host.ip() {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => std::net::Ipv4Addr::LOCALHOST,
    }
}
