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
    let dns1123 = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !dns1123 {
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

/// A refusal with `message`.
fn invalid(message: impl Into<String>) -> SpecError {
    SpecError::Invalid(message.into())
}
