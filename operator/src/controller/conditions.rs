//! Status conditions: built so that an unchanged condition keeps its transition time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Whether condition `type_` was True.
pub fn was_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// A condition, keeping the transition time when the status did not change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// Status of an object whose spec cannot be built: not Ready, Degraded, both `InvalidSpec`.
pub fn invalid_spec_status(
    previous: &[Condition],
    generation: Option<i64>,
    message: &str,
) -> crate::crd::CommonStatus {
    crate::crd::CommonStatus {
        observed_generation: generation,
        conditions: vec![
            condition(
                previous,
                "Ready",
                false,
                "InvalidSpec",
                message.into(),
                generation,
            ),
            condition(
                previous,
                "Degraded",
                true,
                "InvalidSpec",
                message.into(),
                generation,
            ),
        ],
    }
}

/// Status of an object declared on brokers over remoting (Topic, ConsumerGroup): Ready when
/// every targeted master took it, Degraded otherwise.
pub fn broker_admin_status(
    previous: &[Condition],
    generation: Option<i64>,
    ready: bool,
    message: &str,
) -> crate::crd::CommonStatus {
    crate::crd::CommonStatus {
        observed_generation: generation,
        conditions: vec![
            condition(
                previous,
                "Ready",
                ready,
                if ready { "Created" } else { "NotOnAllBrokers" },
                message.into(),
                generation,
            ),
            condition(
                previous,
                "Degraded",
                !ready,
                if ready { "Reconciled" } else { "BrokerErrors" },
                message.into(),
                generation,
            ),
        ],
    }
}
