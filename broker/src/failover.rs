//! Epochs and promotion.
//!
//! Every broker group has an epoch; each master term starts a new one, recorded with the
//! commit-log offset where it began (`config/epoch.json`, as RocketMQ 5's epoch cache). A slave
//! copies its master's list. Promotion comes as RocketMQ 5's NOTIFY_BROKER_ROLE_CHANGED
//! (1008) naming this broker the master with a higher epoch: it records the new epoch at its
//! current end, takes `brokerId` 0 and the master role, starts serving writes and the HA port,
//! and re-registers. A lower or equal epoch is refused (CONTROLLER_FENCED_MASTER_EPOCH), so
//! two masters never share one. The same request naming another broker demotes a master; a
//! promoted broker sends it to its former master until that one answers, so a master cut off
//! by a partition steps down as soon as it can be reached.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rmq_remoting::{RemotingCommand, ResponseCode};
use serde::{Deserialize, Serialize};

use rmq_remoting::header::NotifyBrokerRoleChangedRequestHeader;
use rmq_remoting::role::{BrokerRole, Epoch, Perm};

use crate::broker::BrokerInner;

/// One master term: its epoch and the commit-log offset where it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EpochFile {
    #[serde(default)]
    epoch_list: Vec<EpochEntry>,
}

/// The group's epochs as this broker knows them.
pub struct Epochs {
    path: PathBuf,
    list: Mutex<Vec<EpochEntry>>,
    seen: std::sync::atomic::AtomicI32,
}

impl Epochs {
    pub fn load(path: PathBuf) -> Epochs {
        let list = crate::manager::load(&path, |b| serde_json::from_slice::<EpochFile>(b).ok())
            .map(|f| f.epoch_list)
            .unwrap_or_default();
        Epochs {
            path,
            list: Mutex::new(list),
            seen: Default::default(),
        }
    }

    /// The current epoch (0: none yet).
    pub fn current(&self) -> i32 {
        self.list.lock().last().map(|e| e.epoch).unwrap_or(0)
    }

    pub fn list(&self) -> Vec<EpochEntry> {
        self.list.lock().clone()
    }

    /// A master's first term: epoch 1 from offset 0, unless it already has one.
    pub fn ensure_started(&self) {
        let mut l = self.list.lock();
        if l.is_empty() {
            l.push(EpochEntry {
                epoch: 1,
                start_offset: 0,
            });
            drop(l);
            self.persist();
        }
    }

    /// Starts `epoch` at `offset`; refuses an epoch that is not newer.
    pub fn begin(&self, epoch: i32, offset: i64) -> Result<(), i32> {
        let mut l = self.list.lock();
        let current = l.last().map(|e| e.epoch).unwrap_or(0);
        if epoch <= current {
            return Err(current);
        }
        l.push(EpochEntry {
            epoch,
            start_offset: offset,
        });
        drop(l);
        self.persist();
        Ok(())
    }

    /// The newest epoch another broker announced (not persisted: a slave's list catches up
    /// at its next handshake).
    pub fn seen(&self) -> i32 {
        self.seen.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn saw(&self, epoch: i32) {
        self.seen
            .fetch_max(epoch, std::sync::atomic::Ordering::AcqRel);
    }

    /// A slave takes its master's list.
    pub fn replace(&self, list: Vec<EpochEntry>) {
        if *self.list.lock() != list {
            *self.list.lock() = list;
            self.persist();
        }
    }

    fn persist(&self) {
        let body = serde_json::to_vec(&EpochFile {
            epoch_list: self.list(),
        })
        .unwrap_or_default();
        if let Err(e) = crate::manager::persist(&self.path, &body) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot persist the epoch file");
        }
    }
}

/// GET_BROKER_EPOCH_CACHE (1007): this broker's epochs and max offset (RocketMQ 5's
/// `EpochEntryCache` shape).
pub fn epoch_cache(
    inner: &Arc<BrokerInner>,
) -> Result<RemotingCommand, rmq_remoting::RemotingError> {
    let (cluster, name, id) = {
        let s = inner.settings.read();
        (
            s.broker.broker_cluster_name.clone(),
            s.broker.broker_name.clone(),
            s.broker.broker_id,
        )
    };
    let max = inner.store.max_phy_offset();
    let list = inner.epochs.list();
    let entries: Vec<serde_json::Value> = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let end = list.get(i + 1).map(|n| n.start_offset).unwrap_or(max);
            serde_json::json!({ "epoch": e.epoch, "startOffset": e.start_offset, "endOffset": end })
        })
        .collect();
    let body = serde_json::json!({
        "clusterName": cluster, "brokerName": name, "brokerId": id,
        "epochList": entries, "maxOffset": max,
        // Ours: the newest epoch another broker announced (a demotion), which a promotion
        // of this broker must exceed.
        "fencedEpoch": inner.epochs.seen(),
    });
    Ok(RemotingCommand::success().with_body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// NOTIFY_BROKER_ROLE_CHANGED (1008). Naming this broker the master with a newer epoch
/// promotes it; naming another broker, with a newer epoch, while this one is master demotes
/// it (a switchover, or a former master back from a partition). Our own fields besides
/// RocketMQ's `masterAddress` / `masterEpoch`: `brokerRole` (the promoted role),
/// `formerMasterBrokerId` (the id the former master takes when it steps down), `brokerId`
/// (the demoted broker's new id), `masterHaAddress` (where it follows) and `brokerName`
/// (refused if it is not this group).
pub async fn role_changed(
    inner: &Arc<BrokerInner>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, rmq_remoting::RemotingError> {
    // One role change at a time: a promotion and a demotion must not interleave.
    let _changing = inner.role_lock.lock().await;
    let h: NotifyBrokerRoleChangedRequestHeader = req.decode_header()?;
    let master_addr = h.master_address.clone().unwrap_or_default();
    let epoch = h.master_epoch.unwrap_or_default().0;
    if let Some(group) = h
        .broker_name
        .as_deref()
        .filter(|g| !g.is_empty() && *g != inner.broker_name())
    {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_INVALID_REQUEST,
            format!(
                "this broker is in group {}, not {group}",
                inner.broker_name()
            ),
        ));
    }
    let known = inner.epochs.current().max(inner.epochs.seen());
    if !master_addr.is_empty() && master_addr != inner.broker_addr {
        let ha = h.master_ha_address.clone().unwrap_or_default();
        return demote(inner, &master_addr, &ha, epoch, known, h.broker_id).await;
    }
    let is_slave = inner.settings.read().broker.is_slave();
    if epoch <= known {
        return Ok(fenced(epoch, known));
    }
    if !is_slave {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_INVALID_REQUEST,
            "this broker is a master already",
        ));
    }
    let at = inner.store.max_phy_offset();
    if let Err(current) = inner.epochs.begin(epoch, at) {
        return Ok(fenced(epoch, current));
    }
    let role = h
        .broker_role
        .filter(|r| r.is_master())
        .unwrap_or(BrokerRole::AsyncMaster);
    let former_id = {
        let mut s = inner.settings.write();
        s.broker.broker_role = role;
        // A master takes writes: a read-only mark left by an earlier switchover ends here.
        if !s.broker.broker_permission.is_writeable() {
            tracing::warn!(
                permission = %s.broker.broker_permission,
                "promoted: brokerPermission back to read-write"
            );
            s.broker.broker_permission = Perm::READ_WRITE;
        }
        std::mem::replace(&mut s.broker.broker_id, 0)
    };
    let former_master = inner.ha.master_addr.write().take();
    *inner.ha.connected_master.write() = None;
    *inner.ha.master_ha_addr.write() = None;
    if let Err(e) = crate::broker::start_master_services(inner).await {
        tracing::error!(error = %e, "promoted, but master services did not all start");
    }
    crate::namesrv::register_soon(inner);
    tracing::warn!(epoch, offset = at, %role, "promoted to master");
    // The former master's id as a slave: what the caller says (the operator keeps ids tied
    // to pods), else the one this broker leaves.
    let its_id = h
        .former_master_broker_id
        .filter(|id| *id > 0)
        .unwrap_or(former_id);
    if let Some(former) = former_master.filter(|f| !f.is_empty() && *f != inner.broker_addr) {
        let task = tokio::spawn(fence_former_master(inner.clone(), former, epoch, its_id));
        inner.extra_tasks.lock().push(task);
    }
    Ok(RemotingCommand::success())
}

fn fenced(epoch: i32, current: i32) -> RemotingCommand {
    RemotingCommand::error(
        ResponseCode::CONTROLLER_FENCED_MASTER_EPOCH,
        format!("epoch {epoch} is not newer than this group's epoch {current}"),
    )
}

/// Another broker leads from `epoch` on. A slave just notes where its master is; a master
/// steps down: it stops taking writes and serving slaves, takes `brokerId`, and follows the
/// new master, which cuts whatever it wrote that the new master never had.
async fn demote(
    inner: &Arc<BrokerInner>,
    master_addr: &str,
    master_ha_addr: &str,
    epoch: i32,
    known: i32,
    new_id: Option<i64>,
) -> Result<RemotingCommand, rmq_remoting::RemotingError> {
    if inner.settings.read().broker.is_slave() {
        inner.epochs.saw(epoch);
        return Ok(RemotingCommand::success());
    }
    if epoch <= known {
        return Ok(fenced(epoch, known));
    }
    let Some(id) = new_id.filter(|id| *id > 0) else {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_INVALID_REQUEST,
            "demoting a master needs the brokerId (> 0) it is to take as a slave",
        ));
    };
    inner.epochs.saw(epoch);
    {
        let mut s = inner.settings.write();
        s.broker.broker_role = BrokerRole::Slave;
        s.broker.broker_id = id;
        // A switchover's read-only mark is for the term that ended.
        s.broker.broker_permission = Perm::READ_WRITE;
        // A configured haMasterAddress names an earlier arrangement.
        s.broker.ha_master_address.clear();
    }
    *inner.ha.master_addr.write() = Some(master_addr.to_string());
    // Without it, the name servers' answer at the next registration says where to follow.
    *inner.ha.master_ha_addr.write() = Some(master_ha_addr.to_string()).filter(|a| !a.is_empty());
    crate::broker::start_slave_services(inner);
    crate::namesrv::register_soon(inner);
    tracing::warn!(
        epoch,
        master = master_addr,
        broker_id = id,
        offset = inner.store.max_phy_offset(),
        "demoted to slave: another broker leads this group"
    );
    Ok(RemotingCommand::success())
}

/// After a promotion: tells the former master, whenever it can be reached again (it may be
/// alive behind a partition, still taking writes), that this broker leads from `epoch` on, so
/// it steps down instead of competing. Ends once it answers, or when a newer epoch begins.
async fn fence_former_master(inner: Arc<BrokerInner>, former: String, epoch: i32, its_id: i64) {
    let stop = inner.role_term.lock().clone();
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    while tokio::time::Instant::now() < give_up && inner.epochs.current() == epoch {
        // Read first: a settings guard held while taking another could deadlock behind a
        // queued writer.
        let ha_addr = inner.settings.read().broker.ha_server_addr();
        let header = NotifyBrokerRoleChangedRequestHeader {
            master_address: Some(inner.broker_addr.clone()),
            master_ha_address: Some(ha_addr),
            master_epoch: Some(Epoch(epoch)),
            master_broker_id: Some(0),
            broker_id: Some(its_id),
            broker_name: Some(inner.broker_name()),
            ..Default::default()
        };
        let req = RemotingCommand::request_with_header(
            rmq_remoting::RequestCode::NOTIFY_BROKER_ROLE_CHANGED,
            &header,
        );
        let timeout = std::time::Duration::from_secs(3);
        match inner.namesrv.invoke(&former, req, timeout).await {
            Ok(r) if r.code == ResponseCode::SUCCESS => {
                tracing::info!(%former, epoch, "the former master follows this broker now");
                return;
            }
            Ok(r) => {
                tracing::warn!(%former, code = r.code, remark = ?r.remark, "the former master refused to step down");
                if r.code != ResponseCode::SYSTEM_ERROR {
                    return;
                }
            }
            Err(e) => tracing::debug!(%former, error = %e, "former master not reachable yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}

/// How much of its log a replica may keep when it follows a master with epochs `theirs`:
/// up to the end, on the master, of the last epoch both know. A former master's writes after
/// the new master's term began are cut; a fresh or up-to-date replica keeps everything.
/// `None`: the two histories share no epoch although both have one — not this group's master
/// (a wrong `haMasterAddress`, or a forged role change); following it would cut the whole log.
pub fn divergence_point(mine: &[EpochEntry], theirs: &[EpochEntry], my_max: i64) -> Option<i64> {
    if mine.is_empty() || theirs.is_empty() {
        return Some(my_max);
    }
    for e in mine.iter().rev() {
        if let Some(pos) = theirs.iter().position(|t| t.epoch == e.epoch) {
            let end_on_master = theirs
                .get(pos + 1)
                .map(|n| n.start_offset)
                .unwrap_or(i64::MAX);
            return Some(my_max.min(end_on_master));
        }
    }
    // Nothing in common: what precedes the master's first term may stay; a master whose
    // history starts at 0 and shares nothing with ours is someone else's.
    match theirs[0].start_offset {
        0 if my_max > 0 => None,
        start => Some(my_max.min(start)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset: start,
        }
    }

    #[test]
    fn where_histories_part() {
        // A former master (epoch 1, wrote up to 900) following the new one (epoch 2 from 600).
        assert_eq!(
            divergence_point(&[e(1, 0)], &[e(1, 0), e(2, 600)], 900),
            Some(600)
        );
        // A slave that never got that far keeps all it has.
        assert_eq!(
            divergence_point(&[e(1, 0)], &[e(1, 0), e(2, 600)], 400),
            Some(400)
        );
        // Same history: keep everything.
        assert_eq!(
            divergence_point(&[e(1, 0), e(2, 600)], &[e(1, 0), e(2, 600)], 1000),
            Some(1000)
        );
        // A fresh replica.
        assert_eq!(divergence_point(&[], &[e(3, 50)], 0), Some(0));
        // Nothing in common: keep what precedes the master's first term.
        assert_eq!(divergence_point(&[e(7, 0)], &[e(8, 100)], 500), Some(100));
        // Nothing in common from offset 0: another group's master (or a forged one). Not
        // followed: that would cut the whole log.
        assert_eq!(divergence_point(&[e(1, 0)], &[e(99, 0)], 500), None);
        assert_eq!(divergence_point(&[e(1, 0)], &[e(99, 0)], 0), Some(0));
    }
}
