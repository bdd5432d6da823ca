//! Master/slave replication over the HA port (`haListenPort`, default `listenPort + 1`).
//!
//! As in RocketMQ, the slave connects, reports its commit-log max offset (8 bytes, big-endian)
//! and keeps reporting as it stores what it receives; the master streams from the reported
//! offset. Unlike RocketMQ's HA frames (raw byte ranges), ours carry whole records, each with
//! its commit-log offset — `[i64 first offset][i32 body length]` then `[i64 offset][record]`…
//! — so the slave stores them byte for byte where the master did and can check that each one
//! continues its log. An empty frame is a heartbeat.
//!
//! The slave finds its master in `haMasterAddress`, or in the master's HA address the name
//! server returns at registration.
//!
//! Before a slave counts for anything (SYNC_MASTER acknowledgements, the offset a slave is
//! said to hold), it proves that its log is a prefix of the master's and cuts what is not
//! ([`handshake`], [`history`]); a slave counts only for the master term it reconciled with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rmq_remoting::role::Epoch;
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;

pub mod handshake;
pub mod history;
mod master;
mod slave;

pub use master::serve;
pub use slave::replicate;

/// Most record bytes in one frame.
const FRAME_BYTES: usize = 256 * 1024;
/// Frames above this are refused (hostile or broken peer).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Heartbeat and report interval.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// A slave connected to this master's HA port, once it has reconciled its log with the
/// master's.
#[derive(Clone, Debug)]
pub struct SlaveInfo {
    pub addr: SocketAddr,
    pub broker_id: i64,
    /// The master's epoch the slave reconciled with: it counts only while that term lasts.
    pub term: Epoch,
    /// The commit-log offset it last reported holding.
    pub acked: i64,
    pub last_report: Instant,
    /// Ends the connection's task (a newer connection of the same slave took over).
    ended: CancellationToken,
}

/// What the master knows of its slaves, and what a slave knows of its master. Private
/// state behind methods: the HA connections write it, everything else reads or is told.
#[derive(Default)]
pub struct HaState {
    next_id: AtomicU64,
    /// Reconciled slaves by connection id.
    slaves: Mutex<HashMap<u64, SlaveInfo>>,
    /// The master term the HA port serves (0: none): slaves count only for it.
    term: AtomicI32,
    /// The HA listener of a master that has not confirmed its term yet, bound at start (a
    /// SYNC_MASTER that cannot listen does not start) and used once it is confirmed.
    reserved_listener: Mutex<Option<tokio::net::TcpListener>>,
    /// The master's HA address as the name server last reported it.
    master_ha_addr: RwLock<Option<String>>,
    /// Slave side: the master this slave is connected to, if any.
    connected_master: RwLock<Option<String>>,
    /// Woken on every slave report (SYNC_MASTER sends wait on it).
    acked: tokio::sync::Notify,
    /// Woken when new records are in the store (the pushers to slaves wait on it).
    appended: tokio::sync::Notify,
    /// The master's remoting address as the name server last reported it.
    master_addr: RwLock<Option<String>>,
    /// Slave side: consumers committed offsets here since the last hand-over to the master.
    offsets_committed_here: AtomicBool,
    /// The end of what a SYNC_MASTER send was answered for: a slave held it. A step-down
    /// never cuts below it unless forced.
    acknowledged: AtomicI64,
    /// Set by a forced step-down: the next cut may go below `acknowledged`.
    force_truncate: AtomicBool,
    /// `acknowledged` as last written to disk.
    persisted: AtomicI64,
    /// Slave side: bumped whenever this broker is told to follow another master; a
    /// connection to the previous one ends.
    switches: AtomicU64,
    /// Slave side: why the last attempt to follow the master failed (cleared once following).
    last_follow_error: Mutex<Option<String>>,
}

impl HaState {
    /// The highest offset a reconciled slave of the current term holds (-1: no slave).
    pub fn max_slave_offset(&self) -> i64 {
        let term = self.term();
        self.slaves
            .lock()
            .values()
            .filter(|s| s.term == term)
            .map(|s| s.acked)
            .max()
            .unwrap_or(-1)
    }

    /// The reconciled slaves of the current term, in no particular order.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        let term = self.term();
        self.slaves
            .lock()
            .values()
            .filter(|s| s.term == term)
            .cloned()
            .collect()
    }

    pub fn slave_count(&self) -> usize {
        self.slaves().len()
    }

    /// The master term the HA port serves (0: none).
    pub fn term(&self) -> Epoch {
        Epoch(self.term.load(Ordering::Acquire))
    }

    /// The HA port serves `term` from now on: slaves of any other term no longer count.
    fn open_term(&self, term: Epoch) {
        self.term.store(term.0, Ordering::Release);
        self.slaves.lock().retain(|_, s| s.term == term);
        self.acked.notify_waiters();
    }

    /// Keeps the HA listener of a master whose term is not confirmed yet.
    pub fn reserve_listener(&self, l: tokio::net::TcpListener) {
        *self.reserved_listener.lock() = Some(l);
    }

    /// The listener kept by [`Self::reserve_listener`], if any.
    pub fn take_reserved_listener(&self) -> Option<tokio::net::TcpListener> {
        self.reserved_listener.lock().take()
    }

    /// A slave reconciled with `term` and holds `acked`; an earlier connection of the same
    /// broker id (a reconnect; the old one may linger half-open) stops counting and ends.
    fn slave_reconciled(
        &self,
        id: u64,
        addr: SocketAddr,
        broker_id: i64,
        term: Epoch,
        acked: i64,
    ) -> CancellationToken {
        let ended = CancellationToken::new();
        let info = SlaveInfo {
            addr,
            broker_id,
            term,
            acked,
            last_report: Instant::now(),
            ended: ended.clone(),
        };
        {
            let mut slaves = self.slaves.lock();
            slaves.retain(|_, s| {
                let older = s.broker_id == broker_id;
                if older {
                    tracing::info!(old = %s.addr, new = %addr, broker_id, "a newer connection of this slave replaces the old one");
                    s.ended.cancel();
                }
                !older
            });
            slaves.insert(id, info);
        }
        self.acked.notify_waiters();
        ended
    }

    fn slave_reported(&self, id: u64, offset: i64) {
        if let Some(s) = self.slaves.lock().get_mut(&id) {
            s.acked = offset;
            s.last_report = Instant::now();
        }
        self.acked.notify_waiters();
    }

    /// Sends waiting on this slave answer now (SLAVE_NOT_AVAILABLE if it was the last).
    fn slave_gone(&self, id: u64) {
        self.slaves.lock().remove(&id);
        self.acked.notify_waiters();
    }

    /// The store has new records: the pushers to slaves look again.
    pub fn records_appended(&self) {
        self.appended.notify_waiters();
    }

    /// The master's remoting address, as the name servers or a step-down last said.
    pub fn master(&self) -> Option<String> {
        self.master_addr.read().clone()
    }

    /// The master's HA address, as the name servers or a step-down last said.
    pub fn master_ha(&self) -> Option<String> {
        self.master_ha_addr.read().clone()
    }

    /// What a name server's registration answer says of the master; empty means unknown and
    /// keeps what was known.
    pub fn learn_master(&self, addr: Option<String>, ha: Option<String>) {
        if let Some(a) = addr.filter(|a| !a.is_empty()) {
            *self.master_addr.write() = Some(a);
        }
        if let Some(h) = ha.filter(|a| !a.is_empty()) {
            *self.master_ha_addr.write() = Some(h);
        }
    }

    /// A step-down, or a newer term's notice: follow `addr` now, at `ha` if given (else where
    /// the name servers say); a connection to another master ends.
    pub fn follow_master(&self, addr: String, ha: Option<String>) {
        *self.master_addr.write() = Some(addr);
        *self.master_ha_addr.write() = ha.filter(|a| !a.is_empty());
        self.switches.fetch_add(1, Ordering::AcqRel);
    }

    fn switches(&self) -> u64 {
        self.switches.load(Ordering::Acquire)
    }

    /// Slave side: why the last attempt to follow the master failed, if it did.
    pub fn last_follow_error(&self) -> Option<String> {
        self.last_follow_error.lock().clone()
    }

    /// A promotion: no master any more. Returns the one this broker followed.
    pub fn forget_master(&self) -> Option<String> {
        *self.connected_master.write() = None;
        *self.master_ha_addr.write() = None;
        self.master_addr.write().take()
    }

    /// Slave side: the master HA address this slave is connected to, if any.
    pub fn connected_master(&self) -> Option<String> {
        self.connected_master.read().clone()
    }

    /// Slave side: a consumer committed an offset here, to hand to the master later.
    pub fn note_offset_committed(&self) {
        self.offsets_committed_here.store(true, Ordering::Release);
    }

    /// A SYNC_MASTER send up to `end` was answered as replicated.
    pub fn acknowledged_to_producers(&self, end: i64) {
        self.acknowledged.fetch_max(end, Ordering::AcqRel);
    }

    /// The end of what SYNC_MASTER producers were told is replicated (0: nothing).
    pub fn acknowledged(&self) -> i64 {
        self.acknowledged.load(Ordering::Acquire)
    }

    /// Takes what an earlier run acknowledged (`config/haAcknowledged.json`), so a master
    /// restarted as a slave still refuses to cut it.
    pub fn load_acknowledged(&self, path: &std::path::Path) {
        let Ok(text) = std::fs::read(path) else {
            return;
        };
        match serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["acknowledged"].as_i64())
        {
            Some(v) => {
                self.acknowledged.fetch_max(v, Ordering::AcqRel);
                self.persisted.store(v, Ordering::Release);
            }
            None => tracing::warn!(path = %path.display(), "unreadable; starting without it"),
        }
    }

    /// Writes `acknowledged` if it moved since the last write (with the offsets' flush, and
    /// at shutdown: after a crash it may be one interval behind).
    pub fn persist_acknowledged(&self, path: &std::path::Path) {
        let now = self.acknowledged();
        if now == self.persisted.load(Ordering::Acquire) {
            return;
        }
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::json!({ "acknowledged": now }).to_string();
        let written = std::fs::write(&tmp, body).and_then(|_| std::fs::rename(&tmp, path));
        match written {
            Ok(()) => self.persisted.store(now, Ordering::Release),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the acknowledged offset")
            }
        }
    }

    /// Whether the next step-down may cut below what was acknowledged.
    pub fn set_force_truncate(&self, force: bool) {
        self.force_truncate.store(force, Ordering::Release);
    }

    fn take_force_truncate(&self) -> bool {
        self.force_truncate.swap(false, Ordering::AcqRel)
    }

    /// Slave side: whether offsets were committed here since the last call.
    pub fn take_offsets_committed(&self) -> bool {
        self.offsets_committed_here.swap(false, Ordering::AcqRel)
    }
}

/// A slave further behind than this does not count as in sync (RocketMQ's
/// `haMaxGapNotInSync`, 256 MiB).
const MAX_GAP_IN_SYNC: i64 = 256 * 1024 * 1024;

/// SYNC_MASTER: waits until a slave holds everything up to `end`. `Err(code)` is
/// SLAVE_NOT_AVAILABLE (no slave in sync) or FLUSH_SLAVE_TIMEOUT.
pub async fn wait_for_slave(inner: &BrokerInner, end: i64, timeout: Duration) -> Result<(), i32> {
    use rmq_remoting::ResponseCode;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = inner.ha.acked.notified();
        // Slaves count for the term the HA port serves; a send of another term (the broker
        // stepped down and was promoted again meanwhile) has none.
        let best = if inner.role.snapshot().epoch == inner.ha.term() {
            inner.ha.max_slave_offset()
        } else {
            -1
        };
        if best >= end {
            inner.ha.acknowledged_to_producers(end);
            return Ok(());
        }
        if best < 0 || end - best > MAX_GAP_IN_SYNC {
            return Err(ResponseCode::SLAVE_NOT_AVAILABLE);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(ResponseCode::FLUSH_SLAVE_TIMEOUT);
        }
    }
}
