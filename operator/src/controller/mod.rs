//! Reconcilers: validate → build (pure) → apply in a fixed order with server-side apply →
//! status with `observedGeneration` and conditions.

pub mod broker_group;
mod conditions;
pub mod consumer_group;
mod error;
pub mod nameserver;
pub mod topic;

pub use broker_group::{failover, replicas};
pub use conditions::{broker_admin_status, condition, invalid_spec_status, was_true};
pub use error::Error;

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::build::Owner;
use crate::crd::PAUSE_ANNOTATION;

/// The field manager of everything the operator applies.
pub const MANAGER: &str = "rocketmq-operator";

/// How often healthy objects are looked at again (drift correction).
pub const RESYNC: Duration = Duration::from_secs(300);

/// What the reconcilers share.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    /// Talks to brokers and name servers (topic and group administration).
    pub remoting: rmq_remoting::RemotingClient,
    /// Kubernetes Events (events.k8s.io) about the objects we reconcile.
    pub recorder: Recorder,
    /// The cluster's admin credential handed to the pods through a Secret (see
    /// [`crate::build::admin`]); `None`: pods run with the control plane open.
    pub admin: Option<rmq_remoting::Credentials>,
}

/// The Secret the operator keeps the cluster's admin credential in when none is mounted.
pub const ADMIN_SECRET: &str = "rocketmq-operator-admin-credential";

/// The cluster's admin credential from the Secret [`ADMIN_SECRET`] in `namespace`, created
/// with a random secret if there is none (an operator installed without the chart). Two
/// replicas racing to create it end with the one that won.
pub async fn ensure_admin_secret(
    client: &Client,
    namespace: &str,
) -> Result<rmq_remoting::Credentials, Error> {
    use k8s_openapi::api::core::v1::Secret;
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let read = |s: &Secret| -> Option<rmq_remoting::Credentials> {
        let data = s.data.as_ref()?;
        let get = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Some(rmq_remoting::Credentials::new(
            get("accessKey")?,
            get("secretKey")?,
        ))
    };
    if let Some(s) = api.get_opt(ADMIN_SECRET).await? {
        return read(&s).ok_or_else(|| {
            Error::Credential(format!(
                "Secret {namespace}/{ADMIN_SECRET} has no accessKey and secretKey"
            ))
        });
    }
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..40)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect()
    };
    let wanted = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(ADMIN_SECRET.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [
                ("accessKey", "rocketmq-admin"),
                ("secretKey", secret.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    k8s_openapi::ByteString(v.as_bytes().to_vec()),
                )
            })
            .collect(),
        ),
        ..Default::default()
    };
    match api.create(&Default::default(), &wanted).await {
        Ok(s) => {
            tracing::info!(%namespace, secret = ADMIN_SECRET, "created the cluster's admin credential");
            Ok(
                read(&s)
                    .unwrap_or_else(|| rmq_remoting::Credentials::new("rocketmq-admin", secret)),
            )
        }
        // Another replica created it first.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = api.get(ADMIN_SECRET).await?;
            read(&s).ok_or_else(|| {
                Error::Credential(format!("Secret {namespace}/{ADMIN_SECRET} is empty"))
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The operator's TLS for its own connections: `ROCKETMQ_TLS_DIR`, a mounted Secret with
/// `ca.crt` (checked against the servers) and, if present, `tls.crt` / `tls.key` (presented
/// to servers that require client certificates). Unset: plaintext.
pub fn operator_tls() -> Result<Option<rmq_remoting::tls::ClientTls>, rmq_remoting::tls::TlsError> {
    let Some(dir) = std::env::var_os("ROCKETMQ_TLS_DIR").filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let dir = std::path::PathBuf::from(dir);
    let path = |f: &str| dir.join(f).display().to_string();
    let mut c = rmq_remoting::tls::TlsConfig {
        client_enable: true,
        client_trust_cert_path: path("ca.crt"),
        config_file: String::new(),
        ..Default::default()
    };
    if dir.join("tls.crt").exists() && dir.join("tls.key").exists() {
        c.client_cert_path = path("tls.crt");
        c.client_key_path = path("tls.key");
    }
    rmq_remoting::tls::ClientTls::new(&c)
}

/// The admin credential the operator signs its broker and name-server calls with:
/// `ROCKETMQ_ADMIN_CREDENTIAL_FILE` (a file, or a directory of `accessKey` and `secretKey`
/// files, as a mounted Secret), else `~/.rocketmq/admin-credential.yml` if present.
pub fn admin_credential() -> Option<rmq_remoting::Credentials> {
    let file = std::env::var("ROCKETMQ_ADMIN_CREDENTIAL_FILE").unwrap_or_default();
    match rmq_acl::credential::resolve(false, &file) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no admin credential: broker and name-server calls go unsigned");
            None
        }
    }
}

impl Context {
    pub fn new(client: Client) -> Context {
        let reporter = Reporter {
            controller: MANAGER.into(),
            // The pod name (downward API in the chart) tells replicas' events apart.
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            remoting: rmq_remoting::RemotingClient::default().with_credentials(admin_credential()),
            admin: None,
        }
    }

    /// Connects to name servers and brokers over TLS (their `tls` specs in `Enforcing`
    /// mode need it).
    pub fn with_tls(mut self, tls: Option<rmq_remoting::tls::ClientTls>) -> Context {
        if tls.is_some() {
            self.remoting = self.remoting.with_tls(tls);
        }
        self
    }

    /// Hands `admin` to the pods (and signs with it): what the operator process does.
    pub fn with_admin(mut self, admin: Option<rmq_remoting::Credentials>) -> Context {
        if admin.is_some() {
            self.remoting = self.remoting.with_credentials(admin.clone());
        }
        self.admin = admin;
        self
    }

    /// Publishes a Warning event about `obj`.
    pub async fn warn<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(obj, EventType::Warning, reason, action, note)
            .await
    }

    /// Publishes a Normal event about `obj`: something the operator did.
    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(obj, EventType::Normal, reason, action, note)
            .await
    }

    /// A failure to publish is logged, not returned: events are for people, and must not
    /// stop a reconciliation.
    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            // The API server refuses notes over 1 kB.
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(object = %obj.name_any(), reason, error = %e, "event not published");
        }
    }

    /// Events for a change of the `Ready` condition: Normal `ready_reason` when it turns
    /// true, Warning `NotReady` when it stops being true.
    pub async fn ready_transition<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        previous: &[Condition],
        ready: bool,
        ready_reason: &str,
        message: &str,
    ) {
        let was = was_true(previous, "Ready");
        if ready && !was {
            self.normal(obj, ready_reason, "Reconcile", message.into())
                .await;
        } else if !ready && was {
            self.warn(obj, "NotReady", "Reconcile", message.into())
                .await;
        }
    }
}

/// Whether the pause annotation is set.
pub fn paused<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSE_ANNOTATION))
        .map(|v| v == "true")
        .unwrap_or(false)
}

/// The owner reference data of a custom resource.
pub fn owner_of<K: Resource<DynamicType = ()>>(obj: &K) -> Result<Owner, Error> {
    Ok(Owner {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: obj.name_any(),
        namespace: obj.namespace().ok_or(Error::NoNamespace)?,
        uid: obj.meta().uid.clone().unwrap_or_default(),
    })
}

/// Server-side applies one object under our field manager.
pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// Patches the status subresource (merge patch: only our fields).
pub async fn patch_status<K>(
    client: &Client,
    obj: &K,
    status: serde_json::Value,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().ok_or(Error::NoNamespace)?);
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await?;
    Ok(())
}
