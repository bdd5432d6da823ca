//! Pure "validated spec → desired objects" functions, one builder per object. Nothing here
//! talks to the API server, so every example can be checked without a cluster; the
//! reconcilers apply what these return.

pub mod admin;
pub mod broker_group;
pub mod failover;
pub mod nameserver;
pub mod tls;

pub use crate::validate::SpecError;
pub use broker_group::external;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Image of `mqnamesrv` when the spec names none.
pub const DEFAULT_NAMESRV_IMAGE: &str =
    concat!("rocketmq-rust/mqnamesrv:", env!("CARGO_PKG_VERSION"));
/// Image of `mqbroker` when the spec names none.
pub const DEFAULT_BROKER_IMAGE: &str =
    concat!("rocketmq-rust/mqbroker:", env!("CARGO_PKG_VERSION"));
/// Non-root user the images run as.
pub const RUN_AS_USER: i64 = 10001;

/// Pods run as the images' non-root user, owning their volumes.
pub fn non_root_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(RUN_AS_USER),
        run_as_non_root: Some(true),
        fs_group: Some(RUN_AS_USER),
        ..Default::default()
    }
}
/// Name server port.
pub const NAMESRV_PORT: i32 = 9876;

/// Who owns the built objects: garbage collection removes them with the owner.
#[derive(Debug, Clone)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Owner {
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// Kubernetes labels (or a selector's).
pub type Labels = BTreeMap<String, String>;

/// The labels every object of one component carries.
pub fn labels(instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "rocketmq".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            instance.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "rocketmq-operator".to_string(),
        ),
    ])
}

/// Labels that select one component's pods (a subset that never changes).
pub fn selector(instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/instance".to_string(),
            instance.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

pub fn meta(owner: &Owner, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(owner.namespace.clone()),
        labels: Some(labels),
        owner_references: Some(vec![owner.reference()]),
        ..Default::default()
    }
}

/// Prefer spreading pods of one selector across nodes.
pub fn spread(selector: BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector),
                            ..Default::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Required anti-affinity: at most one pod matching `selector` per node.
pub fn one_per_node(selector: BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(selector),
                    ..Default::default()
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A PodDisruptionBudget that lets one pod of `selector` go at a time.
pub fn max_one_unavailable(metadata: ObjectMeta, selector: Labels) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Java-properties text, sorted.
///
/// Keys and values are escaped as `java.util.Properties.store` does, so no value can end its
/// line early, continue onto the next (a trailing `\`) or smuggle in a property of its own:
/// `spec.config` comes from users, and the lines after it (`brokerId`, `brokerRole`) must stay
/// the operator's. Non-ASCII characters become `\uXXXX`, which the broker's ISO-8859-1 reader
/// decodes to the same text.
pub fn properties(props: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in props {
        escape_property(&mut s, k, true);
        s.push('=');
        escape_property(&mut s, v, false);
        s.push('\n');
    }
    s
}

fn escape_property(out: &mut String, text: &str, key: bool) {
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0c' => out.push_str("\\f"),
            // A leading space would be skipped by the reader; in keys a space ends the key.
            ' ' if key || i == 0 => out.push_str("\\ "),
            '=' | ':' | '#' | '!' if key => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// FNV-1a: a stable hash for config-change annotations (no extra dependency).
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Mounts Secret `secret` read-only at `path` in every container of the StatefulSet's pods.
pub(crate) fn mount_secret(
    sts: &mut k8s_openapi::api::apps::v1::StatefulSet,
    volume: &str,
    secret: &str,
    path: &str,
) {
    use k8s_openapi::api::core::v1::{SecretVolumeSource, Volume, VolumeMount};
    let Some(pod) = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            // Group-readable: the pods run as a non-root user whose fsGroup owns the files.
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    for c in &mut pod.containers {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: volume.into(),
                mount_path: path.into(),
                read_only: Some(true),
                ..Default::default()
            });
    }
}

#[cfg(test)]
mod properties_tests {
    use super::*;

    #[test]
    fn values_cannot_add_or_swallow_lines() {
        // Whatever gets past validation (it refuses these) stays one property.
        let mut p = BTreeMap::new();
        p.insert(
            "aKey".to_string(),
            "1\nbrokerId=5\r\nbrokerRole=SYNC_MASTER".to_string(),
        );
        p.insert("bKey".to_string(), "ends with a backslash\\".to_string());
        p.insert("brokerId".to_string(), "1".to_string());
        p.insert(
            "k=:# !".to_string(),
            " leading space, ünïcode ☃, tab\t".to_string(),
        );
        let text = properties(&p);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.is_ascii());
        let back = rmq_remoting::config::parse_properties(&text).unwrap();
        assert_eq!(back, p, "{text}");
    }
}
