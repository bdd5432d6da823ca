//! `consumerProgress`, `updateSubGroup`, and the consumer lookups message tracking shares.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use rmq_remoting::fastjson;
use rmq_remoting::header::{GetConsumeStatsRequestHeader, GetConsumerConnectionListRequestHeader};
use rmq_remoting::protocol::admin::{ConsumeStats, ConsumerConnection};
use rmq_remoting::protocol::heartbeat::{ConsumeType, MessageModel, MessageQueue};
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::topic::RETRY_GROUP_TOPIC_PREFIX;
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode, ResponseCode};
use serde_json::Value;

use super::bodies::{
    parse_attributes, GetConsumerRunningInfoRequestHeader, SubscriptionGroupConfig,
};
use super::cli::{ConsumerProgressArgs, ResetOffsetByTimeArgs, UpdateSubGroupArgs};
use super::client::{master_addrs, select_broker_addr, CodeError, Failures};
use super::java::{self, front};
use super::mq_version::version_desc;
use super::{Admin, Out};

pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// The route of the first of `topics` the name server knows.
async fn first_route(admin: &Admin, topics: &[String]) -> Result<TopicRouteData> {
    let mut last = None;
    for t in topics {
        match admin.route(t).await {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no topic to route")))
}

/// `examineConsumeStats`: GET_CONSUME_STATS from every broker of the group's retry topic (or
/// the topic's) route, merged.
pub async fn examine_consume_stats(
    admin: &Admin,
    group: &str,
    topic: Option<&str>,
) -> Result<ConsumeStats> {
    let mut route_topics = vec![retry_topic(group)];
    if let Some(t) = topic {
        route_topics.push(t.to_string());
        route_topics.push(format!("{RETRY_GROUP_TOPIC_PREFIX}{group}_{t}"));
    }
    let route = first_route(admin, &route_topics).await?;
    let header = GetConsumeStatsRequestHeader {
        consumer_group: group.to_string(),
        topic: topic.map(String::from),
        topic_list: None,
    };
    let req = RemotingCommand::request_with_header(RequestCode::GET_CONSUME_STATS, &header);
    let mut result = ConsumeStats::default();
    for addr in route.broker_datas.iter().filter_map(select_broker_addr) {
        let resp = admin
            .call_with_timeout(addr, &req, admin.timeout() * 3)
            .await?;
        let stats = ConsumeStats::decode(&resp.body)?;
        result.offset_table.extend(stats.offset_table);
        result.consume_tps += stats.consume_tps;
    }
    if result.offset_table.is_empty() {
        let model = consumer_connection(admin, group)
            .await
            .map(|c| c.message_model);
        return Err(match model {
            Ok(MessageModel::Broadcasting) => CodeError::new(
                None,
                ResponseCode::BROADCAST_CONSUMPTION,
                "Not found the consumer group consume stats, because return offset table is empty, the consumer is under the broadcast mode",
            ),
            _ => CodeError::new(
                None,
                ResponseCode::CONSUMER_NOT_ONLINE,
                "Not found the consumer group consume stats, because return offset table is empty, maybe the consumer not online",
            ),
        }
        .into());
    }
    Ok(result)
}

/// `examineConsumerConnectionInfo`: GET_CONSUMER_CONNECTION_LIST from a broker of the
/// group's retry topic.
pub async fn consumer_connection(admin: &Admin, group: &str) -> Result<ConsumerConnection> {
    let route = admin.route(&retry_topic(group)).await?;
    let addr = route
        .broker_datas
        .iter()
        .find_map(select_broker_addr)
        .ok_or_else(|| anyhow!("no broker serves {}", retry_topic(group)))?;
    let header = GetConsumerConnectionListRequestHeader {
        consumer_group: group.to_string(),
    };
    let resp = admin
        .call(
            addr,
            &RemotingCommand::request_with_header(
                RequestCode::GET_CONSUMER_CONNECTION_LIST,
                &header,
            ),
        )
        .await?;
    let cc = ConsumerConnection::decode(&resp.body)?;
    if cc.connection_set.is_empty() {
        bail!(CodeError::new(
            None,
            ResponseCode::CONSUMER_NOT_ONLINE,
            "Not found the consumer group connection"
        ));
    }
    Ok(cc)
}

/// Which client IP consumes each queue, from every client's running info (GET_CONSUMER_RUNNING_INFO
/// relayed by a broker).
async fn queue_allocation(admin: &Admin, group: &str) -> HashMap<MessageQueue, String> {
    let mut result = HashMap::new();
    let collect = async {
        let cc = consumer_connection(admin, group).await?;
        let route = admin.route(&retry_topic(group)).await?;
        let addr = route
            .broker_datas
            .iter()
            .find_map(select_broker_addr)
            .ok_or_else(|| anyhow!("no broker serves {}", retry_topic(group)))?;
        for conn in &cc.connection_set {
            let header = GetConsumerRunningInfoRequestHeader {
                consumer_group: group.to_string(),
                client_id: conn.client_id.clone(),
                jstack_enable: false,
            };
            let req = RemotingCommand::request_with_header(
                RequestCode::GET_CONSUMER_RUNNING_INFO,
                &header,
            );
            let resp = admin.call(addr, &req).await?;
            let info: Value = fastjson::from_slice(&resp.body)?;
            let ip = conn
                .client_id
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            if let Some(table) = info.get("mqTable").and_then(Value::as_object) {
                for key in table.keys() {
                    if let Ok(mq) = serde_json::from_str::<MessageQueue>(key) {
                        result.insert(mq, ip.clone());
                    }
                }
            }
        }
        anyhow::Ok(())
    };
    if let Err(e) = collect.await {
        eprintln!("getMqAllocationsResult error: {e:#}");
    }
    result
}

pub async fn consumer_progress(
    admin: &Admin,
    args: &ConsumerProgressArgs,
    out: Out<'_>,
) -> Result<()> {
    let Some(group) = args.group.as_deref().map(str::trim) else {
        return all_groups_progress(admin, out).await;
    };
    let topic = args.topic.as_deref().map(str::trim);
    let stats = examine_consume_stats(admin, group, topic).await?;
    let mut queues: Vec<&MessageQueue> = stats.offset_table.keys().collect();
    queues.sort();
    let allocation = if args.show_client_ip {
        Some(queue_allocation(admin, group).await)
    } else {
        None
    };
    if allocation.is_some() {
        writeln!(
            out,
            "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20} {:<20}#LastTime",
            "#Topic",
            "#Broker Name",
            "#QID",
            "#Broker Offset",
            "#Consumer Offset",
            "#Client IP",
            "#Diff",
            "#Inflight",
        )?;
    } else {
        writeln!(
            out,
            "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20}#LastTime",
            "#Topic",
            "#Broker Name",
            "#QID",
            "#Broker Offset",
            "#Consumer Offset",
            "#Diff",
            "#Inflight",
        )?;
    }
    let (mut diff_total, mut inflight_total) = (0i64, 0i64);
    for mq in queues {
        let o = &stats.offset_table[mq];
        let diff = o.broker_offset - o.consumer_offset;
        let inflight = o.pull_offset - o.consumer_offset;
        diff_total += diff;
        inflight_total += inflight;
        let last = if o.last_timestamp == 0 {
            "N/A".to_string()
        } else {
            java::date_time(o.last_timestamp)
        };
        match &allocation {
            Some(alloc) => writeln!(
                out,
                "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20} {:<20} {}",
                front(&mq.topic, 64),
                front(&mq.broker_name, 32),
                mq.queue_id,
                o.broker_offset,
                o.consumer_offset,
                alloc.get(mq).map(String::as_str).unwrap_or("N/A"),
                diff,
                inflight,
                last
            )?,
            None => writeln!(
                out,
                "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20} {}",
                front(&mq.topic, 64),
                front(&mq.broker_name, 32),
                mq.queue_id,
                o.broker_offset,
                o.consumer_offset,
                diff,
                inflight,
                last
            )?,
        }
    }
    writeln!(out)?;
    writeln!(out, "Consume TPS: {:.2}", stats.consume_tps)?;
    writeln!(out, "Consume Diff Total: {diff_total}")?;
    writeln!(out, "Consume Inflight Total: {inflight_total}")?;
    Ok(())
}

/// `consumerProgress` without `-g`: one line per group (every `%RETRY%` topic).
async fn all_groups_progress(admin: &Admin, out: Out<'_>) -> Result<()> {
    writeln!(
        out,
        "{:<64}  {:<6}  {:<24} {:<5}  {:<14}  {:<7}  #Diff Total",
        "#Group", "#Count", "#Version", "#Type", "#Model", "#TPS"
    )?;
    let mut topics = admin.all_topics().await?.topic_list;
    topics.sort();
    for topic in topics {
        let Some(group) = topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) else {
            continue;
        };
        let (tps, diff) = match examine_consume_stats(admin, group, None).await {
            Ok(s) => (
                s.consume_tps as i64,
                s.offset_table
                    .values()
                    .map(|o| o.broker_offset - o.consumer_offset)
                    .sum::<i64>(),
            ),
            Err(_) => (0, 0),
        };
        let cc = consumer_connection(admin, group).await.ok();
        let count = cc.as_ref().map_or(0, |c| c.connection_set.len());
        let (version, kind, model) = match &cc {
            Some(c) if count > 0 => {
                let min = c
                    .connection_set
                    .iter()
                    .map(|x| x.version)
                    .min()
                    .unwrap_or(0);
                let kind = if c.consume_type == ConsumeType::ConsumeActively {
                    "PULL"
                } else {
                    "PUSH"
                };
                let model = if c.consume_type == ConsumeType::ConsumePassively {
                    c.message_model.name()
                } else {
                    ""
                };
                (version_desc(min), kind, model)
            }
            _ => ("OFFLINE".to_string(), "", ""),
        };
        writeln!(
            out,
            "{:<64}  {:<6}  {:<24} {:<5}  {:<14}  {:<7}  {}",
            front(group, 64),
            count,
            version,
            kind,
            model,
            tps,
            diff
        )?;
    }
    Ok(())
}

pub async fn update_sub_group(
    admin: &Admin,
    args: &UpdateSubGroupArgs,
    out: Out<'_>,
) -> Result<()> {
    let mut cfg = SubscriptionGroupConfig {
        group_name: args.group.trim().to_string(),
        ..Default::default()
    };
    if let Some(v) = args.consume_enable {
        cfg.consume_enable = v;
    }
    if let Some(v) = args.consume_from_min_enable {
        cfg.consume_from_min_enable = v;
    }
    if let Some(v) = args.consume_broadcast_enable {
        cfg.consume_broadcast_enable = v;
    }
    if let Some(v) = args.consume_message_orderly {
        cfg.consume_message_orderly = v;
    }
    if let Some(v) = args.retry_queue_nums {
        cfg.retry_queue_nums = v;
    }
    if let Some(v) = args.retry_max_times {
        cfg.retry_max_times = v;
    }
    if let Some(p) = &args.group_retry_policy {
        cfg.group_retry_policy = serde_json::from_str(p.trim())
            .map_err(|e| anyhow!("groupRetryPolicy is not JSON: {e}"))?;
    }
    if let Some(v) = args.broker_id {
        cfg.broker_id = v;
    }
    if let Some(v) = args.which_broker_when_consume_slowly {
        cfg.which_broker_when_consume_slowly = v;
    }
    if let Some(v) = args.notify_consumer_ids_changed {
        cfg.notify_consumer_ids_changed_enable = v;
    }
    if let Some(a) = &args.attributes {
        cfg.attributes = parse_attributes(a.trim()).map_err(|e| anyhow!(e))?;
    }
    let req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
        .with_body(cfg.encode());
    let cluster = match (&args.broker_addr, &args.cluster) {
        (Some(addr), _) => {
            let addr = addr.trim();
            admin.call(addr, &req).await?;
            writeln!(out, "create subscription group to {addr} success.")?;
            writeln!(out, "{cfg}")?;
            return Ok(());
        }
        (None, Some(c)) => c.trim(),
        (None, None) => bail!("give -b brokerAddr or -c clusterName"),
    };
    let mut failures = Failures::default();
    for addr in master_addrs(&admin.cluster_info().await?, cluster)? {
        match admin.call(&addr, &req).await {
            Ok(_) => writeln!(out, "create subscription group to {addr} success.")?,
            Err(e) => failures.record(&addr, e),
        }
    }
    writeln!(out, "{cfg}")?;
    failures.finish()
}

/// `-s` of resetOffsetByTime: `now`, epoch milliseconds, or `yyyy-MM-dd#HH:mm:ss:SSS` in local
/// time, as RocketMQ's tool takes it.
pub fn parse_reset_timestamp(s: &str) -> Result<i64> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(rmq_remoting::util::now_millis());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || anyhow::anyhow!("timestamp `{s}`: use now, milliseconds, or yyyy-MM-dd#HH:mm:ss:SSS");
    let (date, time) = s.split_once('#').ok_or_else(bad)?;
    let d: Vec<i32> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let t: Vec<i32> = time
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || t.len() != 4 {
        return Err(bad());
    }
    // SAFETY: mktime reads and normalises the struct we own.
    let secs = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = d[0] - 1900;
        tm.tm_mon = d[1] - 1;
        tm.tm_mday = d[2];
        tm.tm_hour = t[0];
        tm.tm_min = t[1];
        tm.tm_sec = t[2];
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    if secs == -1 {
        return Err(bad());
    }
    Ok(secs as i64 * 1000 + i64::from(t[3]))
}

pub async fn reset_offset_by_time(
    admin: &Admin,
    args: &ResetOffsetByTimeArgs,
    out: Out<'_>,
) -> Result<()> {
    use rmq_remoting::header::ResetOffsetRequestHeader;
    use rmq_remoting::protocol::admin::ResetOffsetBody;
    let timestamp = parse_reset_timestamp(&args.timestamp)?;
    let route = admin.route(args.topic.trim()).await?;
    let header = ResetOffsetRequestHeader {
        topic: args.topic.trim().to_string(),
        group: args.group.trim().to_string(),
        timestamp,
        is_force: args.force,
    };
    let req =
        RemotingCommand::request_with_header(RequestCode::INVOKE_BROKER_TO_RESET_OFFSET, &header);
    let mut table: Vec<(MessageQueue, i64)> = Vec::new();
    for addr in route.broker_datas.iter().filter_map(select_broker_addr) {
        let resp = admin.call(addr, &req).await?;
        table.extend(ResetOffsetBody::decode(&resp.body)?.offset_table);
    }
    table.sort();
    writeln!(
        out,
        "rollback consumer offset by specified group[{}], topic[{}], force[{}], timestamp(string)[{}], timestamp(long)[{}]",
        header.group, header.topic, args.force, args.timestamp, timestamp
    )?;
    writeln!(
        out,
        "{:<40}  {:<40}  {:<40}",
        "#brokerName", "#queueId", "#offset"
    )?;
    for (mq, offset) in table {
        writeln!(
            out,
            "{:<40}  {:<40}  {:<40}",
            mq.broker_name, mq.queue_id, offset
        )?;
    }
    Ok(())
}
