//! `BrokerGroup` reconciler. One pass, in order:
//!
//! 1. validate the spec (an invalid one is reported, and nothing is applied);
//! 2. build its objects (pure);
//! 3. apply them in a fixed order (`apply.rs`);
//! 4. observe the pods (`replicas.rs`), and run the failover/switchover step (`failover.rs`);
//! 5. make the leader known: status, promote annotation, master Service, role labels
//!    (`roles.rs`);
//! 6. write the status computed from all that (`status.rs`), then the Events (`events.rs`).

mod apply;
mod events;
pub mod failover;
pub mod replicas;
mod roles;
mod status;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use self::roles::Leader;
use self::status::Observed;
use super::*;
use crate::build::broker_group::{objects, COMPONENT};
use crate::build::nameserver::headless_address;
use crate::build::SpecError;
use crate::crd::{BrokerGroup, BrokerGroupStatus, NameServer};
use crate::validate::broker_group::validate;

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
    let c = &ctx.client;

    let ns_addr = namesrv_addr(&ctx, &bg, &namespace).await?;
    let group = match validate(&bg, &owner.name, &ns_addr) {
        Ok(g) => g,
        Err(e) => return reject(&ctx, &bg, &previous, generation, e).await,
    };
    let objects = objects(&group, &owner, ctx.admin.as_ref());
    let applied = apply::apply_objects(c, &namespace, &owner, &group, &objects).await?;

    let pods = group_pods(c, &namespace, &group.name).await?;
    // Every pod still running, including a master a scale-down waits for.
    let mut replicas = replicas::replica_status_with_master(
        &group.name,
        group.replicas,
        group.master,
        &bg.spec.addressing,
        &pods,
        &applied.lb_hosts,
    );
    let outcome = failover::step(
        &ctx,
        &bg,
        &previous,
        &pods,
        &mut replicas,
        applied.rollout.pending,
    )
    .await;
    let outcome = outcome.as_ref();
    let leader = Leader::after(&group, outcome);

    roles::record_promotion(c, &bg, outcome).await?;
    roles::clear_promote_annotation(c, &namespace, &bg, &leader).await?;
    // Only while the master stays where it is (a promoted one tells the former itself).
    let stepped_down = match outcome {
        None => failover::step_down_others(&ctx, &bg, &replicas, &leader.pod, leader.epoch).await,
        Some(_) => Vec::new(),
    };
    roles::apply_master_service(c, &namespace, &owner, &group.name, &objects.master, &leader)
        .await?;
    roles::label_pods(c, &namespace, &pods, &leader.pod).await?;

    let observed = Observed {
        generation,
        previous: &previous,
        want: bg.spec.replicas,
        rollout: applied.rollout,
        has_name_server: !ns_addr.is_empty(),
        leader: &leader,
        failover: outcome,
        replicas: &replicas,
    };
    patch_status(c, &*bg, serde_json::to_value(status::status(&observed))?).await?;
    events::publish(&ctx, &bg, &observed, &stepped_down).await;
    Ok(Action::requeue(status::requeue(&observed)))
}

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

/// An invalid spec: reported in status and a Warning Event, not retried until it changes.
async fn reject(
    ctx: &Context,
    bg: &BrokerGroup,
    previous: &[Condition],
    generation: Option<i64>,
    e: SpecError,
) -> Result<Action, Error> {
    let status = BrokerGroupStatus {
        common: invalid_spec_status(previous, generation, &e.to_string()),
        ..Default::default()
    };
    patch_status(&ctx.client, bg, serde_json::to_value(&status)?).await?;
    ctx.warn(bg, "InvalidSpec", "Validate", e.to_string()).await;
    Ok(Action::await_change())
}

/// The group's pods, for their readiness and advertised addresses.
async fn group_pods(
    client: &kube::Client,
    namespace: &str,
    group: &str,
) -> Result<Vec<Pod>, Error> {
    let selector = crate::build::selector(group, COMPONENT)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}
