//! `BrokerGroup` reconciler.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::failover::Outcome;
use super::*;
use crate::build::broker_group::{build, master_ordinal, master_service, ROLE_LABEL};
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
    match &objects.network_policy {
        Some(np) => {
            apply::<NetworkPolicy>(c, &namespace, np).await?;
        }
        None => {
            let api: Api<NetworkPolicy> = Api::namespaced(c.clone(), &namespace);
            if api.get_opt(&name).await?.is_some() {
                api.delete(&name, &Default::default()).await?;
            }
        }
    }
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
    // Every pod still running, including a master a scale-down waits for.
    let replicas = super::replicas::replica_status_with_master(
        &name,
        crate::build::broker_group::kept_replicas(&bg),
        master_ordinal(&bg),
        &bg.spec.addressing,
        &pods.items,
        &lb_hosts,
    );
    let mut replicas = replicas;
    let roll_pending = sts
        .status
        .as_ref()
        .is_some_and(|s| s.update_revision.is_some() && s.update_revision != s.current_revision);
    let failover = super::failover::step(
        &ctx,
        &bg,
        &previous,
        &pods.items,
        &mut replicas,
        roll_pending,
    )
    .await;
    let (master_pod, epoch) = match &failover {
        Some(Outcome::Promoted { pod, epoch, .. }) => (pod.clone(), *epoch),
        _ => (
            format!("{name}-{}", master_ordinal(&bg)),
            super::failover::status_epoch(&bg),
        ),
    };
    // Recorded at once: whatever fails below, the next pass must know who leads now.
    if let Some(Outcome::Promoted { pod, epoch, .. }) = &failover {
        patch_status(
            c,
            &*bg,
            serde_json::json!({ "masterPod": pod, "epoch": epoch.0 }),
        )
        .await?;
    }
    // A promote annotation naming the master is done with: removed, so it neither repeats
    // nor pins a later failover to that pod.
    if bg
        .annotations()
        .get(crate::crd::PROMOTE_ANNOTATION)
        .is_some_and(|p| *p == master_pod)
    {
        let api: Api<BrokerGroup> = Api::namespaced(c.clone(), &namespace);
        let patch = serde_json::json!({
            "metadata": { "annotations": { crate::crd::PROMOTE_ANNOTATION: null } }
        });
        api.patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    }
    let stepped_down = match &failover {
        None => super::failover::step_down_others(&ctx, &bg, &replicas, &master_pod, epoch).await,
        Some(_) => Vec::new(),
    };
    let blocked = match &failover {
        Some(Outcome::Blocked(reason)) => Some(reason.clone()),
        _ => None,
    };
    // The master Service and the role labels follow the master.
    let master_svc = match &failover {
        Some(Outcome::Promoted { .. }) => {
            let spec = objects.master.spec.clone().unwrap_or_default();
            master_service(
                &owner,
                &name,
                &master_pod,
                &objects.master.metadata.labels.clone().unwrap_or_default(),
                spec.ports.unwrap_or_default(),
            )
        }
        _ => objects.master.clone(),
    };
    apply::<Service>(c, &namespace, &master_svc).await?;
    label_roles(c, &namespace, &pods.items, &master_pod).await?;
    let master_ordinal_now = master_pod
        .rsplit('-')
        .next()
        .and_then(|o| o.parse::<i32>().ok())
        .unwrap_or(0);
    let scale_blocked = (master_ordinal_now >= want).then(|| {
        format!(
            "scaling to {want} would remove the master {master_pod}; it stays until another pod leads"
        )
    });
    // Who leads, and if nobody does, why and for how long yet.
    let master_ready = replicas.iter().any(|r| r.pod == master_pod && r.ready);
    let (leads, lead_reason, lead_note) = match &failover {
        Some(Outcome::Promoted {
            pod,
            epoch,
            switchover,
        }) => (
            true,
            if *switchover { "SwitchedOver" } else { "Promoted" },
            format!("{pod} leads from epoch {epoch}"),
        ),
        // A switch that could not happen leaves a live master leading.
        Some(Outcome::Blocked(_)) if master_ready => {
            (true, "Leading", format!("{master_pod} leads, epoch {epoch}"))
        }
        Some(Outcome::Blocked(reason)) => (false, "FailoverBlocked", reason.clone()),
        Some(Outcome::Waiting(secs)) => (
            false,
            "MasterDown",
            format!("{master_pod} is not ready; the most caught-up slave is promoted in {secs} s unless it returns"),
        ),
        None if master_ready => (true, "Leading", format!("{master_pod} leads, epoch {epoch}")),
        None => (false, "MasterDown", format!("{master_pod} is not ready")),
    };
    let status = BrokerGroupStatus {
        common: crate::crd::CommonStatus {
            observed_generation: generation,
            conditions: vec![
                condition(
                    &previous,
                    "MasterReady",
                    leads,
                    lead_reason,
                    lead_note,
                    generation,
                ),
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
                    ns_addr.is_empty() || blocked.is_some() || scale_blocked.is_some(),
                    if ns_addr.is_empty() {
                        "NoNameServer"
                    } else if blocked.is_some() {
                        "FailoverBlocked"
                    } else if scale_blocked.is_some() {
                        "ScaleDownBlocked"
                    } else {
                        "Reconciled"
                    },
                    blocked.clone().or(scale_blocked).unwrap_or_default(),
                    generation,
                ),
            ],
        },
        ready_replicas: ready,
        master_pod: Some(master_pod.clone()),
        epoch: epoch.0.into(),
        replicas,
    };
    patch_status(c, &*bg, serde_json::to_value(&status)?).await?;
    let mut next = if all_ready {
        RESYNC
    } else {
        std::time::Duration::from_secs(10)
    };
    match failover {
        Some(Outcome::Promoted {
            pod,
            epoch,
            switchover,
        }) => {
            let note = if switchover {
                format!("master switched to {pod} with nothing cut, epoch {epoch}")
            } else {
                format!("master unreachable past the grace period: {pod} promoted, epoch {epoch}")
            };
            ctx.normal(&*bg, "Promoted", "Failover", note).await
        }
        Some(Outcome::Blocked(reason)) if master_ready => {
            ctx.warn(&*bg, "SwitchBlocked", "Switchover", reason).await
        }
        Some(Outcome::Blocked(reason)) => {
            ctx.warn(&*bg, "FailoverBlocked", "Failover", reason).await
        }
        // Back exactly when the grace period ends.
        Some(Outcome::Waiting(secs)) => {
            next = next.min(std::time::Duration::from_secs(secs.max(0) as u64 + 1))
        }
        None => {}
    }
    for pod in stepped_down {
        ctx.warn(
            &*bg,
            "SecondMaster",
            "Failover",
            format!("{pod} ran as a master besides {master_pod}; told to step down and follow"),
        )
        .await;
    }
    ctx.ready_transition(
        &*bg,
        &previous,
        all_ready,
        "Ready",
        &format!("{ready}/{want} brokers ready, {updated} updated"),
    )
    .await;
    Ok(Action::requeue(next))
}

/// Labels each broker pod `rocketmq.rs/role: master|slave` (merge patch, only on a change).
async fn label_roles(
    client: &kube::Client,
    namespace: &str,
    pods: &[Pod],
    master_pod: &str,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for p in pods {
        let pod_name = p.name_any();
        let role = if pod_name == master_pod {
            "master"
        } else {
            "slave"
        };
        if p.labels().get(ROLE_LABEL).map(String::as_str) == Some(role) {
            continue;
        }
        let patch = serde_json::json!({ "metadata": { "labels": { ROLE_LABEL: role } } });
        api.patch(
            &pod_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}
