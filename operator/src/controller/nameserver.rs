//! `NameServer` reconciler: validate, build, apply in a fixed order, status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::*;
use crate::build::nameserver::{address, objects};
use crate::crd::{NameServer, NameServerStatus};
use crate::validate::nameserver::validate;

pub async fn reconcile(ns: Arc<NameServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = ns.namespace().ok_or(Error::NoNamespace)?;
    if paused(&*ns) {
        tracing::info!(name = %ns.name_any(), "reconciliation paused by annotation");
        return Ok(Action::requeue(RESYNC));
    }
    let generation = ns.metadata.generation;
    let previous = ns
        .status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default();
    let owner = owner_of(&*ns)?;
    let valid = match validate(&ns) {
        Ok(v) => v,
        Err(e) => {
            // An invalid spec is reported, never retried until the object changes.
            let status = NameServerStatus {
                common: invalid_spec_status(&previous, generation, &e.to_string()),
                ..Default::default()
            };
            patch_status(&ctx.client, &*ns, serde_json::to_value(&status)?).await?;
            ctx.warn(&*ns, "InvalidSpec", "Validate", e.to_string())
                .await;
            return Ok(Action::await_change());
        }
    };
    let objects = objects(&valid, &owner, ctx.admin.as_ref());
    let c = &ctx.client;
    if let Some(secret) = &objects.admin_secret {
        apply::<k8s_openapi::api::core::v1::Secret>(c, &namespace, secret).await?;
    }
    apply::<ConfigMap>(c, &namespace, &objects.config).await?;
    apply::<Service>(c, &namespace, &objects.headless).await?;
    apply::<Service>(c, &namespace, &objects.service).await?;
    let sts = apply::<StatefulSet>(c, &namespace, &objects.stateful_set).await?;
    apply::<PodDisruptionBudget>(c, &namespace, &objects.pdb).await?;

    let ready = sts
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let want = ns.spec.replicas;
    let address = address(&ns.name_any(), &namespace, want);
    let status = status(&previous, generation, ready, want, address);
    patch_status(c, &*ns, serde_json::to_value(&status)?).await?;
    let all_ready = ready >= want;
    ctx.ready_transition(
        &*ns,
        &previous,
        all_ready,
        "Ready",
        &format!("{ready}/{want} name servers ready"),
    )
    .await;
    Ok(if all_ready {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(Duration::from_secs(10))
    })
}

/// The status from the StatefulSet's `ready` pods of `want`; `address` is the clients' list.
pub fn status(
    previous: &[Condition],
    generation: Option<i64>,
    ready: i32,
    want: i32,
    address: String,
) -> NameServerStatus {
    let all_ready = ready >= want;
    NameServerStatus {
        common: crate::crd::CommonStatus {
            observed_generation: generation,
            conditions: vec![
                condition(
                    previous,
                    "Ready",
                    all_ready,
                    if all_ready {
                        "AllReplicasReady"
                    } else {
                        "ReplicasNotReady"
                    },
                    format!("{ready}/{want} ready"),
                    generation,
                ),
                condition(
                    previous,
                    "Progressing",
                    !all_ready,
                    if all_ready { "Stable" } else { "RollingOut" },
                    format!("{ready}/{want} ready"),
                    generation,
                ),
                condition(
                    previous,
                    "Degraded",
                    false,
                    "Reconciled",
                    String::new(),
                    generation,
                ),
            ],
        },
        ready_replicas: ready,
        address: Some(address),
    }
}
