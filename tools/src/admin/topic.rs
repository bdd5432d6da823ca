//! `topicList`, `topicRoute`, `updateTopic`, `deleteTopic`, `topicStatus`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{anyhow, Result};
use rmq_remoting::header::{
    CreateTopicRequestHeader, DeleteTopicFromNamesrvRequestHeader, DeleteTopicRequestHeader,
    GetKvConfigRequestHeader, GetKvConfigResponseHeader, GetTopicStatsInfoRequestHeader,
    GetTopicsByClusterRequestHeader,
};
use rmq_remoting::protocol::admin::TopicStatsTable;
use rmq_remoting::protocol::heartbeat::MessageQueue;
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::protocol::TopicList;
use rmq_remoting::topic::{is_retry_or_dlq, AUTO_CREATE_TOPIC_KEY_TOPIC};
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode, ResponseCode};

use super::bodies::{
    attributes_string, parse_attributes, GroupList, QueryTopicConsumeByWhoRequestHeader,
};
use super::broker::perm_is_valid;
use super::cli::{
    DeleteTopicArgs, TopicListArgs, TopicRouteArgs, TopicStatusArgs, UpdateTopicArgs,
};
use super::client::{broker_name_of, cluster_brokers, master_addrs, select_broker_addr, CodeError};
use super::java::{self, front};
use super::{Admin, Out};

/// KV namespace of order-topic configs.
pub const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

pub async fn topic_list(admin: &Admin, args: &TopicListArgs, out: Out<'_>) -> Result<()> {
    if !args.cluster_model {
        for topic in admin.all_topics().await?.topic_list {
            writeln!(out, "{topic}")?;
        }
        return Ok(());
    }
    let info = admin.cluster_info().await?;
    writeln!(
        out,
        "{:<20}  {:<48}  {:<48}",
        "#Cluster Name", "#Topic", "#Consumer Group"
    )?;
    let clusters: BTreeSet<&String> = info.cluster_addr_table.keys().collect();
    for cluster in clusters {
        let header = GetTopicsByClusterRequestHeader {
            cluster: cluster.clone(),
        };
        let resp = admin
            .call_namesrv(&RemotingCommand::request_with_header(
                RequestCode::GET_TOPICS_BY_CLUSTER,
                &header,
            ))
            .await?;
        let topics: BTreeSet<String> = TopicList::decode(&resp.body)?
            .topic_list
            .into_iter()
            .filter(|t| !is_retry_or_dlq(t))
            .collect();
        for topic in topics {
            let mut groups = consumer_groups(admin, &topic).await.unwrap_or_default();
            if groups.is_empty() {
                groups.push(String::new());
            }
            for group in groups {
                writeln!(
                    out,
                    "{:<20}  {:<64}  {:<64}",
                    front(cluster, 20),
                    front(&topic, 64),
                    front(&group, 64)
                )?;
            }
        }
    }
    Ok(())
}

/// `queryTopicConsumeByWho`: the groups a broker of the topic's route knows as consumers.
pub async fn consumer_groups(admin: &Admin, topic: &str) -> Result<Vec<String>> {
    let route = admin.route(topic).await?;
    let Some(addr) = route.broker_datas.iter().find_map(select_broker_addr) else {
        return Ok(Vec::new());
    };
    let header = QueryTopicConsumeByWhoRequestHeader {
        topic: topic.to_string(),
    };
    let resp = admin
        .call(
            addr,
            &RemotingCommand::request_with_header(RequestCode::QUERY_TOPIC_CONSUME_BY_WHO, &header),
        )
        .await?;
    let mut groups = GroupList::decode(&resp.body)?.group_list;
    groups.sort();
    groups.dedup();
    Ok(groups)
}

pub async fn topic_route(admin: &Admin, args: &TopicRouteArgs, out: Out<'_>) -> Result<()> {
    let route = admin.route(args.topic.trim()).await?;
    if !args.list {
        let value = serde_json::to_value(&route)?;
        writeln!(out, "{}", java::pretty_json(&value, &["brokerAddrs"]))?;
        return Ok(());
    }
    print_route_list(&route, out)
}

fn print_route_list(route: &TopicRouteData, out: Out<'_>) -> Result<()> {
    let row = |out: Out<'_>, cols: [&str; 6]| -> std::io::Result<()> {
        writeln!(
            out,
            "{:<45} {:<32} {:<50} {:<10} {:<11} {:<5}",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
        )
    };
    row(
        out,
        [
            "#ClusterName",
            "#BrokerName",
            "#BrokerAddrs",
            "#ReadQueue",
            "#WriteQueue",
            "#Perm",
        ],
    )?;
    let queues: HashMap<&str, _> = route
        .queue_datas
        .iter()
        .map(|q| (q.broker_name.as_str(), q))
        .collect();
    let mut brokers: Vec<_> = route.broker_datas.iter().collect();
    brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let (mut total_read, mut total_write) = (0, 0);
    for bd in brokers {
        let (r, w, p) = queues
            .get(bd.broker_name.as_str())
            .map(|q| (q.read_queue_nums, q.write_queue_nums, q.perm))
            .unwrap_or_default();
        total_read += r;
        total_write += w;
        row(
            out,
            [
                &bd.cluster,
                &bd.broker_name,
                &java::map_string(&bd.broker_addrs),
                &r.to_string(),
                &w.to_string(),
                &p.to_string(),
            ],
        )?;
    }
    writeln!(out, "{}", "-".repeat(158))?;
    row(
        out,
        [
            "Total:",
            &queues.len().to_string(),
            "",
            &total_read.to_string(),
            &total_write.to_string(),
            "",
        ],
    )?;
    Ok(())
}

/// `TopicConfig.toString`.
fn topic_config_string(
    h: &CreateTopicRequestHeader,
    attributes: &BTreeMap<String, String>,
) -> String {
    format!(
        "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, \
         topicFilterType={}, topicSysFlag={}, order={}, attributes={}]",
        h.topic,
        h.read_queue_nums,
        h.write_queue_nums,
        perm::to_string(h.perm),
        h.topic_filter_type,
        h.topic_sys_flag.unwrap_or(0),
        h.order,
        java::map_string(attributes)
    )
}

pub async fn update_topic(admin: &Admin, args: &UpdateTopicArgs, out: Out<'_>) -> Result<()> {
    let attributes = match &args.attributes {
        Some(a) => parse_attributes(a.trim()).map_err(|e| anyhow!(e))?,
        None => BTreeMap::new(),
    };
    if !perm_is_valid(args.perm) {
        return Err(CodeError::new(
            None,
            ResponseCode::NO_PERMISSION,
            format!("topicPermission value: {} is invalid.", args.perm),
        )
        .into());
    }
    let sys_flag = (if args.unit { 1 } else { 0 }) | (if args.has_unit_sub { 2 } else { 0 });
    let header = CreateTopicRequestHeader {
        topic: args.topic.trim().to_string(),
        default_topic: AUTO_CREATE_TOPIC_KEY_TOPIC.to_string(),
        read_queue_nums: args.read_queue_nums,
        write_queue_nums: args.write_queue_nums,
        perm: args.perm,
        topic_filter_type: "SINGLE_TAG".to_string(),
        topic_sys_flag: Some(sys_flag),
        order: args.order,
        attributes: Some(attributes_string(&attributes)),
        force: None,
    };
    let req = RemotingCommand::request_with_header(RequestCode::UPDATE_AND_CREATE_TOPIC, &header);
    let topic = &header.topic;
    if let Some(addr) = &args.broker_addr {
        let addr = addr.trim();
        admin.call(addr, &req).await?;
        if args.order {
            let broker_name = broker_name_of(&admin.cluster_info().await?, addr)?;
            let conf = format!("{broker_name}:{}", header.write_queue_nums);
            let merged = merge_order_conf(admin, topic, &broker_name, &conf).await;
            admin.put_kv(ORDER_TOPIC_CONFIG, topic, &merged).await?;
            writeln!(
                out,
                "set broker orderConf. isOrder=true, orderConf=[{conf}]"
            )?;
        }
        writeln!(out, "create topic to {addr} success.")?;
        writeln!(out, "{}", topic_config_string(&header, &attributes))?;
        return Ok(());
    }
    let cluster = args.cluster.as_deref().unwrap_or_default().trim();
    let info = admin.cluster_info().await?;
    for addr in master_addrs(&info, cluster)? {
        admin.call(&addr, &req).await?;
        writeln!(out, "create topic to {addr} success.")?;
    }
    if args.order {
        let conf = cluster_brokers(&info, cluster)?
            .iter()
            .map(|bd| format!("{}:{}", bd.broker_name, header.write_queue_nums))
            .collect::<Vec<_>>()
            .join(";");
        admin.put_kv(ORDER_TOPIC_CONFIG, topic, &conf).await?;
        writeln!(
            out,
            "set cluster orderConf. isOrder=true, orderConf=[{conf}]"
        )?;
    }
    writeln!(out, "{}", topic_config_string(&header, &attributes))?;
    Ok(())
}

/// `createOrUpdateOrderConf(.., isCluster=false)`: the topic's order config with this
/// broker's entry replaced, the other brokers' kept.
async fn merge_order_conf(admin: &Admin, topic: &str, broker_name: &str, conf: &str) -> String {
    let header = GetKvConfigRequestHeader {
        namespace: ORDER_TOPIC_CONFIG.into(),
        key: topic.into(),
    };
    let old = admin
        .call_namesrv(&RemotingCommand::request_with_header(
            RequestCode::GET_KV_CONFIG,
            &header,
        ))
        .await
        .ok()
        .and_then(|r| r.decode_header::<GetKvConfigResponseHeader>().ok())
        .and_then(|h| h.value)
        .unwrap_or_default();
    let mut entries: BTreeMap<String, String> = old
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            (
                s.split(':').next().unwrap_or_default().to_string(),
                s.to_string(),
            )
        })
        .collect();
    entries.insert(broker_name.to_string(), conf.to_string());
    entries.into_values().collect::<Vec<_>>().join(";")
}

pub async fn delete_topic(admin: &Admin, args: &DeleteTopicArgs, out: Out<'_>) -> Result<()> {
    let topic = args.topic.trim();
    let cluster = args.cluster.trim();
    let info = admin.cluster_info().await?;
    let req = RemotingCommand::request_with_header(
        RequestCode::DELETE_TOPIC_IN_BROKER,
        &DeleteTopicRequestHeader {
            topic: topic.into(),
        },
    );
    for addr in master_addrs(&info, cluster)? {
        admin.call(&addr, &req).await?;
    }
    writeln!(
        out,
        "delete topic [{topic}] from cluster [{cluster}] success."
    )?;
    let req = RemotingCommand::request_with_header(
        RequestCode::DELETE_TOPIC_IN_NAMESRV,
        &DeleteTopicFromNamesrvRequestHeader {
            topic: topic.into(),
            cluster_name: Some(cluster.into()),
        },
    );
    for addr in admin.namesrv()? {
        admin.call(addr, &req).await?;
    }
    writeln!(out, "delete topic [{topic}] from NameServer success.")?;
    Ok(())
}

/// GET_TOPIC_STATS_INFO from one broker.
pub async fn topic_stats(admin: &Admin, addr: &str, topic: &str) -> Result<TopicStatsTable> {
    let header = GetTopicStatsInfoRequestHeader {
        topic: topic.to_string(),
    };
    let resp = admin
        .call(
            addr,
            &RemotingCommand::request_with_header(RequestCode::GET_TOPIC_STATS_INFO, &header),
        )
        .await?;
    Ok(TopicStatsTable::decode(&resp.body)?)
}

pub async fn topic_status(admin: &Admin, args: &TopicStatusArgs, out: Out<'_>) -> Result<()> {
    let topic = args.topic.trim();
    let route_topic = args.cluster.as_deref().map(str::trim).unwrap_or(topic);
    let route = admin.route(route_topic).await?;
    let mut stats = TopicStatsTable::default();
    for addr in route.broker_datas.iter().filter_map(select_broker_addr) {
        let t = topic_stats(admin, addr, topic).await?;
        stats.offset_table.extend(t.offset_table);
        stats.topic_put_tps += t.topic_put_tps;
    }
    if stats.offset_table.is_empty() && args.cluster.is_none() {
        return Err(anyhow!("Not found the topic stats info"));
    }
    let mut queues: Vec<&MessageQueue> = stats.offset_table.keys().collect();
    queues.sort();
    writeln!(
        out,
        "{:<32}  {:<4}  {:<20}  {:<20}    #Last Updated",
        "#Broker Name", "#QID", "#Min Offset", "#Max Offset"
    )?;
    for mq in queues {
        let o = &stats.offset_table[mq];
        let updated = if o.last_update_timestamp > 0 {
            java::human_time2(o.last_update_timestamp)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<32}  {:<4}  {:<20}  {:<20}    {}",
            front(&mq.broker_name, 32),
            mq.queue_id,
            o.min_offset,
            o.max_offset,
            updated
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Topic Put TPS: {}", java::double(stats.topic_put_tps))?;
    Ok(())
}
