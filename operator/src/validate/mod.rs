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

/// A refusal with `message`.
fn invalid(message: impl Into<String>) -> SpecError {
    SpecError::Invalid(message.into())
}
