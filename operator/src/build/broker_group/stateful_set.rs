//! The StatefulSet: ordered pods (the master is started first and rolled last) with a store
//! volume each.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::{pod, pod_selector};
use crate::build::{meta, Labels, Owner};
use crate::validate::broker_group::ValidatedBrokerGroup;

pub(super) fn stateful_set(
    g: &ValidatedBrokerGroup,
    owner: &Owner,
    labels: &Labels,
    config_hash: &str,
) -> StatefulSet {
    StatefulSet {
        metadata: meta(owner, g.name.clone(), labels.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(g.replicas),
            service_name: Some(format!("{}-headless", g.name)),
            selector: LabelSelector {
                match_labels: Some(pod_selector(g)),
                ..Default::default()
            },
            pod_management_policy: Some("OrderedReady".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(g.partition),
                    ..Default::default()
                }),
            }),
            template: pod::template(g, labels, config_hash),
            volume_claim_templates: Some(vec![store_claim(g, labels)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `store` volume of each pod: commit log, queues, checkpoint.
fn store_claim(g: &ValidatedBrokerGroup, labels: &Labels) -> PersistentVolumeClaim {
    let storage = &g.spec().storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("store".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
