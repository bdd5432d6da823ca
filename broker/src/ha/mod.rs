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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerInner;

pub mod handshake;

/// Most record bytes in one frame.
const FRAME_BYTES: usize = 256 * 1024;
/// Frames above this are refused (hostile or broken peer).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Heartbeat and report interval.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// A slave connected to this master's HA port.
#[derive(Clone, Debug)]
pub struct SlaveInfo {
    pub addr: SocketAddr,
    /// The commit-log offset it last reported holding.
    pub acked: i64,
    pub last_report: Instant,
}

/// What the master knows of its slaves, and what a slave knows of its master. Private
/// state behind methods: the HA connections write it, everything else reads or is told.
#[derive(Default)]
pub struct HaState {
    next_id: AtomicU64,
    /// Connected slaves by connection id.
    slaves: Mutex<HashMap<u64, SlaveInfo>>,
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
}

impl HaState {
    /// The highest offset any connected slave holds (-1: no slave).
    pub fn max_slave_offset(&self) -> i64 {
        self.slaves
            .lock()
            .values()
            .map(|s| s.acked)
            .max()
            .unwrap_or(-1)
    }

    /// The connected slaves, in no particular order.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        self.slaves.lock().values().cloned().collect()
    }

    pub fn slave_count(&self) -> usize {
        self.slaves.lock().len()
    }

    fn slave_connected(&self, id: u64, addr: SocketAddr, acked: i64) {
        let info = SlaveInfo {
            addr,
            acked,
            last_report: Instant::now(),
        };
        self.slaves.lock().insert(id, info);
        self.acked.notify_waiters();
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

    /// A step-down: follow `addr` now, at `ha` if given (else where the name servers say).
    pub fn follow_master(&self, addr: String, ha: Option<String>) {
        *self.master_addr.write() = Some(addr);
        *self.master_ha_addr.write() = ha.filter(|a| !a.is_empty());
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
        let best = inner.ha.max_slave_offset();
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

/// Master side: accepts slaves on the HA port until `stop`.
pub async fn serve(inner: Arc<BrokerInner>, listener: TcpListener, stop: CancellationToken) {
    loop {
        let (sock, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "HA accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = sock.set_nodelay(true);
        let inner = inner.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            // The HA port speaks TLS as the remoting ports do (tls.server.mode).
            let sock = match &inner.server_tls {
                None => rmq_remoting::tls::MaybeTls::Plain(sock),
                Some(tls) => match tls.accept(sock, HEARTBEAT * 5).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "HA connection closed before the handshake (TLS)");
                        return;
                    }
                },
            };
            let id = inner.ha.next_id.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, tls = sock.is_tls(), "slave connected to the HA port");
            let r = serve_slave(&inner, sock, peer, id, stop).await;
            inner.ha.slave_gone(id);
            match r {
                Ok(()) => tracing::info!(%peer, "slave disconnected"),
                Err(e) => tracing::warn!(%peer, error = %e, "slave connection ended"),
            }
        });
    }
}

async fn serve_slave(
    inner: &Arc<BrokerInner>,
    sock: rmq_remoting::tls::MaybeTls,
    peer: SocketAddr,
    id: u64,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = tokio::io::split(sock);
    // Who is there: a slave of this group, holding the admin credential, not from a newer
    // term.
    tokio::time::timeout(HEARTBEAT * 5, handshake::expect_magic(&mut rd))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no opening"))??;
    let nonce = handshake::challenge(&mut wr).await?;
    let hello = tokio::time::timeout(HEARTBEAT * 5, handshake::read_hello(&mut rd))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no hello"))??;
    let epoch = inner.role.snapshot().epoch;
    if let Err(reason) = hello.check(&nonce, inner.gate.admin(), &inner.broker_name(), epoch.0) {
        let _ = handshake::write_frame(&mut wr, handshake::REFUSED, reason.as_bytes()).await;
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("refused: {reason}"),
        ));
    }
    // Then our epochs, so a former master can cut what this master never had; then the
    // slave says where it is.
    let epochs = serde_json::to_vec(&inner.role.epochs().list()).unwrap_or_default();
    handshake::write_frame(&mut wr, handshake::EPOCHS, &epochs).await?;
    let first = rd.read_i64().await?;
    // Never count more than this master has: what the slave held before (at most our end),
    // then what was sent to it.
    let sent = Arc::new(AtomicI64::new(
        first.min(inner.store.max_phy_offset()).max(0),
    ));
    inner
        .ha
        .slave_connected(id, peer, sent.load(Ordering::Acquire));
    tracing::info!(%peer, broker_id = hello.broker_id, offset = first, "slave authenticated");
    // A partition leaves no reset behind: a slave silent past `haHousekeepingInterval` is
    // dropped, so SYNC_MASTER sends get SLAVE_NOT_AVAILABLE rather than timing out forever.
    let silence = Duration::from_millis(
        inner
            .settings
            .broker(|b| b.ha_housekeeping_interval)
            .max(HEARTBEAT.as_millis() as u64 * 2),
    );
    let reports = {
        let inner = inner.clone();
        let sent = sent.clone();
        async move {
            loop {
                let offset = tokio::time::timeout(silence, rd.read_i64())
                    .await
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no report from the slave for {silence:?}"),
                        )
                    })??;
                let held = sent.load(Ordering::Acquire);
                if offset > held {
                    tracing::debug!(%peer, offset, held, "slave reported more than it was sent; counting what was sent");
                }
                inner.ha.slave_reported(id, offset.min(held));
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        }
    };
    let pushes = async {
        let mut next = first;
        let mut last_sent = Instant::now();
        loop {
            // Registered before looking, so an append in between still wakes us.
            let appended = inner.ha.appended.notified();
            let (records, after) = inner.store.records_from(next, FRAME_BYTES);
            if records.is_empty() {
                if last_sent.elapsed() >= HEARTBEAT {
                    let mut frame = BytesMut::with_capacity(12);
                    frame.put_i64(next);
                    frame.put_i32(0);
                    wr.write_all(&frame).await?;
                    last_sent = Instant::now();
                }
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = appended => {}
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                }
                continue;
            }
            let body_len: usize = records.iter().map(|(_, r)| 8 + r.len()).sum();
            let mut frame = BytesMut::with_capacity(12 + body_len);
            frame.put_i64(records[0].0);
            frame.put_i32(body_len as i32);
            for (offset, rec) in &records {
                frame.put_i64(*offset);
                frame.put_slice(rec);
            }
            wr.write_all(&frame).await?;
            last_sent = Instant::now();
            next = after;
            sent.fetch_max(after, Ordering::AcqRel);
        }
    };
    tokio::select! {
        r = reports => r,
        r = pushes => r,
    }
}

/// Slave side: keeps a connection to the master's HA port and stores what it streams.
pub async fn replicate(inner: Arc<BrokerInner>, stop: CancellationToken) {
    let mut last_refresh = Instant::now();
    loop {
        if !inner.role.is_slave() {
            return; // promoted
        }
        let configured = inner.role.configured_master_ha();
        let addr = if configured.is_empty() {
            inner.ha.master_ha()
        } else {
            Some(configured)
        };
        let Some(addr) = addr.filter(|a| !a.is_empty()) else {
            // No master known yet (it registered after us): ask the name servers again now
            // rather than at the next 30 s registration.
            crate::namesrv::register_all(&inner).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        {
            match follow(&inner, &addr, &stop).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::info!(master = %addr, error = %e, "replication connection ended; retrying");
                    // The master may have changed (failover): ask the name servers now and
                    // then rather than waiting for the next 30 s registration.
                    if last_refresh.elapsed() >= Duration::from_secs(5) {
                        last_refresh = Instant::now();
                        crate::namesrv::register_all(&inner).await;
                    }
                }
            }
            *inner.ha.connected_master.write() = None;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn follow(
    inner: &Arc<BrokerInner>,
    addr: &str,
    stop: &CancellationToken,
) -> Result<(), String> {
    let sock = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = sock.set_nodelay(true);
    match &inner.client_tls {
        None => follow_on(inner, addr, sock, stop).await,
        Some(tls) => {
            let session = tokio::time::timeout(Duration::from_secs(10), tls.connect(addr, sock))
                .await
                .map_err(|_| format!("TLS handshake with {addr} timed out"))?
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            follow_on(inner, addr, session, stop).await
        }
    }
}

/// Replicates from the master over `sock` (plaintext or TLS) until it ends.
async fn follow_on<S>(
    inner: &Arc<BrokerInner>,
    addr: &str,
    sock: S,
    stop: &CancellationToken,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(sock);
    wr.write_all(&handshake::MAGIC)
        .await
        .map_err(|e| e.to_string())?;
    // The master's challenge; we answer with who we are, signed.
    let (tag, nonce) = handshake_frame(&mut rd).await?;
    if tag != handshake::CHALLENGE {
        return Err(format!("bad handshake from the master (frame {tag})"));
    }
    let role = inner.role.snapshot();
    let hello = handshake::Hello::new(
        inner.broker_name(),
        role.broker_id,
        role.epoch.0,
        &nonce,
        inner.admin.as_ref(),
    );
    handshake::send_hello(&mut wr, &hello).await?;
    // Then the master's epochs: anything here past where the master's history diverges from
    // ours is cut before we say where we are.
    let (tag, body) = handshake_frame(&mut rd).await?;
    if tag == handshake::REFUSED {
        return Err(format!(
            "the master refused this slave: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    if tag != handshake::EPOCHS {
        return Err(format!("bad handshake from the master (frame {tag})"));
    }
    let theirs: Vec<crate::role::EpochEntry> =
        serde_json::from_slice(&body).map_err(|e| format!("master epochs: {e}"))?;
    let mine = inner.role.epochs().list();
    let ours_max = inner.store.max_phy_offset();
    let keep = crate::failover::divergence_point(&mine, &theirs, ours_max).ok_or_else(|| {
        format!(
            "{addr} shares no epoch with this broker ({mine:?} vs {theirs:?}): not following it, \
             which would cut the whole log"
        )
    })?;
    if keep < ours_max {
        let acknowledged = inner.ha.acknowledged();
        if keep < acknowledged && !inner.ha.take_force_truncate() {
            return Err(format!(
                "{addr} would have this broker cut to {keep}, below {acknowledged}, which it \
                 acknowledged to SYNC_MASTER producers as replicated: not following it (a step-down \
                 with forceTruncate=true allows it)"
            ));
        }
        tracing::warn!(master = %addr, keep, had = ours_max, "cutting the tail the new master never had");
        inner.store.truncate_replica(keep).await?;
    }
    if !theirs.is_empty() {
        inner.role.epochs().replace(theirs);
    }
    let mut offset = inner.store.max_phy_offset();
    wr.write_i64(offset).await.map_err(|e| e.to_string())?;
    tracing::info!(master = %addr, offset, "replicating from the master");
    // Only now: this log is a prefix of the master's (what metadata sync relies on).
    *inner.ha.connected_master.write() = Some(addr.to_string());
    let mut last_report = Instant::now();
    loop {
        if !inner.role.is_slave() {
            return Ok(()); // promoted
        }
        let header = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = tokio::time::timeout(HEARTBEAT * 5, async {
                let mut h = [0u8; 12];
                rd.read_exact(&mut h).await.map(|_| h)
            }) => r.map_err(|_| "no data or heartbeat from the master for 5 s".to_string())?
                  .map_err(|e| e.to_string())?,
        };
        let mut h = &header[..];
        let _first = h.get_i64();
        let len = h.get_i32();
        if len < 0 || len as usize > MAX_FRAME {
            return Err(format!("bad frame length {len} from the master"));
        }
        if len > 0 {
            let mut body = vec![0u8; len as usize];
            rd.read_exact(&mut body).await.map_err(|e| e.to_string())?;
            let records = split_records(Bytes::from(body))?;
            inner.store.append_replica(records).await?;
            offset = inner.store.max_phy_offset();
        }
        if len > 0 || last_report.elapsed() >= HEARTBEAT {
            wr.write_i64(offset).await.map_err(|e| e.to_string())?;
            last_report = Instant::now();
        }
    }
}

/// A handshake frame from the master, within the handshake's time.
async fn handshake_frame<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
) -> Result<(i64, Vec<u8>), String> {
    tokio::time::timeout(HEARTBEAT * 5, handshake::read_frame(rd, MAX_FRAME))
        .await
        .map_err(|_| "no handshake from the master".to_string())?
}

/// `[i64 offset][record]…` → records; each record starts with its own total size.
fn split_records(mut body: Bytes) -> Result<Vec<(i64, Bytes)>, String> {
    let mut out = Vec::new();
    while body.has_remaining() {
        if body.remaining() < 12 {
            return Err("truncated record in a replication frame".into());
        }
        let offset = body.get_i64();
        let size = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if size <= 0 || size as usize > body.remaining() {
            return Err(format!("bad record size {size} in a replication frame"));
        }
        out.push((offset, body.split_to(size as usize)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_into_records_or_fail_cleanly() {
        let mut b = BytesMut::new();
        for (off, len) in [(0i64, 12i32), (12, 20)] {
            b.put_i64(off);
            b.put_i32(len);
            b.put_bytes(7, len as usize - 4);
        }
        let r = split_records(b.clone().freeze()).unwrap();
        assert_eq!(
            r.iter().map(|(o, x)| (*o, x.len())).collect::<Vec<_>>(),
            vec![(0, 12), (12, 20)]
        );
        for cut in 1..b.len() {
            let _ = split_records(b.clone().freeze().slice(..cut));
        }
        let mut bad = BytesMut::new();
        bad.put_i64(0);
        bad.put_i32(-5);
        bad.put_i32(0);
        assert!(split_records(bad.freeze()).is_err());
    }
}
