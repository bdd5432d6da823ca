//! A broker started as a master proves its term is current before it takes a write.
//!
//! `broker.conf` says where a broker *started*; after a failover it may be stale (a
//! Kubernetes ConfigMap volume refreshes late), and a former master restarted with it would
//! take writes in a term that is over until something fenced it. So a master started from
//! its config is *unconfirmed*: it listens and serves reads, but sends get
//! SERVICE_NOT_AVAILABLE (which clients retry on another broker), it announces its topics
//! without write permission, and it runs no master services (HA port, delay levels,
//! transaction checks) until the check below says its term is current:
//!
//! 1. every name server is asked for the group's members (GET_BROKER_MEMBER_GROUP);
//! 2. every other member is asked for its epochs (GET_BROKER_EPOCH_CACHE): its role (id 0 is
//!    a master) and the newest epoch in its log — a term some master began (not the newest it
//!    was told of: a step-down notice may name an epoch no master began).
//!
//! * A master of a newer epoch answers: this broker steps down and follows it (with the
//!   lowest broker id no other member holds), cutting at the handshake whatever it wrote in
//!   its own term after the new one began.
//! * Some member's log holds a newer epoch but no master of it answers: the term is over, but
//!   there is nobody to follow yet. It waits (unconfirmed) and asks again.
//! * A listed master does not answer, or another master claims the same epoch: it waits.
//! * Otherwise (no other member, or only slaves and masters of older epochs) the term is
//!   current: it takes writes, starts the master services and tells any older master it
//!   found to step down.
//!
//! No name server answering is no proof: the broker waits and asks again every few seconds,
//! for as long as it takes, logging why. A group's first start, with its name servers up,
//! is confirmed in one round trip; with no name server configured at all (`namesrvAddr`
//! empty) there is nothing to ask and the broker takes writes as configured. An admin can
//! end the wait by promoting the broker (`mqadmin promote`, a newer epoch).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmq_remoting::header::GetBrokerMemberGroupRequestHeader;
use rmq_remoting::protocol::route::BrokerMemberGroup;
use rmq_remoting::role::Epoch;
use rmq_remoting::{JsonBody, RemotingCommand, RequestCode, ResponseCode};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;

/// One request to a name server or a peer.
const CALL: Duration = Duration::from_secs(2);
/// Between rounds while the term is not confirmed.
const RETRY: Duration = Duration::from_secs(2);
/// How long `Broker::start` waits for the first round's verdict.
const FIRST_ROUND: Duration = Duration::from_secs(6);
/// How often an unchanged reason for waiting is logged again.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// What the check has done so far: rounds run and, while it waits, why.
#[derive(Default)]
pub struct TermCheck {
    rounds: std::sync::atomic::AtomicU64,
    waiting: parking_lot::Mutex<Option<String>>,
}

impl TermCheck {
    /// Rounds completed.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Why the last round did not confirm the term (`None`: it did, or none ran yet).
    pub fn waiting_for(&self) -> Option<String> {
        self.waiting.lock().clone()
    }

    fn round(&self, waiting: Option<String>) {
        *self.waiting.lock() = waiting;
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// What one round found.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// No newer term: take writes; tell these older masters (address, id to take) to
    /// step down.
    Current(Vec<(String, i64)>),
    /// `addr` leads `epoch`, newer than this broker's: follow it as broker `id`.
    Follow { addr: String, epoch: Epoch, id: i64 },
    /// Not proven (yet), and why.
    Wait(String),
}

/// What a member said of itself.
#[derive(Debug, Clone)]
struct Peer {
    addr: String,
    id: i64,
    /// The newest epoch in its log: a term some master began. (Not the newest it was told
    /// of: step-down notices may name epochs no master began — the operator's notice to a
    /// second master takes one above anything that master knows.)
    epoch: Epoch,
}

/// Starts the check for an unconfirmed master and waits a bounded time for its first
/// verdict; the check goes on in the background if that was not enough.
pub async fn start(inner: &Arc<BrokerInner>) {
    let servers = inner.settings.broker(|b| b.name_servers());
    if servers.is_empty() {
        tracing::warn!("namesrvAddr is empty: this master's term cannot be checked; it takes writes as configured");
        confirm(inner, Vec::new()).await;
        return;
    }
    let (first, done) = tokio::sync::oneshot::channel();
    let stop = inner.tasks.stop_token().clone();
    inner.tasks.spawn(run(inner.clone(), stop, first));
    if tokio::time::timeout(FIRST_ROUND, done).await.is_err() {
        tracing::warn!("the master term check goes on in the background; no writes until it ends");
    }
}

async fn run(
    inner: Arc<BrokerInner>,
    stop: CancellationToken,
    first: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut logged: Option<(String, Instant)> = None;
    loop {
        if !inner.role.snapshot().unconfirmed_master() {
            return; // promoted or demoted by a request meanwhile
        }
        let verdict = check_once(&inner).await;
        let waiting = match &verdict {
            Verdict::Wait(why) => Some(why.clone()),
            _ => None,
        };
        inner.term_check.round(waiting);
        match verdict {
            Verdict::Current(older) => {
                confirm(&inner, older).await;
                return;
            }
            Verdict::Follow { addr, epoch, id } => {
                follow(&inner, addr, epoch, id).await;
                return;
            }
            Verdict::Wait(why) => {
                let again = logged
                    .as_ref()
                    .is_none_or(|(w, at)| *w != why || at.elapsed() >= LOG_EVERY);
                if again {
                    tracing::warn!(reason = %why, "this master's term is not confirmed: no writes yet");
                    logged = Some((why, Instant::now()));
                }
            }
        }
        if let Some(f) = first.take() {
            let _ = f.send(());
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// The term is current: writes, master services, a registration that announces them, and a
/// step-down notice to each older master found.
async fn confirm(inner: &Arc<BrokerInner>, older: Vec<(String, i64)>) {
    let change = inner.role.change().await;
    if !inner.role.confirm_term(&change) {
        return;
    }
    if let Err(e) = crate::broker::start_master_services(inner).await {
        tracing::error!(error = %e, "the term is confirmed, but master services did not all start");
    }
    drop(change);
    crate::namesrv::register_now(inner);
    let epoch = inner.role.snapshot().epoch;
    tracing::info!(%epoch, "this master's term is confirmed: taking writes");
    for (addr, id) in older {
        tracing::warn!(master = %addr, %epoch, "an older master of this group runs: telling it to step down");
        let task = crate::failover::fence_former_master(inner.clone(), addr, epoch, id);
        inner.tasks.spawn(task);
    }
}

/// A newer master leads: step down and follow it.
async fn follow(inner: &Arc<BrokerInner>, addr: String, epoch: Epoch, id: i64) {
    let change = inner.role.change().await;
    if !inner.role.snapshot().unconfirmed_master() {
        return;
    }
    inner.role.step_down(&change, epoch, id);
    drop(inner.ha.take_reserved_listener());
    inner.ha.follow_master(addr.clone(), None);
    crate::broker::start_slave_services(inner);
    drop(change);
    crate::namesrv::register_now(inner);
    tracing::warn!(
        %epoch,
        master = %addr,
        broker_id = id,
        offset = inner.store.max_phy_offset(),
        "started as master from a stale config: another broker leads a newer term; following it"
    );
}

/// The answer to a write on a master that has not confirmed its term: SERVICE_NOT_AVAILABLE,
/// which clients retry on another broker.
pub fn refusal(inner: &BrokerInner) -> RemotingCommand {
    RemotingCommand::error(
        ResponseCode::SERVICE_NOT_AVAILABLE,
        format!(
            "service not available now: the broker[{}] started as master of {} and has not yet \
             confirmed with the name servers and its peers that no newer master leads the group; \
             it takes no writes until then",
            inner.broker_addr,
            inner.broker_name()
        ),
    )
}

async fn check_once(inner: &Arc<BrokerInner>) -> Verdict {
    let (servers, cluster, name) = inner.settings.broker(|b| {
        (
            b.name_servers(),
            b.broker_cluster_name.clone(),
            b.broker_name.clone(),
        )
    });
    let servers = crate::namesrv::expand(&servers).await;
    let header = GetBrokerMemberGroupRequestHeader {
        cluster_name: cluster,
        broker_name: name.clone(),
    };
    let asks = servers.iter().map(|ns| {
        let req =
            RemotingCommand::request_with_header(RequestCode::GET_BROKER_MEMBER_GROUP, &header);
        inner.namesrv.invoke(ns, req, CALL)
    });
    let mut reached = 0;
    // Address → the id the name servers list it with.
    let mut members: BTreeMap<String, i64> = BTreeMap::new();
    for answer in futures::future::join_all(asks).await {
        let Ok(r) = answer else { continue };
        if r.code != ResponseCode::SUCCESS {
            continue;
        }
        let Ok(group) = BrokerMemberGroup::decode(&r.body) else {
            continue;
        };
        reached += 1;
        for (id, addr) in group.broker_addrs {
            if addr != inner.broker_addr {
                members.insert(addr, id);
            }
        }
    }
    if reached == 0 {
        return Verdict::Wait(format!(
            "no name server answered (of {}: {})",
            servers.len(),
            servers.join(", ")
        ));
    }
    let asks = members.keys().map(|addr| ask_peer(inner, addr, &name));
    let answers = futures::future::join_all(asks).await;
    let mut peers = Vec::new();
    let mut silent_master = None;
    for (answer, (addr, listed)) in answers.into_iter().zip(&members) {
        match answer {
            Some(p) => peers.push(p),
            None if *listed == 0 => silent_master = Some(addr.clone()),
            None => {}
        }
    }
    // Terms in logs on both sides: a step-down notice may have named an epoch no master began.
    decide(
        inner.role.epochs().current(),
        &members,
        &peers,
        silent_master,
    )
}

/// The verdict from what the members said (pure: unit-tested).
fn decide(
    mine: Epoch,
    members: &BTreeMap<String, i64>,
    peers: &[Peer],
    silent_master: Option<String>,
) -> Verdict {
    if let Some(m) = peers
        .iter()
        .filter(|p| p.id == 0 && p.epoch > mine)
        .max_by_key(|p| p.epoch)
    {
        return Verdict::Follow {
            addr: m.addr.clone(),
            epoch: m.epoch,
            id: free_id(members, &[]),
        };
    }
    if let Some(p) = peers.iter().find(|p| p.epoch > mine) {
        return Verdict::Wait(format!(
            "{} knows epoch {}, newer than this broker's {mine}, and no master of it answers",
            p.addr, p.epoch
        ));
    }
    if let Some(p) = peers.iter().find(|p| p.id == 0 && p.epoch == mine) {
        return Verdict::Wait(format!(
            "{} is a master of the same epoch {mine}: one of the two must step down",
            p.addr
        ));
    }
    if let Some(addr) = silent_master {
        return Verdict::Wait(format!(
            "the name servers list {addr} as this group's master, and it does not answer"
        ));
    }
    let mut taken = Vec::new();
    let older = peers
        .iter()
        .filter(|p| p.id == 0)
        .map(|p| {
            let id = free_id(members, &taken);
            taken.push(id);
            (p.addr.clone(), id)
        })
        .collect();
    Verdict::Current(older)
}

/// The lowest slave id (> 0) no member is listed with, and not in `taken`.
fn free_id(members: &BTreeMap<String, i64>, taken: &[i64]) -> i64 {
    (1..)
        .find(|id| !taken.contains(id) && !members.values().any(|m| m == id))
        .unwrap_or(1)
}

/// A member's own word (GET_BROKER_EPOCH_CACHE); `None` if it does not answer, or is of
/// another group.
async fn ask_peer(inner: &BrokerInner, addr: &str, group: &str) -> Option<Peer> {
    let req = RemotingCommand::request(RequestCode::GET_BROKER_EPOCH_CACHE);
    let r = inner.namesrv.invoke(addr, req, CALL).await.ok()?;
    if r.code != ResponseCode::SUCCESS {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    if v["brokerName"].as_str().is_some_and(|n| n != group) {
        return None;
    }
    let epoch = v["epochList"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|e| e["epoch"].as_i64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    Some(Peer {
        addr: addr.to_string(),
        id: v["brokerId"].as_i64()?,
        epoch: Epoch(i32::try_from(epoch).unwrap_or(i32::MAX)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(addr: &str, id: i64, epoch: i32) -> Peer {
        Peer {
            addr: addr.into(),
            id,
            epoch: Epoch(epoch),
        }
    }

    fn members(list: &[(&str, i64)]) -> BTreeMap<String, i64> {
        list.iter().map(|(a, i)| (a.to_string(), *i)).collect()
    }

    #[test]
    fn a_stale_master_follows_the_newer_one_or_waits() {
        // Alone in its group: current.
        assert_eq!(
            decide(Epoch(1), &members(&[]), &[], None),
            Verdict::Current(vec![])
        );
        // Only its own slave, of the same term: current.
        let m = members(&[("s:1", 1)]);
        assert_eq!(
            decide(Epoch(1), &m, &[peer("s:1", 1, 1)], None),
            Verdict::Current(vec![])
        );
        // Its slave was promoted (epoch 2): follow it, as the lowest free id.
        let m = members(&[("b:1", 0), ("c:1", 1)]);
        let v = decide(Epoch(1), &m, &[peer("b:1", 0, 2), peer("c:1", 1, 2)], None);
        assert_eq!(
            v,
            Verdict::Follow {
                addr: "b:1".into(),
                epoch: Epoch(2),
                id: 2
            }
        );
        // A fresh store (no epoch yet) under a stale config: the same.
        assert!(matches!(
            decide(Epoch(0), &m, &[peer("b:1", 0, 1)], None),
            Verdict::Follow { .. }
        ));
        // A slave knows a newer term whose master is gone: wait.
        assert!(matches!(
            decide(
                Epoch(1),
                &members(&[("c:1", 1)]),
                &[peer("c:1", 1, 2)],
                None
            ),
            Verdict::Wait(_)
        ));

        // A listed master that does not answer, another master of the same term: wait.
        assert!(matches!(
            decide(Epoch(1), &members(&[("b:1", 0)]), &[], Some("b:1".into())),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            decide(
                Epoch(1),
                &members(&[("b:1", 0)]),
                &[peer("b:1", 0, 1)],
                None
            ),
            Verdict::Wait(_)
        ));
        // An older master still running: current, and it is told to step down.
        assert_eq!(
            decide(
                Epoch(3),
                &members(&[("a:1", 0), ("s:1", 1)]),
                &[peer("a:1", 0, 2)],
                None
            ),
            Verdict::Current(vec![("a:1".into(), 2)])
        );
    }
}
