//! The one owner of a broker's role and term.
//!
//! A broker is a master (ASYNC or SYNC) or a slave, has a `brokerId`, a `brokerPermission`
//! (read-only while a switchover catches up, or once fenced), and the group's epochs: each
//! master term is one, recorded with the commit-log offset where it began
//! (`config/epoch.json`, as RocketMQ 5's epoch cache). [`Role`] holds all of it. Processors
//! take a [`RoleSnapshot`] once per request; every change (promote, step down, fence,
//! permission) goes through `Role`, the multi-step ones under [`Role::change`], one at a time.
//! `broker.conf`'s `brokerRole`, `brokerId` and `brokerPermission` are only where a broker
//! starts from.

use std::path::PathBuf;

use parking_lot::{Mutex, RwLock};
use rmq_remoting::role::{BrokerRole, Epoch, Perm};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;

/// What a request sees of the broker's role: a copy, taken once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSnapshot {
    pub role: BrokerRole,
    pub broker_id: i64,
    pub permission: Perm,
    /// The current term (0: none yet).
    pub epoch: Epoch,
    /// A master started from its config has confirmed that no newer master leads its group
    /// (always true of slaves and of promoted masters); until then it takes no writes.
    pub confirmed: bool,
}

impl RoleSnapshot {
    pub fn is_slave(&self) -> bool {
        self.role.is_slave()
    }

    pub fn is_master(&self) -> bool {
        self.role.is_master()
    }

    /// Takes sends: a master whose term is confirmed and whose permission allows writes.
    pub fn writable(&self) -> bool {
        self.is_master() && self.permission.is_writeable() && self.confirmed
    }

    /// A master started from its config that has not confirmed its term yet.
    pub fn unconfirmed_master(&self) -> bool {
        self.is_master() && !self.confirmed
    }

    /// Answers sends only once a slave holds them.
    pub fn sync_master(&self) -> bool {
        self.role == BrokerRole::SyncMaster
    }
}

/// The live, changeable part (the epochs are kept beside it, on disk).
#[derive(Debug, Clone, Copy)]
struct State {
    role: BrokerRole,
    broker_id: i64,
    permission: Perm,
    confirmed: bool,
}

/// This broker's role, id, permission and terms.
pub struct Role {
    state: RwLock<State>,
    epochs: Epochs,
    /// `haMasterAddress` as configured; a step-down forgets it (it names the arrangement that
    /// ended).
    configured_master_ha: RwLock<String>,
    /// Held through a role change (promotion, step-down): they must not interleave.
    changing: tokio::sync::Mutex<()>,
    /// The services of the current term (master: HA port, delay levels, transaction checks;
    /// slave: following the master), cancelled when the role changes.
    term: Mutex<CancellationToken>,
}

/// Proof that the caller holds [`Role::change`].
pub struct Changing<'a>(#[allow(dead_code)] tokio::sync::MutexGuard<'a, ()>);

impl Role {
    /// Starts from `broker.conf` (a master is always broker id 0) and the epoch file. A
    /// master starts unconfirmed: `broker.conf` may predate a failover, and it takes no
    /// writes until [`Role::confirm_term`] (see `term_check`).
    pub fn new(config: &BrokerConfig, epoch_file: PathBuf) -> Role {
        let broker_id = if config.broker_role.is_master() {
            0
        } else {
            config.broker_id
        };
        Role {
            state: RwLock::new(State {
                role: config.broker_role,
                broker_id,
                permission: config.broker_permission,
                confirmed: !config.broker_role.is_master(),
            }),
            epochs: Epochs::load(epoch_file),
            configured_master_ha: RwLock::new(config.ha_master_address.clone()),
            changing: tokio::sync::Mutex::new(()),
            term: Mutex::new(CancellationToken::new()),
        }
    }

    pub fn snapshot(&self) -> RoleSnapshot {
        let s = *self.state.read();
        RoleSnapshot {
            role: s.role,
            broker_id: s.broker_id,
            permission: s.permission,
            epoch: self.epochs.current(),
            confirmed: s.confirmed,
        }
    }

    /// A master started from its config found no newer master of its group: it takes
    /// writes from now on. Returns whether this confirmed it (false: a slave, or done).
    pub fn confirm_term(&self, _: &Changing<'_>) -> bool {
        let mut s = self.state.write();
        if s.role.is_slave() || s.confirmed {
            return false;
        }
        s.confirmed = true;
        true
    }

    /// Forgets a configured `haMasterAddress` (a newer term's master is to be followed).
    pub fn forget_configured_master(&self) {
        self.configured_master_ha.write().clear();
    }

    pub fn is_slave(&self) -> bool {
        self.state.read().role.is_slave()
    }

    pub fn epochs(&self) -> &Epochs {
        &self.epochs
    }

    /// The newest epoch known here: this broker's own, or one another broker announced.
    pub fn known_epoch(&self) -> Epoch {
        self.epochs.current().max(self.epochs.seen())
    }

    /// The configured master HA address a slave follows (empty: learnt from the name servers).
    pub fn configured_master_ha(&self) -> String {
        self.configured_master_ha.read().clone()
    }

    /// Waits for any other role change to finish; changes happen while this is held.
    pub async fn change(&self) -> Changing<'_> {
        Changing(self.changing.lock().await)
    }

    /// The current term's token (cancelled when the role changes).
    pub fn term(&self) -> CancellationToken {
        self.term.lock().clone()
    }

    /// Ends the services of the previous term and opens one for the next role's, under
    /// `parent` (the broker's stop token).
    pub fn new_term(&self, parent: &CancellationToken) -> CancellationToken {
        let term = parent.child_token();
        std::mem::replace(&mut *self.term.lock(), term.clone()).cancel();
        term
    }

    /// Becomes the master of `epoch` (started at commit-log offset `at`) with `role`: broker
    /// id 0 and writable (a read-only mark left by a switchover ends with the term). Returns
    /// the id this broker had, or the newer epoch that fences the promotion.
    pub fn promote(
        &self,
        _: &Changing<'_>,
        epoch: Epoch,
        at: i64,
        role: BrokerRole,
    ) -> Result<i64, Refused> {
        debug_assert!(role.is_master());
        self.epochs.begin(epoch, at)?;
        let mut s = self.state.write();
        if !s.permission.is_writeable() {
            tracing::warn!(permission = %s.permission, "promoted: brokerPermission back to read-write");
        }
        s.role = role;
        s.permission = Perm::READ_WRITE;
        // A promotion is its own proof: the epoch is newer than any this broker knows.
        s.confirmed = true;
        Ok(std::mem::replace(&mut s.broker_id, 0))
    }

    /// Another broker leads from `epoch` on: this one becomes a slave with `broker_id`,
    /// writable again for the day it leads (the read-only mark was for the term that ended),
    /// and forgets a configured master address.
    pub fn step_down(&self, _: &Changing<'_>, epoch: Epoch, broker_id: i64) {
        self.epochs.saw(epoch);
        {
            let mut s = self.state.write();
            s.role = BrokerRole::Slave;
            s.broker_id = broker_id;
            s.permission = Perm::READ_WRITE;
            s.confirmed = true;
        }
        self.configured_master_ha.write().clear();
    }

    /// A slave learns that another broker leads from `epoch` on.
    pub fn saw(&self, epoch: Epoch) {
        self.epochs.saw(epoch);
    }

    /// A name server refused this master's registration for a newer epoch: its term is over.
    /// It stops taking writes at once. Returns whether this fenced it (a slave, an already
    /// read-only master, or a newer epoch not above ours change nothing).
    pub fn fence(&self, newer: Epoch) -> bool {
        if newer <= self.epochs.current() {
            return false;
        }
        let mut s = self.state.write();
        if s.role.is_slave() || !s.permission.is_writeable() {
            return false;
        }
        s.permission = Perm::READ_ONLY;
        true
    }

    /// `brokerPermission` at run time (UPDATE_BROKER_CONFIG); returns whether it changed.
    pub fn set_permission(&self, perm: Perm) -> bool {
        let mut s = self.state.write();
        std::mem::replace(&mut s.permission, perm) != perm
    }

    /// A master's first term: epoch 1 from offset 0, unless it already has one.
    pub fn ensure_first_term(&self) -> std::io::Result<()> {
        self.epochs.ensure_started()
    }
}

/// Why a promotion did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The group is at this epoch or a newer one already.
    Fenced(Epoch),
    /// The new epoch could not be written to the epoch file: promoting without it would let
    /// a restart forget the term.
    NotDurable(String),
}

/// One master term: its epoch and the commit-log offset where it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochEntry {
    pub epoch: Epoch,
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
    /// The last entry's epoch, kept beside the list so a snapshot per request takes no lock.
    current: std::sync::atomic::AtomicI32,
    /// The newest epoch another broker announced (not persisted: a slave's list catches up
    /// at its next handshake).
    seen: std::sync::atomic::AtomicI32,
}

impl Epochs {
    pub fn load(path: PathBuf) -> Epochs {
        let list = crate::manager::load(&path, |b| serde_json::from_slice::<EpochFile>(b).ok())
            .map(|f| f.epoch_list)
            .unwrap_or_default();
        let current = list.last().map(|e| e.epoch.0).unwrap_or(0);
        Epochs {
            path,
            list: Mutex::new(list),
            current: current.into(),
            seen: Default::default(),
        }
    }

    /// The current epoch (0: none yet).
    pub fn current(&self) -> Epoch {
        Epoch(self.current.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Publishes the last entry's epoch; called with the list locked.
    fn set_current(&self, list: &[EpochEntry]) {
        let e = list.last().map(|e| e.epoch.0).unwrap_or(0);
        self.current.store(e, std::sync::atomic::Ordering::Release);
    }

    pub fn list(&self) -> Vec<EpochEntry> {
        self.list.lock().clone()
    }

    fn ensure_started(&self) -> std::io::Result<()> {
        let mut l = self.list.lock();
        if l.is_empty() {
            l.push(EpochEntry {
                epoch: Epoch(1),
                start_offset: 0,
            });
            self.set_current(&l);
            return self.write(&l);
        }
        Ok(())
    }

    /// Starts `epoch` at `offset`; refuses an epoch that is not newer (with the current one),
    /// and one that cannot be written down (the list stays as it was).
    fn begin(&self, epoch: Epoch, offset: i64) -> Result<(), Refused> {
        let mut l = self.list.lock();
        let current = l.last().map(|e| e.epoch).unwrap_or_default();
        if epoch <= current {
            return Err(Refused::Fenced(current));
        }
        l.push(EpochEntry {
            epoch,
            start_offset: offset,
        });
        if let Err(e) = self.write(&l) {
            l.pop();
            tracing::error!(%epoch, error = %e, "cannot write the epoch file: promotion refused");
            return Err(Refused::NotDurable(e.to_string()));
        }
        self.set_current(&l);
        Ok(())
    }

    pub fn seen(&self) -> Epoch {
        Epoch(self.seen.load(std::sync::atomic::Ordering::Acquire))
    }

    fn saw(&self, epoch: Epoch) {
        self.seen
            .fetch_max(epoch.0, std::sync::atomic::Ordering::AcqRel);
    }

    /// A slave takes its master's list.
    pub fn replace(&self, list: Vec<EpochEntry>) {
        let mut l = self.list.lock();
        if *l != list {
            *l = list;
            self.set_current(&l);
            if let Err(e) = self.write(&l) {
                tracing::error!(path = %self.path.display(), error = %e, "cannot write the epoch file");
            }
        }
    }

    /// Writes `list` (held locked by the caller, so writes happen in list order).
    fn write(&self, list: &[EpochEntry]) -> std::io::Result<()> {
        let body = serde_json::to_vec(&EpochFile {
            epoch_list: list.to_vec(),
        })
        .unwrap_or_default();
        crate::manager::persist(&self.path, || body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(config: BrokerConfig) -> (Role, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Role::new(&config, dir.path().join("epoch.json")), dir)
    }

    #[tokio::test]
    async fn promotion_step_down_and_fencing_go_through_one_owner() {
        let (r, _dir) = role(BrokerConfig {
            broker_role: BrokerRole::Slave,
            broker_id: 2,
            broker_permission: Perm::READ_ONLY,
            ..Default::default()
        });
        assert!(r.snapshot().is_slave() && !r.snapshot().writable());
        let change = r.change().await;
        assert_eq!(
            r.promote(&change, Epoch(3), 100, BrokerRole::SyncMaster),
            Ok(2)
        );
        let s = r.snapshot();
        assert!(s.writable() && s.sync_master());
        assert_eq!((s.broker_id, s.epoch), (0, Epoch(3)));
        // Not newer: fenced, nothing changes.
        assert_eq!(
            r.promote(&change, Epoch(3), 200, BrokerRole::AsyncMaster),
            Err(Refused::Fenced(Epoch(3)))
        );
        // A name server knows a newer master: read-only at once, once.
        assert!(r.fence(Epoch(4)));
        assert!(!r.fence(Epoch(5)));
        assert!(!r.snapshot().writable() && r.snapshot().is_master());
        // Stepping down for epoch 5: a writable slave, the configured master forgotten.
        r.step_down(&change, Epoch(5), 7);
        let s = r.snapshot();
        assert!(s.is_slave() && s.permission.is_writeable());
        assert_eq!((s.broker_id, r.known_epoch()), (7, Epoch(5)));
        assert!(r.configured_master_ha().is_empty());
        // A slave is never fenced.
        assert!(!r.fence(Epoch(9)));
    }

    #[tokio::test]
    async fn a_configured_master_is_broker_zero_unconfirmed_and_epochs_persist() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            broker_id: 4,
            ..Default::default()
        };
        let r = Role::new(&config, dir.path().join("epoch.json"));
        assert_eq!(r.snapshot().broker_id, 0);
        // Its config may predate a failover: no writes until the term is confirmed.
        assert!(r.snapshot().unconfirmed_master() && !r.snapshot().writable());
        assert!(r.confirm_term(&r.change().await));
        assert!(r.snapshot().writable());
        r.ensure_first_term().unwrap();
        assert_eq!(r.snapshot().epoch, Epoch(1));
        let again = Role::new(&config, dir.path().join("epoch.json"));
        assert_eq!(again.epochs().list(), r.epochs().list());
    }

    #[tokio::test]
    async fn a_promotion_whose_epoch_cannot_be_written_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // The epoch file's directory is a regular file: the write fails.
        let blocker = dir.path().join("config");
        std::fs::write(&blocker, b"x").unwrap();
        let r = Role::new(
            &BrokerConfig {
                broker_role: BrokerRole::Slave,
                broker_id: 1,
                ..Default::default()
            },
            blocker.join("epoch.json"),
        );
        let change = r.change().await;
        let refused = r.promote(&change, Epoch(2), 0, BrokerRole::SyncMaster);
        assert!(
            matches!(refused, Err(Refused::NotDurable(_))),
            "{refused:?}"
        );
        let s = r.snapshot();
        assert!(
            s.is_slave() && s.epoch == Epoch(0),
            "nothing changed: {s:?}"
        );
        assert!(r.epochs().list().is_empty());
    }
}
