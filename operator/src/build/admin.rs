//! The cluster's admin credential in the pods: a Secret per NameServer / BrokerGroup holding
//! the operator's own credential, mounted read-only, named by `adminCredentialFile`. Name
//! servers, brokers and the operator then sign with the same key, and nobody else can
//! register brokers, change roles or rewrite config.
//!
//! Without a credential (an operator started without `ROCKETMQ_ADMIN_CREDENTIAL_FILE`) the
//! pods are told `controlPlaneAuthEnable=false`: each would otherwise invent its own key and
//! no broker could register.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use rmq_remoting::Credentials;

use super::{meta, Labels, Owner};

/// Where the Secret is mounted: a directory with the files `accessKey` and `secretKey`,
/// which `adminCredentialFile` accepts.
pub const MOUNT: &str = "/etc/rocketmq-admin";
const VOLUME: &str = "admin-credential";

pub fn secret_name(owner: &Owner) -> String {
    format!("{}-admin-credential", owner.name)
}

/// The Secret for `owner`'s pods.
pub fn secret(owner: &Owner, labels: &Labels, admin: &Credentials) -> Secret {
    let data = [
        ("accessKey", admin.access_key.as_str()),
        ("secretKey", admin.secret_key.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: meta(owner, secret_name(owner), labels.clone()),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The properties that tell a pod where its credential is, or that there is none. A
/// `controlPlaneAuthEnable` the user wrote in the spec is kept.
pub fn properties(
    admin: Option<&Credentials>,
    spec: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    match admin {
        Some(_) => {
            p.insert("adminCredentialFile".into(), MOUNT.into());
        }
        None if !spec.contains_key("controlPlaneAuthEnable") => {
            p.insert("controlPlaneAuthEnable".into(), "false".into());
        }
        None => {}
    }
    p
}

/// Mounts the Secret into every container of the StatefulSet's pods.
pub fn mount(sts: &mut StatefulSet, owner: &Owner) {
    super::mount_secret(sts, VOLUME, &secret_name(owner), MOUNT);
}
