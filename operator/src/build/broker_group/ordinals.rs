//! Which ordinal leads, how many pods stay, how far a roll may go: read from the status a
//! failover recorded.

use kube::ResourceExt;

use crate::build::failover::MAX_REPLICAS;
use crate::crd::BrokerGroup;

/// The ordinal of the group's master: ordinal 0 until a failover recorded another in status.
pub fn master_ordinal(bg: &BrokerGroup) -> i32 {
    bg.status
        .as_ref()
        .and_then(|s| s.master_pod.as_deref())
        .and_then(|p| p.rsplit('-').next())
        .and_then(|o| o.parse::<i32>().ok())
        // Not bounded by spec.replicas: a scale-down below the master does not move it.
        .filter(|o| (0..MAX_REPLICAS).contains(o))
        .unwrap_or(0)
}

/// Pods the StatefulSet keeps: the spec's count, but never fewer than reach the master (a
/// scale-down waits until the master has been switched to a lower ordinal).
pub fn kept_replicas(bg: &BrokerGroup) -> i32 {
    bg.spec.replicas.max(master_ordinal(bg) + 1)
}

/// The StatefulSet rolls from the highest ordinal down, so the master goes last only while it
/// is ordinal 0. After a failover moved it, a roll waits (partition above every pod) until
/// the reconciler has switched the master back to ordinal 0 — unless ordinal 0 is not ready
/// to take it, when waiting would leave the roll stuck.
pub fn roll_partition(bg: &BrokerGroup) -> i32 {
    let zero = format!("{}-0", bg.name_any());
    let zero_ready = bg
        .status
        .as_ref()
        .is_some_and(|s| s.replicas.iter().any(|r| r.pod == zero && r.ready));
    if master_ordinal(bg) != 0 && zero_ready {
        kept_replicas(bg)
    } else {
        0
    }
}
