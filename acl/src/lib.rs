//! Who may do what on a broker or name server.
//!
//! * [`PlainAcl`]: RocketMQ's plain ACL (`aclEnable=true`): accounts from `plain_acl.yml`,
//!   signatures from every stock client's ACL hook, per-topic and per-group permissions,
//!   reloaded when the files change.
//! * [`credential`]: the cluster's admin credential, which signs control-plane requests.
//! * [`Gate`]: both together, as the servers apply them to each request: control-plane
//!   requests (role changes, config updates, deletions, registrations) need the admin
//!   credential — or an ACL account with `admin: true` — even when the data-plane ACL is off.

pub mod address;
pub mod credential;
pub mod edit;
pub mod plain;
pub mod resource;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rmq_remoting::{Credentials, RemotingCommand, RequestCode, ResponseCode};

use plain::{perm, AclConfig};

/// A refusal from the plain ACL, worded as RocketMQ's `AclException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AclError(pub String);

impl AclError {
    pub fn new(msg: impl Into<String>) -> AclError {
        AclError(msg.into())
    }
}

/// How a request passed the plain ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The peer's address is globally white-listed: nothing was checked.
    WhiteListed,
    /// An account's own white list matched: its permissions apply, its signature was not
    /// checked (RocketMQ skips it).
    AccountAddress { admin: bool },
    /// Signed by an account.
    Signed { admin: bool },
}

/// Response codes of the ACL admin requests (RocketMQ's `ResponseCode`; the same numbers
/// name other codes in RocketMQ 5's table, so they are not in ours).
pub mod code {
    pub const UPDATE_AND_CREATE_ACL_CONFIG_FAILED: i32 = 209;
    pub const DELETE_ACL_CONFIG_FAILED: i32 = 210;
    pub const UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED: i32 = 211;
}

/// Request codes only admin accounts may send (RocketMQ 4.9.8's list with 5.x's additions).
pub fn needs_admin(code: i32) -> bool {
    matches!(
        code,
        RequestCode::UPDATE_AND_CREATE_TOPIC
            | RequestCode::UPDATE_BROKER_CONFIG
            | RequestCode::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
            | RequestCode::DELETE_SUBSCRIPTIONGROUP
            | RequestCode::DELETE_TOPIC_IN_BROKER
            | RequestCode::UPDATE_AND_CREATE_STATIC_TOPIC
            | RequestCode::UPDATE_AND_CREATE_ACL_CONFIG
            | RequestCode::DELETE_ACL_CONFIG
            | RequestCode::GET_BROKER_CLUSTER_ACL_INFO
    )
}

/// RocketMQ's message-trace topic: publishing to it is always allowed to a signed account.
const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// The plain ACL of one server: its files, merged, and what it last read of them.
pub struct PlainAcl {
    main: PathBuf,
    dir: PathBuf,
    config: RwLock<Arc<AclConfig>>,
    /// Each file and its modification time at the last load.
    stamps: Mutex<Vec<(PathBuf, Option<SystemTime>)>>,
    /// Serializes the admin requests' edits.
    edit: Mutex<()>,
}

impl PlainAcl {
    /// Reads `main` (created empty if missing, as RocketMQ does) and every YAML file below
    /// `dir`. A file that does not parse is an error: a broker must not start with an ACL
    /// it misread.
    pub fn load(main: PathBuf, dir: PathBuf) -> Result<PlainAcl, AclError> {
        if !main.exists() {
            if let Some(d) = main.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            std::fs::write(&main, "")
                .map_err(|e| AclError::new(format!("cannot create {}: {e}", main.display())))?;
        }
        let acl = PlainAcl {
            main,
            dir,
            config: Default::default(),
            stamps: Default::default(),
            edit: Mutex::new(()),
        };
        acl.reload()?;
        Ok(acl)
    }

    fn files(&self) -> Vec<PathBuf> {
        plain::acl_files(&self.main, &self.dir)
    }

    fn stamps_now(files: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>)> {
        files
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    std::fs::metadata(f).and_then(|m| m.modified()).ok(),
                )
            })
            .collect()
    }

    fn reload(&self) -> Result<(), AclError> {
        let files = self.files();
        let stamps = Self::stamps_now(&files);
        let config = AclConfig::load(&files)?;
        *self.config.write() = Arc::new(config);
        *self.stamps.lock() = stamps;
        Ok(())
    }

    /// Reloads if a file appeared, vanished or changed since the last load (RocketMQ polls
    /// every 5 s). A file that no longer parses leaves the last good ACL in force.
    pub fn reload_if_changed(&self) -> bool {
        let now = Self::stamps_now(&self.files());
        if *self.stamps.lock() == now {
            return false;
        }
        match self.reload() {
            Ok(()) => {
                tracing::info!(files = now.len(), "ACL files changed; reloaded");
                true
            }
            Err(e) => {
                // Do not retry the same broken files every poll; a new edit changes the stamps.
                *self.stamps.lock() = now;
                tracing::error!(error = %e, "ACL files changed but do not load; keeping the previous ACL");
                false
            }
        }
    }

    /// The merged configuration in force.
    pub fn config(&self) -> Arc<AclConfig> {
        self.config.read().clone()
    }

    /// Checks `req` from `peer` in RocketMQ's order: global white list, access key, the
    /// account's white list, signature, admin-only codes, then each topic and group touched.
    pub fn validate(&self, req: &RemotingCommand, peer: IpAddr) -> Result<Grant, AclError> {
        let config = self.config();
        if config.global_white.iter().any(|w| w.matches(peer)) {
            return Ok(Grant::WhiteListed);
        }
        let needed = resource::needed(req)?;
        let Some(ak) = req.ext_fields.get(rmq_remoting::auth::ACCESS_KEY) else {
            return Err(AclError::new("No accessKey is configured"));
        };
        let Some(account) = config.accounts.get(ak) else {
            return Err(AclError::new(format!("No acl config for {ak}")));
        };
        let grant = if account.white.matches(peer) {
            Grant::AccountAddress {
                admin: account.admin,
            }
        } else {
            let signed = req
                .ext_fields
                .get(rmq_remoting::auth::SIGNATURE)
                .is_some_and(|s| rmq_remoting::auth::verify(&account.secret_key, req, s));
            if !signed {
                return Err(AclError::new(format!(
                    "Check signature failed for accessKey={ak}"
                )));
            }
            Grant::Signed {
                admin: account.admin,
            }
        };
        if matches!(grant, Grant::AccountAddress { .. }) {
            // RocketMQ lets an account's own white-listed addresses do anything it may.
            return Ok(grant);
        }
        if needed.len() == 1 && needed[0] == (TRACE_TOPIC.to_string(), perm::PUB) {
            return Ok(grant);
        }
        // RocketMQ 5: an admin account may touch every resource.
        if account.admin {
            return Ok(grant);
        }
        if needs_admin(req.code) {
            return Err(AclError::new(format!(
                "Need admin permission for request code={}, but accessKey={ak} is not",
                req.code
            )));
        }
        for (res, want) in &needed {
            match account.resources.get(res) {
                Some(owned) if perm::allows(*want, *owned) => {}
                Some(_) => {
                    return Err(AclError::new(format!(
                        "No permission for {}",
                        resource::describe(res)
                    )))
                }
                None => {
                    let default = if res.starts_with(plain::RETRY_PREFIX) {
                        account.default_group
                    } else {
                        account.default_topic
                    };
                    if !perm::allows(*want, default) {
                        return Err(AclError::new(format!(
                            "No default permission for {}",
                            resource::describe(res)
                        )));
                    }
                }
            }
        }
        Ok(grant)
    }
}

/// Why a request was refused, and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The plain ACL refused: SYSTEM_ERROR with the `AclException` text, as RocketMQ answers
    /// (so clients show the error their users know).
    Acl(AclError),
    /// A control-plane request without the admin credential: NO_PERMISSION.
    ControlPlane { code: i32 },
}

impl Denied {
    /// For metrics: `acl` or `control_plane`.
    pub fn kind(&self) -> &'static str {
        match self {
            Denied::Acl(_) => "acl",
            Denied::ControlPlane { .. } => "control_plane",
        }
    }

    pub fn response(&self) -> RemotingCommand {
        match self {
            Denied::Acl(e) => RemotingCommand::error(
                ResponseCode::SYSTEM_ERROR,
                format!("org.apache.rocketmq.acl.common.AclException: {e}"),
            ),
            Denied::ControlPlane { code } => RemotingCommand::error(
                ResponseCode::NO_PERMISSION,
                format!(
                    "request code {code} ({}) changes the cluster and needs the cluster's admin \
                     credential (adminCredentialFile) or an ACL account with admin: true",
                    RequestCode::name(*code).unwrap_or("UNKNOWN")
                ),
            ),
        }
    }
}

/// What a server applies to every request before processing it.
pub struct Gate {
    /// The admin credential; `None` when control-plane authentication is turned off.
    admin: Option<Credentials>,
    /// The plain ACL; `None` unless `aclEnable=true`.
    acl: Option<Arc<PlainAcl>>,
    /// Which request codes change the cluster on this kind of server.
    control_plane: fn(i32) -> bool,
}

impl Gate {
    pub fn new(
        admin: Option<Credentials>,
        acl: Option<Arc<PlainAcl>>,
        control_plane: fn(i32) -> bool,
    ) -> Gate {
        Gate {
            admin,
            acl,
            control_plane,
        }
    }

    /// Lets everything through (tests of other parts, tools' own fake servers).
    pub fn open() -> Gate {
        Gate::new(None, None, |_| false)
    }

    /// The admin credential requests must carry, if the control plane is authenticated.
    pub fn admin(&self) -> Option<&Credentials> {
        self.admin.as_ref()
    }

    pub fn acl(&self) -> Option<&Arc<PlainAcl>> {
        self.acl.as_ref()
    }

    pub fn check(&self, req: &RemotingCommand, peer: IpAddr) -> Result<(), Denied> {
        // The cluster's own credential may do anything (brokers syncing, the operator).
        if self.admin.as_ref().is_some_and(|c| c.signed(req)) {
            return Ok(());
        }
        let grant = match &self.acl {
            Some(acl) => Some(acl.validate(req, peer).map_err(Denied::Acl)?),
            None => None,
        };
        if self.admin.is_some() && (self.control_plane)(req.code) {
            // Only a signature proves an admin: white-listed addresses do not.
            if grant != Some(Grant::Signed { admin: true }) {
                return Err(Denied::ControlPlane { code: req.code });
            }
        }
        Ok(())
    }
}

/// Broker requests that change who leads, what is stored, or who may do what.
pub fn broker_control_plane(code: i32) -> bool {
    needs_admin(code)
        || matches!(
            code,
            RequestCode::NOTIFY_BROKER_ROLE_CHANGED
                | RequestCode::INVOKE_BROKER_TO_RESET_OFFSET
                | RequestCode::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG
                | RequestCode::GET_BROKER_CLUSTER_ACL_CONFIG
        )
}

/// Name-server requests that change routes, registrations or configuration.
pub fn namesrv_control_plane(code: i32) -> bool {
    matches!(
        code,
        RequestCode::REGISTER_BROKER
            | RequestCode::UNREGISTER_BROKER
            | RequestCode::BROKER_HEARTBEAT
            | RequestCode::PUT_KV_CONFIG
            | RequestCode::DELETE_KV_CONFIG
            | RequestCode::WIPE_WRITE_PERM_OF_BROKER
            | RequestCode::ADD_WRITE_PERM_OF_BROKER
            | RequestCode::DELETE_TOPIC_IN_NAMESRV
            | RequestCode::REGISTER_TOPIC_IN_NAMESRV
            | RequestCode::UPDATE_NAMESRV_CONFIG
    )
}

#[cfg(test)]
mod tests;
