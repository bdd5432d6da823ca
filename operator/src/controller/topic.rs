//! `Topic` reconciler: the topic is created and updated on every master of its cluster (or of
//! its broker groups) through the remoting admin protocol; a finalizer deletes it per the
//! deletion policy. Each resync re-applies it, correcting drift.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::{Api, ResourceExt};
use rmq_remoting::header::{
    CreateTopicRequestHeader, DeleteKvConfigRequestHeader, DeleteTopicFromNamesrvRequestHeader,
    DeleteTopicRequestHeader, GetTopicStatsInfoRequestHeader, PutKvConfigRequestHeader,
};
use rmq_remoting::protocol::admin::TopicStatsTable;
use rmq_remoting::{JsonBody, RemotingCommand, RemotingError, RequestCode, ResponseCode};

use super::*;
use crate::build::broker_group::BROKER_PORT;
use crate::build::nameserver::address;
use crate::crd::topic::DeletionPolicy;
use crate::crd::{BrokerGroup, NameServer, Topic, TopicStatus};

pub const FINALIZER: &str = "rocketmq.rs/topic";
/// The name servers' KV namespace whose entries become `orderTopicConf` in routes.
pub const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";
const TIMEOUT: Duration = Duration::from_secs(5);

/// The masters of a cluster (or of the named broker groups): `(brokerName, address)`, and the
/// name servers they use.
pub async fn targets(
    ctx: &Context,
    cluster: &str,
    only_groups: &[String],
    namespace: &str,
) -> Result<(Vec<(String, String)>, Vec<String>), Error> {
    let api: Api<BrokerGroup> = Api::namespaced(ctx.client.clone(), namespace);
    let groups = api.list(&ListParams::default()).await?;
    let mut masters = Vec::new();
    let mut name_servers: Vec<String> = Vec::new();
    for bg in groups.items {
        let name = bg.name_any();
        let selected = if only_groups.is_empty() {
            bg.spec.cluster_name == cluster
        } else {
            only_groups.contains(&name)
        };
        if !selected {
            continue;
        }
        let broker_name = bg.spec.broker_name.clone().unwrap_or_else(|| name.clone());
        // The master's advertised address if the status knows it, else its stable DNS name.
        let addr = bg
            .status
            .as_ref()
            .and_then(|s| {
                s.replicas
                    .iter()
                    .find(|r| r.role == crate::crd::broker_group::ReplicaRole::Master)
                    .and_then(|r| r.address.clone())
            })
            .unwrap_or_else(|| format!("{name}-0.{name}-headless.{namespace}.svc:{BROKER_PORT}"));
        masters.push((broker_name, addr));
        let ns_list = match (&bg.spec.name_server.address, &bg.spec.name_server.name) {
            (Some(a), _) => a.clone(),
            (None, Some(n)) => {
                let nsapi: Api<NameServer> = Api::namespaced(ctx.client.clone(), namespace);
                match nsapi.get_opt(n).await? {
                    Some(ns) => address(n, namespace, ns.spec.replicas),
                    None => String::new(),
                }
            }
            _ => String::new(),
        };
        for a in ns_list.split(';').map(str::trim).filter(|a| !a.is_empty()) {
            if !name_servers.iter().any(|x| x == a) {
                name_servers.push(a.to_string());
            }
        }
    }
    Ok((masters, name_servers))
}

fn cluster_of(t: &Topic) -> String {
    t.spec
        .cluster_name
        .clone()
        .unwrap_or_else(|| "DefaultCluster".into())
}

fn topic_name(t: &Topic) -> String {
    t.spec.topic_name.clone().unwrap_or_else(|| t.name_any())
}

pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = topic.namespace().ok_or(Error::NoNamespace)?;
    if paused(&*topic) {
        return Ok(Action::requeue(RESYNC));
    }
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    let ctx2 = ctx.clone();
    finalizer(&api, FINALIZER, topic, |event| async move {
        match event {
            Event::Apply(t) => apply_topic(&t, &ctx2, &namespace).await,
            Event::Cleanup(t) => cleanup_topic(&t, &ctx2, &namespace).await,
        }
    })
    .await
    .map_err(Error::from)
}

async fn apply_topic(t: &Topic, ctx: &Context, namespace: &str) -> Result<Action, Error> {
    let name = topic_name(t);
    let generation = t.metadata.generation;
    let previous = t
        .status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default();
    let (masters, name_servers) =
        targets(ctx, &cluster_of(t), &t.spec.broker_groups, namespace).await?;
    let mut brokers = BTreeMap::new();
    let mut failed = 0;
    for (broker, addr) in &masters {
        let header = CreateTopicRequestHeader {
            topic: name.clone(),
            default_topic: "TBW102".into(),
            read_queue_nums: t.spec.read_queue_nums,
            write_queue_nums: t.spec.write_queue_nums,
            perm: t.spec.permission.perm(),
            topic_filter_type: "SINGLE_TAG".into(),
            order: t.spec.order,
            ..Default::default()
        };
        let req =
            RemotingCommand::request_with_header(RequestCode::UPDATE_AND_CREATE_TOPIC, &header);
        let outcome = match ctx.remoting.invoke(addr, req, TIMEOUT).await {
            Ok(r) if r.code == ResponseCode::SUCCESS => "Created".to_string(),
            Ok(r) => format!("{}: {}", r.code_name(), r.remark.unwrap_or_default()),
            Err(e) => e.to_string(),
        };
        if outcome != "Created" {
            failed += 1;
            tracing::warn!(topic = %name, broker, %addr, outcome, "topic not created");
        }
        brokers.insert(broker.clone(), outcome);
    }
    // Ordered topics: routes carry `orderTopicConf` ("broker-a:8;broker-b:8"), which ordered
    // producers use to pick queues; RocketMQ's `updateTopic -o true` writes the same KV entry.
    let order_errors = if failed == 0 && !masters.is_empty() {
        order_config(t, ctx, &name, &masters, &name_servers).await
    } else {
        Vec::new()
    };
    for e in &order_errors {
        tracing::warn!(topic = %name, error = %e, "order config not written");
    }
    let ready = failed == 0 && !masters.is_empty() && order_errors.is_empty();
    let message = if masters.is_empty() {
        "no broker group matches".to_string()
    } else if !order_errors.is_empty() {
        format!("order config: {}", order_errors.join("; "))
    } else {
        format!("{}/{} brokers", masters.len() - failed, masters.len())
    };
    let status = TopicStatus {
        common: broker_admin_status(&previous, generation, ready, &message),
        brokers,
    };
    patch_status(&ctx.client, t, serde_json::to_value(&status)?).await?;
    if !ready {
        ctx.warn(t, "NotOnAllBrokers", "Create", message).await;
    } else if !was_true(&previous, "Ready") {
        ctx.normal(t, "Created", "Create", format!("on {message}"))
            .await;
    }
    Ok(if ready {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(Duration::from_secs(15))
    })
}

/// Writes (order: true) or removes (order: false) the topic's ORDER_TOPIC_CONFIG entry on
/// every name server; returns one message per name server that failed.
async fn order_config(
    t: &Topic,
    ctx: &Context,
    topic: &str,
    masters: &[(String, String)],
    name_servers: &[String],
) -> Vec<String> {
    let mut errors = Vec::new();
    for ns in name_servers {
        let req = if t.spec.order {
            RemotingCommand::request_with_header(
                RequestCode::PUT_KV_CONFIG,
                &PutKvConfigRequestHeader {
                    namespace: ORDER_TOPIC_CONFIG.into(),
                    key: topic.to_string(),
                    value: order_conf(masters, t.spec.write_queue_nums),
                },
            )
        } else {
            delete_order_config(topic)
        };
        match ctx.remoting.invoke(ns, req, TIMEOUT).await {
            Ok(r) if r.code == ResponseCode::SUCCESS => {}
            // Deleting an entry that is not there is fine.
            Ok(r) if !t.spec.order && r.code == ResponseCode::QUERY_NOT_FOUND => {}
            Ok(r) => errors.push(format!(
                "{ns}: {}: {}",
                r.code_name(),
                r.remark.unwrap_or_default()
            )),
            Err(e) => errors.push(format!("{ns}: {e}")),
        }
    }
    errors
}

/// `brokerName:writeQueueNums` for every master, joined by `;`, in broker-name order.
pub fn order_conf(masters: &[(String, String)], write_queue_nums: i32) -> String {
    let mut names: Vec<&str> = masters.iter().map(|(b, _)| b.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .iter()
        .map(|b| format!("{b}:{write_queue_nums}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn delete_order_config(topic: &str) -> RemotingCommand {
    RemotingCommand::request_with_header(
        RequestCode::DELETE_KV_CONFIG,
        &DeleteKvConfigRequestHeader {
            namespace: ORDER_TOPIC_CONFIG.into(),
            key: topic.to_string(),
        },
    )
}

/// Messages no consumer group has consumed yet, per broker: `(stored, consumed)` totals.
async fn unconsumed(ctx: &Context, topic: &str, addr: &str) -> Result<i64, Error> {
    let req = RemotingCommand::request_with_header(
        RequestCode::GET_TOPIC_STATS_INFO,
        &GetTopicStatsInfoRequestHeader {
            topic: topic.to_string(),
        },
    );
    let failed = |e| Error::broker(addr, e);
    let stats = match ctx
        .remoting
        .invoke(addr, req, TIMEOUT)
        .await
        .map_err(failed)?
    {
        r if r.code == ResponseCode::SUCCESS => TopicStatsTable::decode(&r.body).map_err(failed)?,
        r if r.code == ResponseCode::TOPIC_NOT_EXIST => return Ok(0),
        r => return Err(failed(RemotingError::remote(r.code, r.remark.as_deref()))),
    };
    let offsets = ctx
        .remoting
        .invoke(
            addr,
            RemotingCommand::request(RequestCode::GET_ALL_CONSUMER_OFFSET),
            TIMEOUT,
        )
        .await
        .map_err(failed)?;
    #[derive(serde::Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Offsets {
        offset_table: HashMap<String, HashMap<i32, i64>>,
    }
    let offsets: Offsets = rmq_remoting::fastjson::from_slice(&offsets.body).unwrap_or_default();
    let prefix = format!("{topic}@");
    let groups: Vec<&HashMap<i32, i64>> = offsets
        .offset_table
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| v)
        .collect();
    let mut left = 0;
    for (mq, o) in &stats.offset_table {
        let stored = o.max_offset - o.min_offset;
        if stored <= 0 {
            continue;
        }
        // The slowest group decides; with no group at all nothing was consumed.
        let consumed_to = groups
            .iter()
            .map(|g| g.get(&mq.queue_id).copied().unwrap_or(o.min_offset))
            .min()
            .unwrap_or(o.min_offset);
        left += (o.max_offset - consumed_to.max(o.min_offset)).max(0);
    }
    Ok(left)
}

async fn cleanup_topic(t: &Topic, ctx: &Context, namespace: &str) -> Result<Action, Error> {
    let name = topic_name(t);
    if t.spec.deletion_policy == DeletionPolicy::Retain {
        tracing::info!(topic = %name, "deletionPolicy Retain: topic left on the brokers");
        return Ok(Action::await_change());
    }
    let (masters, name_servers) =
        targets(ctx, &cluster_of(t), &t.spec.broker_groups, namespace).await?;
    if t.spec.deletion_policy == DeletionPolicy::DeleteIfEmpty {
        let mut left = 0;
        for (_, addr) in &masters {
            left += unconsumed(ctx, &name, addr).await?;
        }
        if left > 0 {
            let generation = t.metadata.generation;
            let previous = t
                .status
                .as_ref()
                .map(|s| s.common.conditions.clone())
                .unwrap_or_default();
            let msg = format!(
                "{left} messages not yet consumed; deletionPolicy DeleteIfEmpty keeps the topic"
            );
            let status = json_status(&previous, generation, &msg);
            patch_status(&ctx.client, t, status).await?;
            ctx.warn(t, "DeletionRefused", "Delete", msg.clone()).await;
            return Err(Error::DeletionRefused(msg));
        }
    }
    for (broker, addr) in &masters {
        let req = RemotingCommand::request_with_header(
            RequestCode::DELETE_TOPIC_IN_BROKER,
            &DeleteTopicRequestHeader {
                topic: name.clone(),
            },
        );
        ctx.remoting
            .invoke(addr, req, TIMEOUT)
            .await
            .and_then(RemotingCommand::ensure_success)
            .map_err(|e| Error::broker(broker, e))?;
    }
    for ns in &name_servers {
        let req = RemotingCommand::request_with_header(
            RequestCode::DELETE_TOPIC_IN_NAMESRV,
            &DeleteTopicFromNamesrvRequestHeader {
                topic: name.clone(),
                cluster_name: t.spec.cluster_name.clone(),
            },
        );
        if let Err(e) = ctx.remoting.invoke(ns, req, TIMEOUT).await {
            tracing::warn!(namesrv = %ns, error = %e, "topic route not deleted from a name server");
        }
        if t.spec.order {
            if let Err(e) = ctx
                .remoting
                .invoke(ns, delete_order_config(&name), TIMEOUT)
                .await
            {
                tracing::warn!(namesrv = %ns, error = %e, "order config not deleted from a name server");
            }
        }
    }
    tracing::info!(topic = %name, brokers = masters.len(), "topic deleted");
    ctx.normal(
        t,
        "Deleted",
        "Delete",
        format!("deleted from {} brokers", masters.len()),
    )
    .await;
    Ok(Action::await_change())
}

fn json_status(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    generation: Option<i64>,
    msg: &str,
) -> serde_json::Value {
    serde_json::json!({
        "conditions": [condition(previous, "DeletionBlocked", true, "UnconsumedMessages", msg.to_string(), generation)],
        "observedGeneration": generation,
    })
}
