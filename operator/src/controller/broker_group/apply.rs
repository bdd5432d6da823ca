//! The apply step: the group's objects, server-side applied in a fixed order (the config
//! before the pods that mount it), and what is no longer wanted removed. The master Service
//! waits for the failover step, which may move it.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::status::Rollout;
use crate::build::broker_group::BrokerGroupObjects;
use crate::build::{external, Owner};
use crate::controller::{apply, Error};
use crate::crd::broker_group::ExternalType;
use crate::validate::broker_group::ValidatedBrokerGroup;

/// What the API server answered to the apply.
pub struct Applied {
    pub rollout: Rollout,
    /// Each pod's load-balancer address, once the cloud has given one (`External`
    /// LoadBalancer; empty otherwise).
    pub lb_hosts: Vec<Option<String>>,
}

pub async fn apply_objects(
    c: &Client,
    namespace: &str,
    owner: &Owner,
    group: &ValidatedBrokerGroup<'_>,
    objects: &BrokerGroupObjects,
) -> Result<Applied, Error> {
    // The credential before the pods that mount it.
    if let Some(secret) = &objects.admin_secret {
        apply::<k8s_openapi::api::core::v1::Secret>(c, namespace, secret).await?;
    }
    apply::<ConfigMap>(c, namespace, &objects.config).await?;
    apply::<Service>(c, namespace, &objects.headless).await?;
    let mut lb_hosts = Vec::new();
    for svc in &objects.external {
        let applied = apply::<Service>(c, namespace, svc).await?;
        lb_hosts.push(external::load_balancer_host(&applied));
    }
    if group.external_type() == Some(ExternalType::LoadBalancer) {
        let labels = objects.config.metadata.labels.clone().unwrap_or_default();
        let hosts = external::hosts_config(owner, &group.name, &labels, &lb_hosts);
        apply::<ConfigMap>(c, namespace, &hosts).await?;
    }
    let sts = apply::<StatefulSet>(c, namespace, &objects.stateful_set).await?;
    apply::<PodDisruptionBudget>(c, namespace, &objects.pdb).await?;
    match &objects.network_policy {
        Some(np) => {
            apply::<NetworkPolicy>(c, namespace, np).await?;
        }
        None => {
            let api: Api<NetworkPolicy> = Api::namespaced(c.clone(), namespace);
            if api.get_opt(&group.name).await?.is_some() {
                api.delete(&group.name, &Default::default()).await?;
            }
        }
    }
    remove_stale_external_services(c, namespace, &group.name, &objects.external).await?;
    Ok(Applied {
        rollout: Rollout::of(&sts),
        lb_hosts,
    })
}

/// Deletes the group's per-pod external Services that the spec no longer wants (scale-down,
/// or a change of addressing mode), so no port stays open to a pod that is gone.
async fn remove_stale_external_services(
    client: &Client,
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
