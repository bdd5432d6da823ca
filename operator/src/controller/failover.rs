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
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode};

use super::Context;
use crate::build::broker_group::master_ordinal;
use crate::build::failover::{broker_id, decide, slave_id, Candidate, Decision};
use crate::crd::broker_group::{BrokerRole, FailoverSpec, ReplicaStatus};
use crate::crd::BrokerGroup;

/// How long a switchover waits for its target to hold everything the master has.
const CATCH_UP: Duration = Duration::from_secs(10);
/// Broker requests: short, a reconcile must not hang on a dead pod's address.
const CALL: Duration = Duration::from_secs(2);

pub enum Outcome {
    Promoted {
        pod: String,
        epoch: i64,
        switchover: bool,
    },
    Blocked(String),
    /// The master is down; the grace period ends in this many seconds.
    Waiting(i64),
}

/// Seconds since `pod` turned unready (its Ready condition), or, with no pod or no time,
/// since the group's Ready condition turned false.
pub fn unready_secs(pod: Option<&Pod>, previous: &[Condition], now: i64) -> i64 {
    let since = |c: &[Condition]| {
        c.iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")
            .map(|c| c.last_transition_time.0.as_second())
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

async fn call(ctx: &Context, addr: &str, req: RemotingCommand) -> Result<RemotingCommand, String> {
    ctx.remoting
        .invoke(addr, req, CALL)
        .await
        .and_then(|r| r.ensure_success())
        .map_err(|e| e.to_string())
}

/// A broker's commit-log max offset (GET_BROKER_RUNTIME_INFO); `None`: it does not answer.
pub async fn max_offset(ctx: &Context, addr: &str) -> Option<i64> {
    let r = call(
        ctx,
        addr,
        RemotingCommand::request(RequestCode::GET_BROKER_RUNTIME_INFO),
    )
    .await
    .ok()?;
    let kv = rmq_remoting::protocol::KvTable::decode(&r.body).ok()?;
    kv.table.get("commitLogMaxOffset")?.parse().ok()
}

/// The newest epoch a broker knows (GET_BROKER_EPOCH_CACHE).
async fn broker_epoch(ctx: &Context, addr: &str) -> Option<i64> {
    let r = call(
        ctx,
        addr,
        RemotingCommand::request(RequestCode::GET_BROKER_EPOCH_CACHE),
    )
    .await
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v["epochList"].as_array()?.last()?["epoch"].as_i64()
}

/// The epoch a new master takes: past the status and past anything the brokers know (a
/// manual `mqadmin promote` may have moved on without the operator).
async fn next_epoch(ctx: &Context, bg: &BrokerGroup, addrs: &[&str]) -> i64 {
    let mut e = bg.status.as_ref().map(|s| s.epoch).unwrap_or(0).max(1);
    for a in addrs {
        if let Some(b) = broker_epoch(ctx, a).await {
            e = e.max(b);
        }
    }
    e + 1
}

fn notify(fields: &[(&str, String)]) -> RemotingCommand {
    let mut req = RemotingCommand::request(RequestCode::NOTIFY_BROKER_ROLE_CHANGED);
    for (k, v) in fields {
        req.ext_fields.insert((*k).into(), v.clone());
    }
    req
}

fn broker_name(bg: &BrokerGroup) -> String {
    bg.spec.broker_name.clone().unwrap_or_else(|| bg.name_any())
}

/// Promotes the broker at `addr` to master of `epoch`; the former master (ordinal
/// `former`) is to take its slave id when it steps down.
async fn promote(
    ctx: &Context,
    bg: &BrokerGroup,
    addr: &str,
    epoch: i64,
    former: i32,
) -> Result<(), String> {
    let role = match bg.spec.broker_role {
        BrokerRole::SyncMaster => "SYNC_MASTER",
        BrokerRole::AsyncMaster => "ASYNC_MASTER",
    };
    let req = notify(&[
        ("masterAddress", addr.to_string()),
        ("masterEpoch", epoch.to_string()),
        ("masterBrokerId", "0".into()),
        ("brokerRole", role.into()),
        ("formerMasterBrokerId", slave_id(former).to_string()),
        ("brokerName", broker_name(bg)),
    ]);
    call(ctx, addr, req).await.map(|_| ())
}

/// `brokerPermission` at run time (UPDATE_BROKER_CONFIG): 4 read-only, 6 read-write.
async fn set_permission(ctx: &Context, addr: &str, perm: &str) -> Result<(), String> {
    let req = RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG)
        .with_body(format!("brokerPermission={perm}\n").into_bytes());
    call(ctx, addr, req).await.map(|_| ())
}

/// The ready slave holding the most of the log among `candidates` (None: none answers).
async fn most_caught_up<'a>(
    ctx: &Context,
    candidates: &[&'a ReplicaStatus],
) -> Option<(&'a ReplicaStatus, i64)> {
    let mut best: Option<(&ReplicaStatus, i64)> = None;
    for r in candidates.iter().filter(|r| r.ready) {
        let Some(addr) = &r.address else { continue };
        if let Some(o) = max_offset(ctx, addr).await {
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
    let configured = bg
        .spec
        .config
        .get("brokerPermission")
        .cloned()
        .unwrap_or_else(|| "6".into());
    // No new writes on the master while the target catches up: clients are told to go
    // elsewhere (NO_PERMISSION, and the name servers stop routing writes to it).
    if let Err(e) = set_permission(ctx, master_addr, "4").await {
        return Outcome::Blocked(format!("cannot make the master read-only: {e}"));
    }
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let (m, t) = (
            max_offset(ctx, master_addr).await,
            max_offset(ctx, &addr).await,
        );
        if let (Some(m), Some(t)) = (m, t) {
            if t >= m {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            let _ = set_permission(ctx, master_addr, &configured).await;
            let lag = m.zip(t).map(|(m, t)| format!("{} bytes behind", m - t));
            return Outcome::Blocked(format!(
                "{pod} did not catch up with the master within {CATCH_UP:?} ({})",
                lag.unwrap_or_else(|| "offsets unknown".into())
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let epoch = next_epoch(ctx, bg, &[master_addr, &addr]).await;
    if let Err(e) = promote(ctx, bg, &addr, epoch, master).await {
        let _ = set_permission(ctx, master_addr, &configured).await;
        return Outcome::Blocked(format!("promoting {pod} failed: {e}"));
    }
    // Step the former master down now rather than when the new master's own notice reaches
    // it; then give it back the configured permission for the day it leads again.
    let demote = notify(&[
        ("masterAddress", addr.clone()),
        ("masterEpoch", epoch.to_string()),
        ("masterBrokerId", "0".into()),
        ("brokerId", broker_id(master, t_ord).to_string()),
        ("brokerName", broker_name(bg)),
    ]);
    if let Err(e) = call(ctx, master_addr, demote).await {
        tracing::warn!(error = %e, "the former master did not step down yet; the new master keeps telling it");
    }
    let _ = set_permission(ctx, master_addr, &configured).await;
    Outcome::Promoted {
        pod,
        epoch,
        switchover: true,
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
            Some(a) => max_offset(ctx, a).await.is_some(),
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
        let mut candidates = Vec::new();
        for r in &eligible {
            let offset = match (&r.address, r.ready) {
                (Some(addr), true) => max_offset(ctx, addr).await,
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
                let epoch = next_epoch(ctx, bg, &[&addr]).await;
                match promote(ctx, bg, &addr, epoch, master).await {
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
    if let Outcome::Promoted { pod, epoch, .. } = &outcome {
        tracing::warn!(%group, %pod, epoch, "promoted a slave to master");
        let new_master = ordinal_of(pod).unwrap_or(0);
        for r in replicas.iter_mut() {
            let o = ordinal_of(&r.pod).unwrap_or(-1);
            r.role = if o == new_master { "MASTER" } else { "SLAVE" }.into();
            r.broker_id = broker_id(o, new_master);
        }
    }
    Some(outcome)
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
