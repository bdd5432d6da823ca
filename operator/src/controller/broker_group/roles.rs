//! Who leads after the failover step, made visible: the promotion recorded at once, the
//! promote annotation cleared, the `<group>-master` Service and the pods' role labels.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use rmq_remoting::role::Epoch;

use super::failover::{status_epoch, Outcome};
use crate::build::broker_group::{master_service, ROLE_LABEL};
use crate::build::Owner;
use crate::controller::{apply, patch_status, Error};
use crate::crd::{BrokerGroup, PROMOTE_ANNOTATION};
use crate::validate::broker_group::ValidatedBrokerGroup;

/// The master after the failover step, and its epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    pub pod: String,
    pub epoch: Epoch,
}

impl Leader {
    /// The promoted pod, else the master the status records.
    pub fn after(group: &ValidatedBrokerGroup, failover: Option<&Outcome>) -> Leader {
        match failover {
            Some(Outcome::Promoted { pod, epoch, .. }) => Leader {
                pod: pod.clone(),
                epoch: *epoch,
            },
            _ => Leader {
                pod: format!("{}-{}", group.name, group.master),
                epoch: status_epoch(group.group),
            },
        }
    }

    pub fn ordinal(&self) -> i32 {
        self.pod
            .rsplit('-')
            .next()
            .and_then(|o| o.parse::<i32>().ok())
            .unwrap_or(0)
    }
}

/// Writes a promotion to status at once: whatever fails later in the pass, the next one
/// must know who leads now.
pub async fn record_promotion(
    client: &Client,
    bg: &BrokerGroup,
    failover: Option<&Outcome>,
) -> Result<(), Error> {
    if let Some(Outcome::Promoted { pod, epoch, .. }) = failover {
        patch_status(
            client,
            bg,
            serde_json::json!({ "masterPod": pod, "epoch": epoch.0 }),
        )
        .await?;
    }
    Ok(())
}

/// A promote annotation naming the master is done with: removed, so it neither repeats nor
/// pins a later failover to that pod.
pub async fn clear_promote_annotation(
    client: &Client,
    namespace: &str,
    bg: &BrokerGroup,
    leader: &Leader,
) -> Result<(), Error> {
    if bg
        .annotations()
        .get(PROMOTE_ANNOTATION)
        .is_none_or(|p| *p != leader.pod)
    {
        return Ok(());
    }
    let api: Api<BrokerGroup> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({
        "metadata": { "annotations": { PROMOTE_ANNOTATION: null } }
    });
    api.patch(
        &bg.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Applies the built `<group>-master` Service, moved to the leader.
pub async fn apply_master_service(
    client: &Client,
    namespace: &str,
    owner: &Owner,
    group: &str,
    built: &Service,
    leader: &Leader,
) -> Result<(), Error> {
    let ports = built
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let labels = built.metadata.labels.clone().unwrap_or_default();
    let svc = master_service(owner, group, &leader.pod, &labels, ports);
    apply::<Service>(client, namespace, &svc).await?;
    Ok(())
}

/// Labels each broker pod `rocketmq.rs/role: master|slave` (merge patch, only on a change).
pub async fn label_pods(
    client: &Client,
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
        api.patch(&pod_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}
