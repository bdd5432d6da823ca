//! HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, and the consumer-list change
//! notification sent back to a group's clients.

use std::sync::Arc;

use rmq_remoting::header::{
    GetConsumerListByGroupRequestHeader, NotifyConsumerIdsChangedRequestHeader,
    UnregisterClientRequestHeader,
};
use rmq_remoting::protocol::heartbeat::{ConsumerListBody, HeartbeatData, MessageModel};
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::topic::RETRY_GROUP_TOPIC_PREFIX;
use rmq_remoting::util::now_millis;
use rmq_remoting::{Connection, JsonBody, RemotingCommand, RequestCode, ResponseCode};

use super::Response;
use crate::broker::BrokerInner;
use crate::manager::clients::ClientChannel;

pub async fn heartbeat(
    inner: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Response {
    let hb = HeartbeatData::decode(&req.body)?;
    if let Some(refused) = check_heartbeat(&hb) {
        return Ok(refused);
    }
    let auto_group = inner.settings.broker(|b| b.auto_create_subscription_group);
    let channel = |id: &str| ClientChannel {
        conn: conn.clone(),
        client_id: id.to_string(),
        language: req.language,
        version: req.version,
        last_update_ms: now_millis(),
    };
    let mut topics_created = Vec::new();
    for c in &hb.consumer_data_set {
        // A consumer of a group the broker does not have (and may not create) is not
        // registered, as RocketMQ 5 skips it: its pulls fail with the reason.
        let g = match inner.groups.find_or_create(&c.group_name, auto_group) {
            Ok(g) => g,
            Err(why) => {
                tracing::debug!(group = %c.group_name, %why, "heartbeat of a consumer without a group");
                continue;
            }
        };
        // Clustering consumers subscribe to their retry topic: it must exist.
        if c.message_model == MessageModel::Clustering {
            let retry = format!("{RETRY_GROUP_TOPIC_PREFIX}{}", c.group_name);
            if !inner.topics.contains(&retry) {
                inner.topics.create_if_missing(
                    &retry,
                    g.retry_queue_nums.clamp(1, MAX_QUEUE_NUMS),
                    perm::READ | perm::WRITE,
                );
                topics_created.push(retry);
            }
        }
        let changed = inner.clients.register_consumer(
            &c.group_name,
            channel(&hb.client_id),
            c.consume_type,
            c.message_model,
            c.consume_from_where,
            c.subscription_data_set.clone(),
        );
        if changed {
            notify_consumer_ids_changed(inner, &c.group_name);
        }
    }
    for p in &hb.producer_data_set {
        inner
            .clients
            .register_producer(&p.group_name, channel(&hb.client_id));
    }
    if !topics_created.is_empty() {
        crate::namesrv::register_topics_soon(inner, topics_created);
    }
    let mut resp = RemotingCommand::success();
    resp.ext_fields
        .insert("IS_SUPPORT_HEART_BEAT_V2".into(), "true".into());
    // Always ask for full heartbeats: we keep no fingerprints.
    resp.ext_fields
        .insert("IS_SUB_CHANGE".into(), "true".into());
    Ok(resp)
}

/// Groups one heartbeat may name. A client instance heartbeats its own producer and consumer
/// groups, a handful; thousands are an attack (each would become a group, a retry topic and a
/// registration entry).
pub const MAX_HEARTBEAT_GROUPS: usize = 1000;
/// Queue numbers a topic may have: created by mqadmin, or a group's retry topic.
pub const MAX_QUEUE_NUMS: i32 = 1024;

/// A refusal for a heartbeat naming too many groups or a group RocketMQ would not accept.
fn check_heartbeat(hb: &HeartbeatData) -> Option<RemotingCommand> {
    let n = hb.consumer_data_set.len() + hb.producer_data_set.len();
    if n > MAX_HEARTBEAT_GROUPS {
        return Some(RemotingCommand::error(
            ResponseCode::INVALID_PARAMETER,
            format!("a heartbeat names {n} groups; at most {MAX_HEARTBEAT_GROUPS} are accepted"),
        ));
    }
    let names = hb
        .consumer_data_set
        .iter()
        .map(|c| &c.group_name)
        .chain(hb.producer_data_set.iter().map(|p| &p.group_name));
    for name in names {
        if let Err(e) = rmq_remoting::topic::validate_group(name) {
            return Some(RemotingCommand::error(ResponseCode::INVALID_PARAMETER, e));
        }
    }
    None
}

pub async fn unregister(
    inner: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Response {
    let h: UnregisterClientRequestHeader = req.decode_header()?;
    if let Some(g) = h.producer_group.as_deref().filter(|g| !g.is_empty()) {
        inner.clients.unregister_producer(g, conn);
    }
    if let Some(g) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
        if inner.clients.unregister_consumer(g, conn) {
            notify_consumer_ids_changed(inner, g);
        }
    }
    Ok(RemotingCommand::success())
}

pub fn consumer_list(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let h: GetConsumerListByGroupRequestHeader = req.decode_header()?;
    let ids = inner.clients.consumer_ids(&h.consumer_group);
    if ids.is_empty() {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            format!("no consumer for this group, {}", h.consumer_group),
        ));
    }
    Ok(RemotingCommand::success().with_body(
        ConsumerListBody {
            consumer_id_list: ids,
        }
        .encode(),
    ))
}

/// Tells every member of `group` to rebalance (oneway, as RocketMQ does).
pub fn notify_consumer_ids_changed(inner: &Arc<BrokerInner>, group: &str) {
    let enabled = inner
        .groups
        .get(group)
        .map(|g| g.notify_consumer_ids_changed_enable)
        .unwrap_or(true);
    if !enabled {
        return;
    }
    for conn in inner.clients.consumer_connections(group) {
        let header = NotifyConsumerIdsChangedRequestHeader {
            consumer_group: group.to_string(),
        };
        let cmd =
            RemotingCommand::request_with_header(RequestCode::NOTIFY_CONSUMER_IDS_CHANGED, &header);
        tokio::spawn(async move {
            if let Err(e) = conn.invoke_oneway(cmd).await {
                tracing::debug!(peer = %conn.peer_addr(), error = %e, "consumer-ids-changed notification failed");
            }
        });
    }
}

/// CHECK_CLIENT_CONFIG (46): whether this broker accepts a subscription's filter type and
/// expression, asked by consumers before they start (RocketMQ's `checkClientConfig`).
pub fn check_client_config(inner: &Arc<BrokerInner>, req: &RemotingCommand) -> Response {
    let body = rmq_remoting::protocol::heartbeat::CheckClientRequestBody::decode(&req.body)?;
    let Some(sub) = body.subscription_data else {
        return Ok(RemotingCommand::success());
    };
    let kind = sub.expression_type.as_str();
    if kind.is_empty() || kind.eq_ignore_ascii_case("TAG") {
        return Ok(RemotingCommand::success());
    }
    if !inner.settings.broker(|b| b.enable_property_filter) {
        return Ok(RemotingCommand::error(
            ResponseCode::SYSTEM_ERROR,
            format!("The broker does not support consumer to filter message by {kind}"),
        ));
    }
    if !kind.eq_ignore_ascii_case("SQL92") {
        return Ok(RemotingCommand::error(
            ResponseCode::SUBSCRIPTION_PARSE_FAILED,
            format!("Not support filter type: {kind}"),
        ));
    }
    match inner.sql_filters.get(&sub.sub_string) {
        Ok(_) => Ok(RemotingCommand::success()),
        Err(e) => Ok(RemotingCommand::error(
            ResponseCode::SUBSCRIPTION_PARSE_FAILED,
            e,
        )),
    }
}
