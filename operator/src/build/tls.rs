//! TLS from a `tls` spec: the Secret (cert-manager's `tls.crt`, `tls.key`, `ca.crt`) mounted
//! read-only into the pods, and RocketMQ's `tls.*` keys pointing at it. Brokers also connect
//! over TLS (to name servers and to their master), checking `ca.crt`, and present their own
//! certificate when client certificates are required.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;

use crate::crd::{TlsModeSpec, TlsSpec};

/// Where the Secret is mounted.
pub const MOUNT: &str = "/etc/rocketmq-tls";
const VOLUME: &str = "tls";
/// Where an ACL Secret is mounted.
pub const ACL_MOUNT: &str = "/etc/rocketmq-acl";
const ACL_VOLUME: &str = "acl";

/// `aclEnable` and the file, from an `acl` spec.
pub fn acl_properties(acl: Option<&crate::crd::AclSpec>) -> BTreeMap<String, String> {
    acl.map(|a| {
        BTreeMap::from([
            ("aclEnable".to_string(), "true".to_string()),
            (
                "rocketmq.acl.plain.file".to_string(),
                format!("{ACL_MOUNT}/{}", a.key),
            ),
        ])
    })
    .unwrap_or_default()
}

/// Mounts an ACL Secret into every container.
pub fn mount_acl(sts: &mut StatefulSet, acl: Option<&crate::crd::AclSpec>) {
    if let Some(a) = acl {
        super::mount_secret(sts, ACL_VOLUME, &a.secret_name, ACL_MOUNT);
    }
}

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
    if let Some(t) = tls {
        super::mount_secret(sts, VOLUME, &t.secret_name, MOUNT);
    }
}
