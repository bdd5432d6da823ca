//! `ConsumerGroup` reconciler: subscription-group settings on every master of the cluster
//! (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP), removed through a finalizer when the object goes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::{Api, ResourceExt};
use rmq_remoting::header::DeleteSubscriptionGroupRequestHeader;
use rmq_remoting::protocol::admin::SubscriptionGroupConfig;
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode, ResponseCode};

use super::topic::targets;
use super::*;
use crate::crd::{ConsumerGroup, ConsumerGroupStatus};

pub const FINALIZER: &str = "rocketmq.rs/consumergroup";
const TIMEOUT: Duration = Duration::from_secs(5);

fn group_name(g: &ConsumerGroup) -> String {
    g.spec.group_name.clone().unwrap_or_else(|| g.name_any())
}

/// The broker-side config the spec stands for.
pub fn config(g: &ConsumerGroup) -> SubscriptionGroupConfig {
    SubscriptionGroupConfig {
        group_name: group_name(g),
        consume_enable: g.spec.consume_enable,
        consume_from_min_enable: g.spec.consume_from_min_enable,
        consume_broadcast_enable: g.spec.consume_broadcast_enable,
        consume_message_orderly: g.spec.consume_message_orderly,
        retry_queue_nums: g.spec.retry_queue_nums,
        retry_max_times: g.spec.retry_max_times,
        ..Default::default()
    }
}

pub async fn reconcile(group: Arc<ConsumerGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = group.namespace().ok_or(Error::NoNamespace)?;
    if paused(&*group) {
        return Ok(Action::requeue(RESYNC));
    }
    let api: Api<ConsumerGroup> = Api::namespaced(ctx.client.clone(), &namespace);
    let ctx2 = ctx.clone();
    finalizer(&api, FINALIZER, group, |event| async move {
        match event {
            Event::Apply(g) => apply_group(&g, &ctx2, &namespace).await,
            Event::Cleanup(g) => cleanup_group(&g, &ctx2, &namespace).await,
        }
    })
    .await
    .map_err(Error::from)
}

async fn apply_group(g: &ConsumerGroup, ctx: &Context, namespace: &str) -> Result<Action, Error> {
    let generation = g.metadata.generation;
    let previous = g
        .status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default();
    let (masters, _) = targets(ctx, &g.spec.cluster_name, &[], namespace).await?;
    let body = config(g).encode();
    let mut brokers = BTreeMap::new();
    let mut failed = 0;
    for (broker, addr) in &masters {
        let req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(body.clone());
        let outcome = match ctx.remoting.invoke(addr, req, TIMEOUT).await {
            Ok(r) if r.code == ResponseCode::SUCCESS => "Created".to_string(),
            Ok(r) => format!("{}: {}", r.code_name(), r.remark.unwrap_or_default()),
            Err(e) => e.to_string(),
        };
        if outcome != "Created" {
            failed += 1;
        }
        brokers.insert(broker.clone(), outcome);
    }
    let ready = failed == 0 && !masters.is_empty();
    let message = if masters.is_empty() {
        "no broker group matches".to_string()
    } else {
        format!("{}/{} brokers", masters.len() - failed, masters.len())
    };
    let status = ConsumerGroupStatus {
        common: broker_admin_status(&previous, generation, ready, &message),
        brokers,
    };
    patch_status(&ctx.client, g, serde_json::to_value(&status)?).await?;
    if !ready {
        ctx.warn(g, "NotOnAllBrokers", "Create", message).await;
    } else if !was_true(&previous, "Ready") {
        ctx.normal(g, "Created", "Create", format!("on {message}"))
            .await;
    }
    Ok(if ready {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(Duration::from_secs(15))
    })
}

async fn cleanup_group(g: &ConsumerGroup, ctx: &Context, namespace: &str) -> Result<Action, Error> {
    let (masters, _) = targets(ctx, &g.spec.cluster_name, &[], namespace).await?;
    for (broker, addr) in &masters {
        let req = RemotingCommand::request_with_header(
            RequestCode::DELETE_SUBSCRIPTIONGROUP,
            &DeleteSubscriptionGroupRequestHeader {
                group_name: group_name(g),
                clean_offset: Some(false),
            },
        );
        ctx.remoting
            .invoke(addr, req, TIMEOUT)
            .await
            .and_then(RemotingCommand::ensure_success)
            .map_err(|e| Error::broker(broker, e))?;
    }
    ctx.normal(
        g,
        "Deleted",
        "Delete",
        format!("removed from {} brokers", masters.len()),
    )
    .await;
    Ok(Action::await_change())
}
