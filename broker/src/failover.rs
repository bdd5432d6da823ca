//! Epochs and promotion.
//!
//! Every broker group has an epoch; each master term starts a new one, recorded with the
//! commit-log offset where it began (`config/epoch.json`, as RocketMQ 5's epoch cache). A slave
//! copies its master's list. Promotion comes as RocketMQ 5's NOTIFY_BROKER_ROLE_CHANGED
//! (1008) naming this broker the master with a higher epoch: it records the new epoch at its
//! current end, takes `brokerId` 0 and the master role, starts serving writes and the HA port,
//! and re-registers. A lower or equal epoch is refused (CONTROLLER_FENCED_MASTER_EPOCH), so
//! two masters never share one.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rmq_remoting::{RemotingCommand, ResponseCode};
use serde::{Deserialize, Serialize};

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
}

impl Epochs {
    pub fn load(path: PathBuf) -> Epochs {
        let list = crate::manager::load(&path, |b| serde_json::from_slice::<EpochFile>(b).ok())
            .map(|f| f.epoch_list)
            .unwrap_or_default();
        Epochs {
            path,
            list: Mutex::new(list),
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
    });
    Ok(RemotingCommand::success().with_body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// NOTIFY_BROKER_ROLE_CHANGED (1008) naming this broker the master: promotion.
pub async fn role_changed(
    inner: &Arc<BrokerInner>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, rmq_remoting::RemotingError> {
    let field = |k: &str| req.ext_fields.get(k).cloned().unwrap_or_default();
    let master_addr = field("masterAddress");
    let epoch: i32 = field("masterEpoch").parse().unwrap_or(0);
    let me = inner.broker_addr.clone();
    if !master_addr.is_empty() && master_addr != me {
        // Another broker leads now: with our own HA client we follow whoever the name server
        // reports; nothing to change here.
        return Ok(RemotingCommand::success());
    }
    let current = inner.epochs.current();
    if epoch <= current {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_FENCED_MASTER_EPOCH,
            format!("epoch {epoch} is not newer than this group's epoch {current}"),
        ));
    }
    if !inner.settings.read().broker.is_slave() {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_INVALID_REQUEST,
            "this broker is a master already",
        ));
    }
    let at = inner.store.max_phy_offset();
    if let Err(current) = inner.epochs.begin(epoch, at) {
        return Ok(RemotingCommand::error(
            ResponseCode::CONTROLLER_FENCED_MASTER_EPOCH,
            format!("epoch {epoch} is not newer than this group's epoch {current}"),
        ));
    }
    let role = Some(field("brokerRole"))
        .filter(|r| r.eq_ignore_ascii_case("SYNC_MASTER") || r.eq_ignore_ascii_case("ASYNC_MASTER"))
        .unwrap_or_else(|| "ASYNC_MASTER".into())
        .to_ascii_uppercase();
    {
        let mut s = inner.settings.write();
        s.broker.broker_role = role.clone();
        s.broker.broker_id = 0;
    }
    *inner.ha.connected_master.write() = None;
    *inner.ha.master_ha_addr.write() = None;
    *inner.ha.master_addr.write() = None;
    if let Err(e) = crate::broker::start_master_services(inner).await {
        tracing::error!(error = %e, "promoted, but master services did not all start");
    }
    crate::namesrv::register_soon(inner);
    tracing::warn!(epoch, offset = at, %role, "promoted to master");
    Ok(RemotingCommand::success())
}

/// How much of its log a replica may keep when it follows a master with epochs `theirs`:
/// up to the end, on the master, of the last epoch both know. A former master's writes after
/// the new master's term began are cut; a fresh or up-to-date replica keeps everything.
pub fn divergence_point(mine: &[EpochEntry], theirs: &[EpochEntry], my_max: i64) -> i64 {
    if mine.is_empty() || theirs.is_empty() {
        return my_max;
    }
    for e in mine.iter().rev() {
        if let Some(pos) = theirs.iter().position(|t| t.epoch == e.epoch) {
            let end_on_master = theirs
                .get(pos + 1)
                .map(|n| n.start_offset)
                .unwrap_or(i64::MAX);
            return my_max.min(end_on_master);
        }
    }
    my_max.min(theirs[0].start_offset)
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
            600
        );
        // A slave that never got that far keeps all it has.
        assert_eq!(
            divergence_point(&[e(1, 0)], &[e(1, 0), e(2, 600)], 400),
            400
        );
        // Same history: keep everything.
        assert_eq!(
            divergence_point(&[e(1, 0), e(2, 600)], &[e(1, 0), e(2, 600)], 1000),
            1000
        );
        // A fresh replica.
        assert_eq!(divergence_point(&[], &[e(3, 50)], 0), 0);
        // Nothing in common: keep what precedes the master's first term.
        assert_eq!(divergence_point(&[e(7, 0)], &[e(8, 100)], 500), 100);
    }
}
