//! Topic routes from the name servers, and creating the topic when it is missing.

use std::time::Duration;

use anyhow::{anyhow, Context};
use rmq_remoting::header::{CreateTopicRequestHeader, GetRouteInfoRequestHeader};
use rmq_remoting::protocol::route::{ClusterInfo, TopicRouteData};
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::{JsonBody, RemotingClient, RemotingCommand, RequestCode, ResponseCode};

/// One queue: the master that serves it and its id.
#[derive(Debug, Clone)]
pub struct Queue {
    pub addr: String,
    pub queue_id: i32,
}

pub fn name_servers(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The route of `topic` from the first name server that answers.
pub async fn route(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Option<TopicRouteData>> {
    let mut last = None;
    for ns in name_servers(namesrv) {
        let req = RemotingCommand::request_with_header(
            RequestCode::GET_ROUTEINFO_BY_TOPIC,
            &GetRouteInfoRequestHeader {
                topic: topic.to_string(),
                accept_standard_json_only: Some(true),
            },
        );
        match client.invoke(&ns, req, timeout).await {
            Ok(r) if r.code == ResponseCode::SUCCESS => {
                return Ok(Some(TopicRouteData::decode(&r.body)?))
            }
            Ok(r) if r.code == ResponseCode::TOPIC_NOT_EXIST => return Ok(None),
            Ok(r) => {
                last = Some(anyhow!(
                    "{ns} answered {}: {}",
                    r.code_name(),
                    r.remark.unwrap_or_default()
                ))
            }
            Err(e) => last = Some(anyhow!(e).context(format!("name server {ns}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no name server address")))
}

/// The first name server of `namesrv` and its cluster info.
pub async fn cluster_info(
    client: &RemotingClient,
    namesrv: &str,
    timeout: Duration,
) -> anyhow::Result<(String, ClusterInfo)> {
    let ns = name_servers(namesrv)
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no name server address"))?;
    let r = client
        .invoke(
            &ns,
            RemotingCommand::request(RequestCode::GET_BROKER_CLUSTER_INFO),
            timeout,
        )
        .await
        .with_context(|| format!("cluster info from {ns}"))?;
    let info = ClusterInfo::decode(&r.body)?;
    Ok((ns, info))
}

/// Creates `topic` with `queues` read/write queues on every master of every cluster.
pub async fn create_topic(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    queues: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (ns, info) = cluster_info(client, namesrv, timeout).await?;
    let mut created = 0;
    for bd in info.broker_addr_table.values() {
        let Some(addr) = bd.master_addr() else {
            continue;
        };
        let req = RemotingCommand::request_with_header(
            RequestCode::UPDATE_AND_CREATE_TOPIC,
            &CreateTopicRequestHeader {
                topic: topic.to_string(),
                default_topic: "TBW102".into(),
                read_queue_nums: queues,
                write_queue_nums: queues,
                perm: perm::READ | perm::WRITE,
                topic_filter_type: "SINGLE_TAG".into(),
                order: false,
                ..Default::default()
            },
        );
        client.invoke(addr, req, timeout).await?.ensure_success()?;
        created += 1;
    }
    if created == 0 {
        return Err(anyhow!("no master broker registered with {ns}"));
    }
    Ok(())
}

/// Writable (or readable) queues of every master in a route.
pub fn queues(route: &TopicRouteData, write: bool) -> Vec<Queue> {
    let mut out = Vec::new();
    for qd in &route.queue_datas {
        let ok = if write {
            perm::is_writeable(qd.perm)
        } else {
            perm::is_readable(qd.perm)
        };
        if !ok {
            continue;
        }
        let Some(addr) = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == qd.broker_name)
            .and_then(|b| b.master_addr())
        else {
            continue;
        };
        let n = if write {
            qd.write_queue_nums
        } else {
            qd.read_queue_nums
        };
        for q in 0..n {
            out.push(Queue {
                addr: addr.to_string(),
                queue_id: q,
            });
        }
    }
    out
}

/// The route of `topic`, creating the topic first when it does not exist; waits until the
/// name server knows it.
pub async fn route_or_create(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    queues: i32,
    timeout: Duration,
) -> anyhow::Result<TopicRouteData> {
    if let Some(r) = route(client, namesrv, topic, timeout).await? {
        return Ok(r);
    }
    create_topic(client, namesrv, topic, queues, timeout).await?;
    for _ in 0..100 {
        if let Some(r) = route(client, namesrv, topic, timeout).await? {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!(
        "topic {topic} was created but the name server never routed it"
    ))
}
