//! Spec checks, run before anything is built. A spec that passes builds: the builders read
//! the resolved values these return and check nothing again.

pub mod broker_group;
pub mod external;
pub mod nameserver;

/// Why a spec cannot be built (shown in the object's status and an Event).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid spec: {0}")]
    Invalid(String),
}

/// A `tls` spec names a Secret that can exist, and leaves the `tls.*` keys to the operator.
pub fn tls(
    tls: Option<&crate::crd::TlsSpec>,
    config: &std::collections::BTreeMap<String, String>,
) -> Result<(), SpecError> {
    let Some(t) = tls else {
        return Ok(());
    };
    let name = &t.secret_name;
    if !secret_name(name) {
        return Err(invalid(format!(
            "tls.secretName `{name}` is not a Secret name (lower-case letters, digits, '-', '.')"
        )));
    }
    if let Some(k) = config.keys().find(|k| k.starts_with("tls.")) {
        return Err(invalid(format!(
            "config key `{k}` is set by the operator from `tls`"
        )));
    }
    Ok(())
}

/// An `acl` spec names a Secret and a key, and leaves `aclEnable` to the operator.
pub fn acl(
    acl: Option<&crate::crd::AclSpec>,
    config: &std::collections::BTreeMap<String, String>,
) -> Result<(), SpecError> {
    let Some(a) = acl else {
        return Ok(());
    };
    if !secret_name(&a.secret_name) {
        return Err(invalid(format!(
            "acl.secretName `{}` is not a Secret name",
            a.secret_name
        )));
    }
    let key_ok = !a.key.is_empty()
        && a.key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !key_ok {
        return Err(invalid(format!("acl.key `{}` is not a Secret key", a.key)));
    }
    if let Some(k) = ["aclEnable", "rocketmq.acl.plain.file"]
        .iter()
        .find(|k| config.contains_key(**k))
    {
        return Err(invalid(format!(
            "config key `{k}` is set by the operator from `acl`"
        )));
    }
    Ok(())
}

/// A DNS-1123 subdomain, as Secret names are.
fn secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A refusal with `message`.
fn invalid(message: impl Into<String>) -> SpecError {
    SpecError::Invalid(message.into())
}
