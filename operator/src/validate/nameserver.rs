//! `NameServer` spec checks.

use super::{invalid, SpecError};
use crate::crd::NameServer;

/// Most name servers in one `NameServer`.
pub const MAX_REPLICAS: i32 = 9;

/// `namesrv.conf` keys the operator sets itself; a spec may not override them.
pub const MANAGED_KEYS: &[&str] = &[
    "listenPort",
    "kvConfigPath",
    "configStorePath",
    "metricsPort",
];

/// A `NameServer` whose spec builds.
#[derive(Debug, Clone, Copy)]
pub struct ValidatedNameServer<'a> {
    pub name_server: &'a NameServer,
}

pub fn validate(ns: &NameServer) -> Result<ValidatedNameServer<'_>, SpecError> {
    let spec = &ns.spec;
    if !(1..=MAX_REPLICAS).contains(&spec.replicas) {
        return Err(invalid(format!(
            "replicas must be 1..={MAX_REPLICAS}, got {}",
            spec.replicas
        )));
    }
    if let Some(key) = MANAGED_KEYS.iter().find(|k| spec.config.contains_key(**k)) {
        return Err(invalid(format!(
            "config key `{key}` is managed by the operator"
        )));
    }
    super::tls(spec.tls.as_ref(), &spec.config)?;
    Ok(ValidatedNameServer { name_server: ns })
}
