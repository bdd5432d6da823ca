//! `BrokerGroup` reconciler.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::*;
use crate::build::broker_group::build;
use crate::build::external;
use crate::build::nameserver::headless_address;
use crate::crd::broker_group::{AddressMode, ExternalType};
use crate::crd::{BrokerGroup, BrokerGroupStatus, NameServer};

/// The name-server list a broker group uses: its `NameServer`'s pods, or the given address.
async fn namesrv_addr(ctx: &Context, bg: &BrokerGroup, namespace: &str) -> Result<String, Error> {
    if let Some(name) = &bg.spec.name_server.name {
        let api: Api<NameServer> = Api::namespaced(ctx.client.clone(), namespace);
        return Ok(match api.get_opt(name).await? {
            Some(_) => headless_address(name, namespace),
            None => String::new(),
        });
    }
    Ok(bg.spec.name_server.address.clone().unwrap_or_default())
}

/// Deletes the group's per-pod external Services that the spec no longer wants (scale-down,
/// or a change of addressing mode), so no port stays open to a pod that is gone.
async fn remove_stale_external_services(
    client: &kube::Client,
    namespace: &str,
    group: &str,
    wanted: &[Service],
) -> Result<(), Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "app.kubernetes.io/instance={group},{}=true",
        external::EXTERNAL_LABEL
    );
    let existing = api.list(&ListParams::default().labels(&selector)).await?;
    for svc in existing.items {
        let svc_name = svc.name_any();
        if !wanted
            .iter()
            .any(|w| w.metadata.name.as_deref() == Some(&svc_name))
        {
            tracing::info!(service = %svc_name, "deleting a per-pod external Service no longer wanted");
            api.delete(&svc_name, &Default::default()).await?;
        }
    }
    Ok(())
}

enum FailoverOutcome {
    Promoted { pod: String, epoch: i64 },
    Blocked(String),
}

/// How long the group has been not Ready, from its previous Ready condition.
fn unready_secs(previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> i64 {
    previous
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "False")
        .map(|c| {
            let since = c.last_transition_time.0;
            (k8s_openapi::jiff::Timestamp::now().as_second() - since.as_second()).max(0)
        })
        .unwrap_or(0)
}

/// A broker's commit-log max offset over the wire (GET_BROKER_RUNTIME_INFO).
async fn max_offset(ctx: &Context, addr: &str) -> Option<i64> {
    use rmq_remoting::{JsonBody, RemotingCommand, RequestCode};
    let r = ctx
        .remoting
        .invoke(
            addr,
            RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO),
            std::time::Duration::from_secs(3),
        )
        .await
        .ok()?;
    let kv = rmq_remoting::protocol::KvTable::decode(&r.body).ok()?;
    kv.table.get("commitLogMaxOffset")?.parse().ok()
}

/// When the master pod has been unready past the grace period, promotes the most caught-up
/// in-sync slave (NOTIFY_BROKER_ROLE_CHANGED with the next epoch).
async fn failover_step(
    ctx: &Context,
    bg: &BrokerGroup,
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    replicas: &mut [crate::crd::broker_group::ReplicaStatus],
) -> Option<FailoverOutcome> {
    use crate::build::failover::{decide, Candidate, Decision};
    if replicas.len() < 2 {
        return None; // no slave to promote
    }
    let master = crate::build::broker_group::master_ordinal(bg);
    let master_ready = replicas.get(master as usize).is_some_and(|r| r.ready);
    let mut waited = unready_secs(previous);
    // A manual switch: skip the grace period, and consider only the named pod.
    let wanted = bg
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::crd::PROMOTE_ANNOTATION))
        .filter(|p| !p.is_empty())
        .cloned();
    if let Some(pod) = &wanted {
        if master_ready {
            return (pod != &format!("{}-{master}", bg.name_any())).then(|| {
                FailoverOutcome::Blocked(format!(
                    "{} asks to promote {pod}, but the master pod is ready: a live master is not demoted",
                    crate::crd::PROMOTE_ANNOTATION
                ))
            });
        }
        waited = waited.max(bg.spec.failover.grace_seconds);
    }
    // Asked for by name, a switch happens even with automatic failover off.
    let spec = &crate::crd::broker_group::FailoverSpec {
        enabled: bg.spec.failover.enabled || wanted.is_some(),
        ..bg.spec.failover.clone()
    };
    // Nothing to ask the brokers before the grace period is over.
    match decide(spec, master_ready, waited, None, &[]) {
        Decision::Healthy | Decision::Disabled | Decision::Waiting { .. } => return None,
        _ => {}
    }
    let mut candidates = Vec::new();
    for r in replicas
        .iter()
        .filter(|r| r.pod != format!("{}-{master}", bg.name_any()))
        .filter(|r| wanted.as_ref().is_none_or(|w| w == &r.pod))
    {
        let ordinal: i32 = r.pod.rsplit('-').next()?.parse().ok()?;
        let offset = match (&r.address, r.ready) {
            (Some(addr), true) => max_offset(ctx, addr).await,
            _ => None,
        };
        candidates.push(Candidate {
            ordinal,
            pod: r.pod.clone(),
            ready: r.ready,
            max_offset: offset,
        });
    }
    match decide(spec, master_ready, waited, None, &candidates) {
        Decision::Promote { ordinal, pod } => {
            let addr = replicas
                .iter()
                .find(|r| r.pod == pod)
                .and_then(|r| r.address.clone())?;
            let epoch = bg.status.as_ref().map(|s| s.epoch).unwrap_or(0).max(1) + 1;
            let role = match bg.spec.broker_role {
                crate::crd::broker_group::BrokerRole::SyncMaster => "SYNC_MASTER",
                crate::crd::broker_group::BrokerRole::AsyncMaster => "ASYNC_MASTER",
            };
            let mut req = rmq_remoting::RemotingCommand::request(
                rmq_remoting::RequestCode::NOTIFY_BROKER_ROLE_CHANGED,
            );
            req.ext_fields.insert("masterAddress".into(), addr.clone());
            req.ext_fields
                .insert("masterEpoch".into(), epoch.to_string());
            req.ext_fields.insert("masterBrokerId".into(), "0".into());
            req.ext_fields.insert("brokerRole".into(), role.into());
            match ctx
                .remoting
                .invoke(&addr, req, std::time::Duration::from_secs(5))
                .await
                .and_then(|r| r.ensure_success())
            {
                Ok(_) => {
                    tracing::warn!(group = %bg.name_any(), %pod, epoch, "promoted a slave to master");
                    for r in replicas.iter_mut() {
                        let o: i32 = r
                            .pod
                            .rsplit('-')
                            .next()
                            .and_then(|o| o.parse().ok())
                            .unwrap_or(-1);
                        r.role = if o == ordinal { "MASTER" } else { "SLAVE" }.into();
                        r.broker_id = crate::build::failover::broker_id(o, ordinal);
                    }
                    Some(FailoverOutcome::Promoted { pod, epoch })
                }
                Err(e) => Some(FailoverOutcome::Blocked(format!(
                    "promoting {pod} failed: {e}"
                ))),
            }
        }
        Decision::Blocked(reason) => Some(FailoverOutcome::Blocked(reason)),
        _ => None,
    }
}

pub async fn reconcile(bg: Arc<BrokerGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = bg.namespace().ok_or(Error::NoNamespace)?;
    if paused(&*bg) {
        tracing::info!(name = %bg.name_any(), "reconciliation paused by annotation");
        return Ok(Action::requeue(RESYNC));
    }
    let generation = bg.metadata.generation;
    let previous = bg
        .status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default();
    let owner = owner_of(&*bg)?;
    let ns_addr = namesrv_addr(&ctx, &bg, &namespace).await?;
    let objects = match build(&bg, &owner, &ns_addr) {
        Ok(o) => o,
        Err(e) => {
            let status = BrokerGroupStatus {
                common: invalid_spec_status(&previous, generation, &e.to_string()),
                ..Default::default()
            };
            patch_status(&ctx.client, &*bg, serde_json::to_value(&status)?).await?;
            ctx.warn(&*bg, "InvalidSpec", "Validate", e.to_string())
                .await;
            return Ok(Action::await_change());
        }
    };
    let c = &ctx.client;
    let name = bg.name_any();
    apply::<ConfigMap>(c, &namespace, &objects.config).await?;
    apply::<Service>(c, &namespace, &objects.headless).await?;
    let mut lb_hosts = Vec::new();
    for svc in &objects.external {
        let applied = apply::<Service>(c, &namespace, svc).await?;
        lb_hosts.push(external::load_balancer_host(&applied));
    }
    let load_balanced = bg
        .spec
        .addressing
        .external
        .as_ref()
        .is_some_and(|e| e.type_ == ExternalType::LoadBalancer)
        && bg.spec.addressing.mode == AddressMode::External;
    if load_balanced {
        let labels = objects.config.metadata.labels.clone().unwrap_or_default();
        let hosts = external::hosts_config(&owner, &name, &labels, &lb_hosts);
        apply::<ConfigMap>(c, &namespace, &hosts).await?;
    }
    let sts = apply::<StatefulSet>(c, &namespace, &objects.stateful_set).await?;
    apply::<PodDisruptionBudget>(c, &namespace, &objects.pdb).await?;
    remove_stale_external_services(c, &namespace, &name, &objects.external).await?;

    let want = bg.spec.replicas;
    let ready = sts
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let updated = sts
        .status
        .as_ref()
        .and_then(|s| s.updated_replicas)
        .unwrap_or(0);
    let all_ready = ready >= want && updated >= want;
    // Each replica's readiness and advertised address, from its pod.
    let selector = crate::build::selector(&name, crate::build::broker_group::COMPONENT)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(c.clone(), &namespace);
    let pods = pods.list(&ListParams::default().labels(&selector)).await?;
    let replicas = super::replicas::replica_status_with_master(
        &name,
        want,
        crate::build::broker_group::master_ordinal(&bg),
        &bg.spec.addressing,
        &pods.items,
        &lb_hosts,
    );
    let mut replicas = replicas;
    let failover = failover_step(&ctx, &bg, &previous, &mut replicas).await;
    let (master_pod, epoch) = match &failover {
        Some(FailoverOutcome::Promoted { pod, epoch }) => (pod.clone(), *epoch),
        _ => (
            format!("{name}-{}", crate::build::broker_group::master_ordinal(&bg)),
            bg.status.as_ref().map(|s| s.epoch).unwrap_or(0),
        ),
    };
    let blocked = match &failover {
        Some(FailoverOutcome::Blocked(reason)) => Some(reason.clone()),
        _ => None,
    };
    let status = BrokerGroupStatus {
        common: crate::crd::CommonStatus {
            observed_generation: generation,
            conditions: vec![
                condition(
                    &previous,
                    "Ready",
                    all_ready,
                    if all_ready {
                        "AllReplicasReady"
                    } else {
                        "ReplicasNotReady"
                    },
                    format!("{ready}/{want} ready, {updated} updated"),
                    generation,
                ),
                condition(
                    &previous,
                    "Progressing",
                    !all_ready,
                    if all_ready { "Stable" } else { "RollingOut" },
                    format!("{ready}/{want} ready, {updated} updated"),
                    generation,
                ),
                condition(
                    &previous,
                    "Degraded",
                    ns_addr.is_empty() || blocked.is_some(),
                    if ns_addr.is_empty() {
                        "NoNameServer"
                    } else if blocked.is_some() {
                        "FailoverBlocked"
                    } else {
                        "Reconciled"
                    },
                    blocked.clone().unwrap_or_default(),
                    generation,
                ),
            ],
        },
        ready_replicas: ready,
        master_pod: Some(master_pod),
        epoch,
        replicas,
    };
    patch_status(c, &*bg, serde_json::to_value(&status)?).await?;
    match failover {
        Some(FailoverOutcome::Promoted { pod, epoch }) => {
            ctx.normal(
                &*bg,
                "Promoted",
                "Failover",
                format!("master pod unready past the grace period: {pod} promoted, epoch {epoch}"),
            )
            .await
        }
        Some(FailoverOutcome::Blocked(reason)) => {
            ctx.warn(&*bg, "FailoverBlocked", "Failover", reason).await
        }
        None => {}
    }
    ctx.ready_transition(
        &*bg,
        &previous,
        all_ready,
        "Ready",
        &format!("{ready}/{want} brokers ready, {updated} updated"),
    )
    .await;
    Ok(if all_ready {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(std::time::Duration::from_secs(10))
    })
}
