//! The BrokerGroup reconciler's master changes, over the remoting protocol:
//!
//! * **failover** — the master pod has been unready past `failover.graceSeconds` and the broker
//!   does not answer either: the most caught-up ready slave is promoted with the next epoch;
//!   the former master steps down when it can be reached again (the new master keeps telling
//!   it);
//! * **switchover** — the master is alive but the `rocketmq.rs/promote` annotation names a
//!   slave, or a scale-down would remove the master's pod: the master is made read-only, the
//!   target catches up to its last byte, is promoted, and the former master is demoted at once,
//!   so nothing is cut.
//!
//! The decision itself is pure ([`crate::build::failover::decide`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use rmq_admin::broker::{
    broker_epoch, max_offset, promote, runtime_info, step_down, Promotion, StepDown,
};
use rmq_admin::switchover::{switchover as switch_over, Switch};
use rmq_remoting::role::{Epoch, Perm};

use crate::build::broker_group::master_ordinal;
use crate::build::failover::{broker_id, decide, slave_id, Candidate, Decision};
use crate::controller::Context;
use crate::crd::broker_group::{FailoverSpec, ReplicaStatus};
use crate::crd::BrokerGroup;

/// How long a switchover waits for its target to hold everything the master has.
const CATCH_UP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Promoted {
        pod: String,
        epoch: Epoch,
        switchover: bool,
    },
    Blocked(String),
    /// The master is down; the grace period ends in this many seconds.
    Waiting(i64),
}

/// Seconds since `pod` turned unready (its Ready condition), or, with no pod or no time,
/// since the group's MasterReady (else Ready) condition turned false.
pub fn unready_secs(pod: Option<&Pod>, previous: &[Condition], now: i64) -> i64 {
    // MasterReady turned false when the master went (an older status has only Ready).
    let since = |c: &[Condition]| {
        let down = |t: &str| {
            c.iter()
                .find(|c| c.type_ == t && c.status == "False")
                .map(|c| c.last_transition_time.0.as_second())
        };
        down("MasterReady").or_else(|| down("Ready"))
    };
    let pod_since = pod
        .and_then(|p| p.status.as_ref()?.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Ready" && c.status != "True")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.as_second())
        });
    pod_since
        .or_else(|| since(previous))
        .map(|t| (now - t).max(0))
        .unwrap_or(0)
}

fn ordinal_of(pod: &str) -> Option<i32> {
    pod.rsplit('-').next()?.parse().ok()
}

fn broker_name(bg: &BrokerGroup) -> String {
    bg.spec.broker_name.clone().unwrap_or_else(|| bg.name_any())
}

/// The epoch the group's status records (an `int64` in the CRD; epochs are `Integer`s on
/// the wire).
pub fn status_epoch(bg: &BrokerGroup) -> Epoch {
    Epoch(
        bg.status
            .as_ref()
            .map(|s| i32::try_from(s.epoch).unwrap_or(i32::MAX))
            .unwrap_or(0),
    )
}

/// The ready slave holding the most of the log among `candidates` (None: none answers).
async fn most_caught_up<'a>(
    ctx: &Context,
    candidates: &[&'a ReplicaStatus],
) -> Option<(&'a ReplicaStatus, i64)> {
    let mut best: Option<(&ReplicaStatus, i64)> = None;
    for r in candidates.iter().filter(|r| r.ready) {
        let Some(addr) = &r.address else { continue };
        if let Some(o) = max_offset(&ctx.remoting, addr).await {
            if best.is_none_or(|(_, b)| o > b) {
                best = Some((r, o));
            }
        }
    }
    best
}

/// Moves the master from a live broker to `target` without losing or cutting anything.
async fn switchover(
    ctx: &Context,
    bg: &BrokerGroup,
    master: i32,
    master_addr: &str,
    target: &ReplicaStatus,
) -> Outcome {
    let pod = target.pod.clone();
    let Some(addr) = target.address.clone().filter(|_| target.ready) else {
        return Outcome::Blocked(format!(
            "cannot switch the master to {pod}: it is not ready"
        ));
    };
    let Some(t_ord) = ordinal_of(&pod) else {
        return Outcome::Blocked(format!("{pod} is not a pod of this group"));
    };
    let switch = Switch {
        master: master_addr.to_string(),
        target: addr,
        broker_name: broker_name(bg),
        role: bg.spec.broker_role.into(),
        former_master_id: broker_id(master, t_ord),
        permission: bg
            .spec
            .config
            .get("brokerPermission")
            .and_then(|p| rmq_remoting::config::ConfigValue::parse_value(p))
            .unwrap_or(Perm::READ_WRITE),
        catch_up: CATCH_UP,
        epoch_floor: status_epoch(bg),
    };
    match switch_over(&ctx.remoting, &switch).await {
        Ok(done) => {
            if !done.former_stepped_down {
                tracing::warn!(%pod, "the former master has not confirmed it follows; it stays read-only until it does");
            }
            Outcome::Promoted {
                pod,
                epoch: done.epoch,
                switchover: true,
            }
        }
        Err(e) => Outcome::Blocked(e.to_string()),
    }
}

/// One failover/switchover step for the group; `None` when the master stays where it is.
/// `replicas` is updated to the new roles on a change.
/// `roll_pending`: the StatefulSet has a new revision its pods do not run yet (held while the
/// master is not ordinal 0, see [`crate::build::broker_group::roll_partition`]).
pub async fn step(
    ctx: &Context,
    bg: &BrokerGroup,
    previous: &[Condition],
    pods: &[Pod],
    replicas: &mut [ReplicaStatus],
    roll_pending: bool,
) -> Option<Outcome> {
    if replicas.len() < 2 {
        return None; // no slave to promote
    }
    let group = bg.name_any();
    let master = master_ordinal(bg);
    let master_pod = format!("{group}-{master}");
    let m = replicas.iter().find(|r| r.pod == master_pod);
    let master_addr = m.and_then(|r| r.address.clone());
    let pod_ready = m.is_some_and(|r| r.ready);
    // The broker's own word: a master that still answers is alive whatever its pod says.
    let alive = pod_ready
        || match &master_addr {
            Some(a) => max_offset(&ctx.remoting, a).await.is_some(),
            None => false,
        };
    let asked = bg
        .annotations()
        .get(crate::crd::PROMOTE_ANNOTATION)
        .filter(|p| !p.is_empty() && **p != master_pod)
        .cloned();
    // A roll waits for the master to be back on ordinal 0 (rolled last).
    let zero = format!("{group}-0");
    let zero_ready = replicas.iter().any(|r| r.pod == zero && r.ready);
    let for_roll = asked.is_none() && roll_pending && master != 0 && zero_ready;
    let wanted = asked.or_else(|| for_roll.then(|| zero.clone()));
    // Never promote a pod a scale-down is about to remove.
    let keep = bg.spec.replicas;
    let eligible: Vec<&ReplicaStatus> = replicas
        .iter()
        .filter(|r| r.pod != master_pod)
        .filter(|r| ordinal_of(&r.pod).is_some_and(|o| o < keep))
        .filter(|r| wanted.as_ref().is_none_or(|w| *w == r.pod))
        .collect();
    if let Some(w) = &wanted {
        if eligible.is_empty() {
            return Some(Outcome::Blocked(format!(
                "{} names {w}, which is not a slave of this group",
                crate::crd::PROMOTE_ANNOTATION
            )));
        }
    }
    let outcome = if alive {
        let removing_master = master >= keep;
        if wanted.is_none() && !removing_master {
            return None;
        }
        let Some(addr) = master_addr else {
            return Some(Outcome::Blocked("the master has no address".into()));
        };
        let target = match &wanted {
            Some(_) => eligible[0].clone(),
            None => match most_caught_up(ctx, &eligible).await {
                Some((r, _)) => r.clone(),
                None => {
                    return Some(Outcome::Blocked(format!(
                        "scaling to {keep} removes the master {master_pod}, and no remaining slave is ready to take over"
                    )))
                }
            },
        };
        switchover(ctx, bg, master, &addr, &target).await
    } else {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let master_pod_obj = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(&master_pod));
        let mut waited = unready_secs(master_pod_obj, previous, now);
        if wanted.is_some() {
            waited = waited.max(bg.spec.failover.grace_seconds);
        }
        // Asked for by name, a switch happens even with automatic failover off.
        let spec = FailoverSpec {
            enabled: bg.spec.failover.enabled || wanted.is_some(),
            ..bg.spec.failover.clone()
        };
        match decide(&spec, false, waited, None, &[]) {
            Decision::Healthy | Decision::Disabled => return None,
            Decision::Waiting { remaining_secs } => return Some(Outcome::Waiting(remaining_secs)),
            _ => {}
        }
        // A slave that already leads (a promotion whose answer was lost, or one made by hand)
        // is adopted rather than promoted again. Not a broker running as a master from its
        // config that has not confirmed its term: it may be a former master restarted with a
        // stale config, waiting for the newer term's master — adopting it would leave the
        // group without a writable master.
        for r in eligible.iter().filter(|r| r.ready) {
            let Some(addr) = &r.address else { continue };
            let Ok(info) = runtime_info(&ctx.remoting, addr).await else {
                continue;
            };
            if info.is_master() && info.term_confirmed() {
                let epoch = info.epoch().unwrap_or_default().max(status_epoch(bg));
                return Some(finish(
                    replicas,
                    &group,
                    Outcome::Promoted {
                        pod: r.pod.clone(),
                        epoch,
                        switchover: false,
                    },
                ));
            }
        }
        let mut candidates = Vec::new();
        for r in &eligible {
            let offset = match (&r.address, r.ready) {
                (Some(addr), true) => max_offset(&ctx.remoting, addr).await,
                _ => None,
            };
            candidates.push(Candidate {
                ordinal: ordinal_of(&r.pod)?,
                pod: r.pod.clone(),
                ready: r.ready,
                max_offset: offset,
            });
        }
        match decide(&spec, false, waited, None, &candidates) {
            Decision::Promote { pod, .. } => {
                let addr = replicas
                    .iter()
                    .find(|r| r.pod == pod)
                    .and_then(|r| r.address.clone())?;
                let known = broker_epoch(&ctx.remoting, &addr).await.unwrap_or_default();
                let epoch = status_epoch(bg).max(known).max(Epoch(1)).next();
                let promotion = Promotion {
                    epoch,
                    role: bg.spec.broker_role.into(),
                    broker_name: broker_name(bg),
                    former_master_id: Some(slave_id(master)),
                };
                let promoted = promote(&ctx.remoting, &addr, &promotion).await;
                match promoted {
                    Ok(()) => Outcome::Promoted {
                        pod,
                        epoch,
                        switchover: false,
                    },
                    Err(e) => Outcome::Blocked(format!("promoting {pod} failed: {e}")),
                }
            }
            Decision::Blocked(reason) => Outcome::Blocked(reason),
            _ => return None,
        }
    };
    Some(finish(replicas, &group, outcome))
}

/// On a promotion, the replicas' roles and ids as they are now.
fn finish(replicas: &mut [ReplicaStatus], group: &str, outcome: Outcome) -> Outcome {
    if let Outcome::Promoted { pod, epoch, .. } = &outcome {
        tracing::warn!(%group, %pod, %epoch, "promoted a slave to master");
        let new_master = ordinal_of(pod).unwrap_or(0);
        for r in replicas.iter_mut() {
            let o = ordinal_of(&r.pod).unwrap_or(-1);
            r.role = crate::crd::broker_group::ReplicaRole::of(o == new_master);
            r.broker_id = broker_id(o, new_master);
        }
    }
    outcome
}

/// Brokers other than the recorded master that run as masters anyway (a pod restarted with a
/// config that predates a switch, or a former master the new one has not reached yet) are
/// told to follow the recorded master. Returns the pods told.
pub async fn step_down_others(
    ctx: &Context,
    bg: &BrokerGroup,
    replicas: &[ReplicaStatus],
    master_pod: &str,
    epoch: Epoch,
) -> Vec<String> {
    let Some(master_addr) = replicas
        .iter()
        .find(|r| r.pod == master_pod && r.ready)
        .and_then(|r| r.address.clone())
    else {
        return Vec::new(); // nobody to follow; failover deals with that
    };
    let mut told = Vec::new();
    for r in replicas.iter().filter(|r| r.pod != master_pod && r.ready) {
        let (Some(addr), Some(ordinal)) = (&r.address, ordinal_of(&r.pod)) else {
            continue;
        };
        let Ok(info) = runtime_info(&ctx.remoting, addr).await else {
            continue;
        };
        if !info.is_master() {
            continue;
        }
        // Above what it knows: it may have copied the recorded master's epoch while it
        // followed it, before a restart made it a master again.
        let its = info.epoch().unwrap_or_default();
        let notice = StepDown {
            new_master: master_addr.clone(),
            new_master_ha: None,
            epoch: epoch.max(its).next(),
            broker_id: slave_id(ordinal),
            broker_name: broker_name(bg),
        };
        match step_down(&ctx.remoting, addr, &notice).await {
            Ok(_) => {
                tracing::warn!(pod = %r.pod, master = %master_pod, "a second master was told to step down");
                told.push(r.pod.clone());
            }
            Err(e) => {
                tracing::warn!(pod = %r.pod, error = %e, "a second master refused to step down")
            }
        }
    }
    told
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn the_master_pods_own_transition_counts_first() {
        let group = vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: at(1_000),
            message: String::new(),
            reason: "ReplicasNotReady".into(),
            observed_generation: None,
        }];
        let pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    last_transition_time: Some(at(1_900)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // A slave made the group unready long ago; the master went down 100 s ago.
        assert_eq!(unready_secs(Some(&pod), &group, 2_000), 100);
        // No pod (deleted, being recreated): the group's condition.
        assert_eq!(unready_secs(None, &group, 2_000), 1_000);
        assert_eq!(unready_secs(None, &[], 2_000), 0);
    }
}
