//! Whom to promote, and when (pure): the operator's failover decision for one broker group.
//!
//! The master pod must have been unready for the grace period; then the ready slave holding
//! the most of the log is promoted, provided it is in sync (within `maxLagBytes` of the
//! master's last known offset). Otherwise nothing happens and the status says why.

use crate::crd::broker_group::FailoverSpec;

/// A slave as the operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub ordinal: i32,
    pub pod: String,
    pub ready: bool,
    /// Its commit-log max offset, if it answered.
    pub max_offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The master is ready; nothing to do.
    Healthy,
    /// Failover is off for this group.
    Disabled,
    /// The master is down, but not for long enough yet.
    Waiting { remaining_secs: i64 },
    /// Promote this slave.
    Promote { ordinal: i32, pod: String },
    /// The master is down and no slave may take over; the reason is for the status.
    Blocked(String),
}

/// `unready_secs`: how long the master pod has been unready; `master_offset`: the master's
/// commit-log offset when last seen (unknown: slaves are compared with each other only).
pub fn decide(
    spec: &FailoverSpec,
    master_ready: bool,
    unready_secs: i64,
    master_offset: Option<i64>,
    slaves: &[Candidate],
) -> Decision {
    if master_ready {
        return Decision::Healthy;
    }
    if !spec.enabled {
        return Decision::Disabled;
    }
    if unready_secs < spec.grace_seconds {
        return Decision::Waiting {
            remaining_secs: spec.grace_seconds - unready_secs,
        };
    }
    let mut best: Option<(&Candidate, i64)> = None;
    for c in slaves.iter().filter(|c| c.ready) {
        let Some(offset) = c.max_offset else { continue };
        let better = match best {
            None => true,
            Some((b, bo)) => offset > bo || (offset == bo && c.ordinal < b.ordinal),
        };
        if better {
            best = Some((c, offset));
        }
    }
    let Some((chosen, offset)) = best else {
        return Decision::Blocked(if slaves.iter().any(|c| c.ready) {
            "no ready slave reports its offset".into()
        } else {
            "no slave is ready".into()
        });
    };
    if let Some(m) = master_offset {
        let lag = m - offset;
        if lag > spec.max_lag_bytes {
            return Decision::Blocked(format!(
                "the most caught-up slave ({}) is {lag} bytes behind the master, more than maxLagBytes {}",
                chosen.pod, spec.max_lag_bytes
            ));
        }
    }
    Decision::Promote {
        ordinal: chosen.ordinal,
        pod: chosen.pod.clone(),
    }
}

/// Most brokers in a group (ordinals 0..MAX_REPLICAS).
pub const MAX_REPLICAS: i32 = 5;

/// The broker id each ordinal runs with when `master` is the master's ordinal: the master 0,
/// a slave its ordinal, and ordinal 0 as a slave `MAX_REPLICAS` (no ordinal has that id).
/// Each pod's id depends only on its own ordinal and whether it leads, so after a switch at
/// runtime no two brokers share an id, whichever of them restarts with its new config first.
pub fn broker_id(ordinal: i32, master: i32) -> i64 {
    if ordinal == master {
        0
    } else {
        slave_id(ordinal)
    }
}

/// The id `ordinal` takes as a slave.
pub fn slave_id(ordinal: i32) -> i64 {
    if ordinal == 0 {
        i64::from(MAX_REPLICAS)
    } else {
        i64::from(ordinal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ordinal: i32, ready: bool, off: Option<i64>) -> Candidate {
        Candidate {
            ordinal,
            pod: format!("b-{ordinal}"),
            ready,
            max_offset: off,
        }
    }

    #[test]
    fn waits_then_promotes_the_most_caught_up_ready_slave() {
        let spec = FailoverSpec::default();
        let slaves = [
            c(1, true, Some(900)),
            c(2, true, Some(1000)),
            c(3, false, Some(5000)),
        ];
        assert_eq!(decide(&spec, true, 0, None, &slaves), Decision::Healthy);
        assert_eq!(spec.grace_seconds, 8);
        assert_eq!(
            decide(&spec, false, 3, None, &slaves),
            Decision::Waiting { remaining_secs: 5 }
        );
        assert_eq!(
            decide(&spec, false, 31, Some(1000), &slaves),
            Decision::Promote {
                ordinal: 2,
                pod: "b-2".into()
            },
            "the unready slave's larger offset does not count"
        );
        // Equal offsets: the lower ordinal.
        let tied = [c(2, true, Some(10)), c(1, true, Some(10))];
        assert_eq!(
            decide(&spec, false, 60, None, &tied),
            Decision::Promote {
                ordinal: 1,
                pod: "b-1".into()
            }
        );
    }

    #[test]
    fn never_promotes_out_of_sync_or_unready_slaves() {
        let spec = FailoverSpec {
            max_lag_bytes: 100,
            ..Default::default()
        };
        let d = decide(&spec, false, 60, Some(10_000), &[c(1, true, Some(9_000))]);
        assert!(
            matches!(&d, Decision::Blocked(m) if m.contains("1000 bytes behind")),
            "{d:?}"
        );
        let d = decide(&spec, false, 60, None, &[c(1, false, Some(9_000))]);
        assert_eq!(d, Decision::Blocked("no slave is ready".into()));
        let d = decide(&spec, false, 60, None, &[c(1, true, None)]);
        assert!(matches!(d, Decision::Blocked(_)));
        let off = FailoverSpec {
            enabled: false,
            ..Default::default()
        };
        assert_eq!(
            decide(&off, false, 600, None, &[c(1, true, Some(1))]),
            Decision::Disabled
        );
    }

    #[test]
    fn ids_after_a_switch() {
        // The usual layout: ordinal 0 leads, the slaves are 1 and 2.
        assert_eq!(
            (broker_id(0, 0), broker_id(1, 0), broker_id(2, 0)),
            (0, 1, 2)
        );
        // Master moved to ordinal 2: it is 0, the former master takes 5, ordinal 1 keeps 1.
        assert_eq!(
            (broker_id(2, 2), broker_id(0, 2), broker_id(1, 2)),
            (0, 5, 1)
        );
        // Then to ordinal 1: only the two that switched change.
        assert_eq!(
            (broker_id(1, 1), broker_id(0, 1), broker_id(2, 1)),
            (0, 5, 2)
        );
        // Any master: ids are distinct.
        for m in 0..MAX_REPLICAS {
            let mut ids: Vec<i64> = (0..MAX_REPLICAS).map(|o| broker_id(o, m)).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), MAX_REPLICAS as usize);
        }
    }
}
