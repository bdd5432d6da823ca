//! TLS from a `tls` spec: the Secret (cert-manager's `tls.crt`, `tls.key`, `ca.crt`) mounted
//! read-only into the pods, and RocketMQ's `tls.*` keys pointing at it. Brokers also connect
//! over TLS (to name servers and to their master), checking `ca.crt`, and present their own
//! certificate when client certificates are required.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{SecretVolumeSource, Volume, VolumeMount};

use crate::crd::{TlsModeSpec, TlsSpec};

/// Where the Secret is mounted.
pub const MOUNT: &str = "/etc/rocketmq-tls";
const VOLUME: &str = "tls";

/// The `tls.*` properties; `outgoing`: the pods also connect over TLS (brokers).
pub fn properties(tls: Option<&TlsSpec>, outgoing: bool) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let Some(t) = tls else {
        return p;
    };
    let file = |name: &str| format!("{MOUNT}/{name}");
    let mode = match t.mode {
        TlsModeSpec::Permissive => "permissive",
        TlsModeSpec::Enforcing => "enforcing",
    };
    let auth = if t.require_client_certificate {
        "require"
    } else {
        "none"
    };
    for (k, v) in [
        ("tls.server.mode", mode.to_string()),
        ("tls.server.certPath", file("tls.crt")),
        ("tls.server.keyPath", file("tls.key")),
        ("tls.server.trustCertPath", file("ca.crt")),
        ("tls.server.need.client.auth", auth.to_string()),
        ("tls.test.mode.enable", "false".to_string()),
    ] {
        p.insert(k.to_string(), v);
    }
    if outgoing {
        for (k, v) in [
            ("tls.enable", "true".to_string()),
            ("tls.client.authServer", "true".to_string()),
            ("tls.client.trustCertPath", file("ca.crt")),
            ("tls.client.certPath", file("tls.crt")),
            ("tls.client.keyPath", file("tls.key")),
        ] {
            p.insert(k.to_string(), v);
        }
    }
    p
}

/// Mounts the Secret into every container of the StatefulSet's pods.
pub fn mount(sts: &mut StatefulSet, tls: Option<&TlsSpec>) {
    let Some(t) = tls else {
        return;
    };
    let Some(pod) = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(t.secret_name.clone()),
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
                name: VOLUME.into(),
                mount_path: MOUNT.into(),
                read_only: Some(true),
                ..Default::default()
            });
    }
}
