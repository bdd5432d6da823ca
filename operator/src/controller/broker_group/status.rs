//! The group's status, a pure function of what the pass applied and observed: the
//! StatefulSet's rollout, the replicas, who leads after the failover step, and the previous
//! conditions (whose transition times carry over).

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::failover::Outcome;
use super::roles::Leader;
use crate::controller::{condition, RESYNC};
use crate::crd::broker_group::ReplicaStatus;
use crate::crd::{BrokerGroupStatus, CommonStatus};

/// How often a group that is not all ready is looked at again.
const NOT_READY_RESYNC: Duration = Duration::from_secs(10);

/// What the StatefulSet reported when applied.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rollout {
    pub ready: i32,
    pub updated: i32,
    /// It has a revision its pods do not run yet.
    pub pending: bool,
}

impl Rollout {
    pub fn of(sts: &StatefulSet) -> Rollout {
        let s = sts.status.as_ref();
        Rollout {
            ready: s.and_then(|s| s.ready_replicas).unwrap_or(0),
            updated: s.and_then(|s| s.updated_replicas).unwrap_or(0),
            pending: s.is_some_and(|s| {
                s.update_revision.is_some() && s.update_revision != s.current_revision
            }),
        }
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub previous: &'a [Condition],
    /// `spec.replicas`.
    pub want: i32,
    pub rollout: Rollout,
    /// Whether the group's name servers were found.
    pub has_name_server: bool,
    pub leader: &'a Leader,
    /// The failover step's outcome; `None` when the master stayed where it was.
    pub failover: Option<&'a Outcome>,
    pub replicas: &'a [ReplicaStatus],
}

impl Observed<'_> {
    /// Every wanted pod ready and on the current revision.
    pub fn all_ready(&self) -> bool {
        self.rollout.ready >= self.want && self.rollout.updated >= self.want
    }

    /// Whether the leader's pod is ready.
    pub fn master_ready(&self) -> bool {
        self.replicas
            .iter()
            .any(|r| r.pod == self.leader.pod && r.ready)
    }

    /// Why a scale-down waits: it would remove the master's pod.
    fn scale_blocked(&self) -> Option<String> {
        let (want, pod) = (self.want, &self.leader.pod);
        (self.leader.ordinal() >= want).then(|| {
            format!(
                "scaling to {want} would remove the master {pod}; it stays until another pod leads"
            )
        })
    }

    /// `MasterReady`: who leads, and if nobody does, why and for how long yet.
    fn master_condition(&self) -> (bool, &'static str, String) {
        let (pod, epoch) = (&self.leader.pod, self.leader.epoch);
        match self.failover {
            Some(Outcome::Promoted {
                pod,
                epoch,
                switchover,
            }) => (
                true,
                if *switchover { "SwitchedOver" } else { "Promoted" },
                format!("{pod} leads from epoch {epoch}"),
            ),
            // A switch that could not happen leaves a live master leading.
            Some(Outcome::Blocked(_)) if self.master_ready() => {
                (true, "Leading", format!("{pod} leads, epoch {epoch}"))
            }
            Some(Outcome::Blocked(reason)) => (false, "FailoverBlocked", reason.clone()),
            Some(Outcome::Waiting(secs)) => (
                false,
                "MasterDown",
                format!("{pod} is not ready; the most caught-up slave is promoted in {secs} s unless it returns"),
            ),
            None if self.master_ready() => (true, "Leading", format!("{pod} leads, epoch {epoch}")),
            None => (false, "MasterDown", format!("{pod} is not ready")),
        }
    }

    /// `Degraded`: no name server, a blocked failover, or a blocked scale-down, in that order.
    fn degraded_condition(&self) -> (bool, &'static str, String) {
        let blocked = match self.failover {
            Some(Outcome::Blocked(reason)) => Some(reason.clone()),
            _ => None,
        };
        let scale_blocked = self.scale_blocked();
        let reason = if !self.has_name_server {
            "NoNameServer"
        } else if blocked.is_some() {
            "FailoverBlocked"
        } else if scale_blocked.is_some() {
            "ScaleDownBlocked"
        } else {
            "Reconciled"
        };
        let degraded = !self.has_name_server || blocked.is_some() || scale_blocked.is_some();
        (
            degraded,
            reason,
            blocked.or(scale_blocked).unwrap_or_default(),
        )
    }
}

pub fn status(o: &Observed) -> BrokerGroupStatus {
    let generation = o.generation;
    let Rollout { ready, updated, .. } = o.rollout;
    let all_ready = o.all_ready();
    let progress = format!("{ready}/{} ready, {updated} updated", o.want);
    let (leads, lead_reason, lead_note) = o.master_condition();
    let (degraded, degraded_reason, degraded_note) = o.degraded_condition();
    BrokerGroupStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions: vec![
                condition(
                    o.previous,
                    "MasterReady",
                    leads,
                    lead_reason,
                    lead_note,
                    generation,
                ),
                condition(
                    o.previous,
                    "Ready",
                    all_ready,
                    if all_ready {
                        "AllReplicasReady"
                    } else {
                        "ReplicasNotReady"
                    },
                    progress.clone(),
                    generation,
                ),
                condition(
                    o.previous,
                    "Progressing",
                    !all_ready,
                    if all_ready { "Stable" } else { "RollingOut" },
                    progress,
                    generation,
                ),
                condition(
                    o.previous,
                    "Degraded",
                    degraded,
                    degraded_reason,
                    degraded_note,
                    generation,
                ),
            ],
        },
        ready_replicas: ready,
        master_pod: Some(o.leader.pod.clone()),
        epoch: o.leader.epoch.0.into(),
        replicas: o.replicas.to_vec(),
    }
}

/// When to look again: soon while not all ready, and exactly when a failover's grace period
/// ends.
pub fn requeue(o: &Observed) -> Duration {
    let next = if o.all_ready() {
        RESYNC
    } else {
        NOT_READY_RESYNC
    };
    match o.failover {
        Some(&Outcome::Waiting(secs)) => next.min(Duration::from_secs(secs.max(0) as u64 + 1)),
        _ => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::broker_group::ReplicaRole;
    use rmq_remoting::role::Epoch;

    fn replica(pod: &str, ready: bool) -> ReplicaStatus {
        ReplicaStatus {
            pod: pod.into(),
            ready,
            role: ReplicaRole::Slave,
            ..Default::default()
        }
    }

    fn leader(pod: &str) -> Leader {
        Leader {
            pod: pod.into(),
            epoch: Epoch(3),
        }
    }

    fn observed<'a>(
        leader: &'a Leader,
        replicas: &'a [ReplicaStatus],
        failover: Option<&'a Outcome>,
    ) -> Observed<'a> {
        Observed {
            generation: Some(4),
            previous: &[],
            want: 2,
            rollout: Rollout {
                ready: 2,
                updated: 2,
                pending: false,
            },
            has_name_server: true,
            leader,
            failover,
            replicas,
        }
    }

    /// `(type, status, reason, message)` of each condition.
    fn conditions(s: &BrokerGroupStatus) -> Vec<(String, String, String, String)> {
        s.common
            .conditions
            .iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
            .collect()
    }

    fn find(s: &BrokerGroupStatus, type_: &str) -> (String, String, String) {
        let (_, status, reason, message) =
            conditions(s).into_iter().find(|c| c.0 == type_).unwrap();
        (status, reason, message)
    }

    #[test]
    fn a_healthy_group() {
        let l = leader("g-0");
        let reps = [replica("g-0", true), replica("g-1", true)];
        let o = observed(&l, &reps, None);
        let s = status(&o);
        let types: Vec<String> = conditions(&s).into_iter().map(|c| c.0).collect();
        assert_eq!(types, ["MasterReady", "Ready", "Progressing", "Degraded"]);
        assert_eq!(
            find(&s, "MasterReady"),
            ("True".into(), "Leading".into(), "g-0 leads, epoch 3".into())
        );
        assert_eq!(
            find(&s, "Ready"),
            (
                "True".into(),
                "AllReplicasReady".into(),
                "2/2 ready, 2 updated".into()
            )
        );
        assert_eq!(find(&s, "Progressing").1, "Stable");
        assert_eq!(
            find(&s, "Degraded"),
            ("False".into(), "Reconciled".into(), String::new())
        );
        assert_eq!(
            (s.ready_replicas, s.master_pod.as_deref(), s.epoch),
            (2, Some("g-0"), 3)
        );
        assert_eq!(s.common.observed_generation, Some(4));
        assert_eq!(s.replicas, reps);
        assert_eq!(requeue(&o), RESYNC);
    }

    #[test]
    fn failover_outcomes() {
        let l = leader("g-0");
        let down = [replica("g-0", false), replica("g-1", true)];
        let waiting = Outcome::Waiting(4);
        let o = observed(&l, &down, Some(&waiting));
        let s = status(&o);
        assert_eq!(find(&s, "MasterReady").1, "MasterDown");
        assert!(find(&s, "MasterReady").2.contains("promoted in 4 s"));
        assert_eq!(
            requeue(&o),
            Duration::from_secs(5),
            "back when the grace ends"
        );

        let blocked = Outcome::Blocked("no slave is ready".into());
        let s = status(&observed(&l, &down, Some(&blocked)));
        assert_eq!(
            find(&s, "MasterReady"),
            (
                "False".into(),
                "FailoverBlocked".into(),
                "no slave is ready".into()
            )
        );
        assert_eq!(
            find(&s, "Degraded"),
            (
                "True".into(),
                "FailoverBlocked".into(),
                "no slave is ready".into()
            )
        );
        // A switch refused on a live master: it still leads.
        let up = [replica("g-0", true), replica("g-1", true)];
        let s = status(&observed(&l, &up, Some(&blocked)));
        assert_eq!(find(&s, "MasterReady").1, "Leading");

        let promoted = Outcome::Promoted {
            pod: "g-1".into(),
            epoch: Epoch(4),
            switchover: true,
        };
        let l1 = Leader {
            pod: "g-1".into(),
            epoch: Epoch(4),
        };
        let s = status(&observed(&l1, &up, Some(&promoted)));
        assert_eq!(
            find(&s, "MasterReady"),
            (
                "True".into(),
                "SwitchedOver".into(),
                "g-1 leads from epoch 4".into()
            )
        );
        assert_eq!((s.master_pod.as_deref(), s.epoch), (Some("g-1"), 4));
    }

    #[test]
    fn degraded_reasons_in_order() {
        let l = leader("g-2");
        let reps = [replica("g-2", true)];
        let mut o = observed(&l, &reps, None);
        let s = status(&o);
        assert_eq!(find(&s, "Degraded").1, "ScaleDownBlocked");
        assert!(find(&s, "Degraded")
            .2
            .contains("would remove the master g-2"));
        o.has_name_server = false;
        assert_eq!(find(&status(&o), "Degraded").1, "NoNameServer");
    }

    #[test]
    fn a_rollout_in_progress_and_kept_transition_times() {
        let l = leader("g-0");
        let reps = [replica("g-0", true)];
        let earlier = status(&observed(&l, &reps, None)).common.conditions;
        let mut o = observed(&l, &reps, None);
        o.previous = &earlier;
        o.rollout = Rollout {
            ready: 2,
            updated: 1,
            pending: true,
        };
        let s = status(&o);
        assert_eq!(
            find(&s, "Ready"),
            (
                "False".into(),
                "ReplicasNotReady".into(),
                "2/2 ready, 1 updated".into()
            )
        );
        assert_eq!(find(&s, "Progressing").1, "RollingOut");
        assert_eq!(requeue(&o), NOT_READY_RESYNC);
        // MasterReady did not change: its transition time is the earlier one.
        assert_eq!(
            s.common.conditions[0].last_transition_time,
            earlier[0].last_transition_time
        );
    }
}
