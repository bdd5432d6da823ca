//! Slave side of the HA port: finds the master, reconciles this log with the master's —
//! cutting what the master never had — and stores what it streams, reporting each offset
//! under the master's term.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{handshake, history, HEARTBEAT, MAX_FRAME};
use crate::broker::BrokerInner;
use crate::role::EpochEntry;

/// Where this slave should follow now: `haMasterAddress`, else where the name servers or a
/// step-down said.
fn target(inner: &BrokerInner) -> Option<String> {
    let configured = inner.role.configured_master_ha();
    if configured.is_empty() {
        inner.ha.master_ha().filter(|a| !a.is_empty())
    } else {
        Some(configured)
    }
}

/// Slave side: keeps a connection to the master's HA port and stores what it streams.
pub async fn replicate(inner: Arc<BrokerInner>, stop: CancellationToken) {
    let mut last_refresh: Option<Instant> = None;
    // Asks the name servers where the master is now, in the background (their answers
    // come as they arrive: a hung one must not hold the others back), at most every 5 s.
    let mut refresh = |inner: &Arc<BrokerInner>| {
        if last_refresh.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            last_refresh = Some(Instant::now());
            crate::namesrv::register_soon(inner);
        }
    };
    loop {
        if !inner.role.is_slave() {
            return; // promoted
        }
        let Some(addr) = target(&inner) else {
            // No master known yet (it registered after us, or this broker just stepped
            // down): ask the name servers again now rather than at the next registration.
            refresh(&inner);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        };
        match follow(&inner, &addr, &stop).await {
            Ok(()) => {}
            Err(e) => {
                tracing::info!(master = %addr, error = %e, "replication connection ended; retrying");
                *inner.ha.last_follow_error.lock() = Some(e);
                // The master may have changed (failover).
                refresh(&inner);
            }
        }
        *inner.ha.connected_master.write() = None;
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
    S: AsyncRead + AsyncWrite + Unpin,
{
    let switches = inner.ha.switches();
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
    let (tag, body) = handshake_frame(&mut rd).await?;
    let (term, offset) = match tag {
        handshake::REFUSED => {
            return Err(format!(
                "the master refused this slave: {}",
                String::from_utf8_lossy(&body)
            ))
        }
        handshake::TERMS => {
            let terms: handshake::Terms = handshake::parse_terms(&body)?;
            let offset = reconcile(inner, addr, &mut rd, &mut wr, &terms).await?;
            // The master's word that it counts us from `offset`.
            let (tag, body) = handshake_frame(&mut rd).await?;
            if tag != handshake::MATCH {
                return Err(format!(
                    "the master did not accept this slave at {offset}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            (Some(terms.epoch), offset)
        }
        // An older master (protocol 1): its epochs, then our offset, trusted as sent. Cut
        // to where the terms part (by number and start, up to where it is known).
        handshake::EPOCHS => {
            let theirs: Vec<EpochEntry> =
                serde_json::from_slice(&body).map_err(|e| format!("master epochs: {e}"))?;
            let mine = inner.role.epochs().list();
            let ours_max = inner.store.max_phy_offset();
            let keep = history::consistent_point(&mine, &theirs, ours_max, i64::MAX)
                .ok_or_else(|| shares_nothing(addr, &mine, &theirs))?;
            cut_to(inner, addr, keep, &theirs).await?;
            let offset = inner.store.max_phy_offset();
            wr.write_i64(offset).await.map_err(|e| e.to_string())?;
            (None, offset)
        }
        other => return Err(format!("bad handshake from the master (frame {other})")),
    };
    tracing::info!(master = %addr, offset, term = ?term, "replicating from the master");
    *inner.ha.last_follow_error.lock() = None;
    // Only now: this log is a prefix of the master's (what metadata sync relies on).
    *inner.ha.connected_master.write() = Some(addr.to_string());
    stream(inner, addr, rd, wr, stop, term, offset, switches).await
}

fn shares_nothing(addr: &str, mine: &[EpochEntry], theirs: &[EpochEntry]) -> String {
    format!(
        "{addr} shares no epoch with this broker ({mine:?} vs {theirs:?}): not following it, \
         which would cut the whole log"
    )
}

/// Protocol 2: finds the newest point of this log the master recognises as its own, cuts
/// there, and says READY. Returns the offset this slave now ends at.
async fn reconcile<R, W>(
    inner: &Arc<BrokerInner>,
    addr: &str,
    rd: &mut R,
    wr: &mut W,
    terms: &handshake::Terms,
) -> Result<i64, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mine = inner.role.epochs().list();
    let theirs = &terms.epoch_list;
    let my_max = inner.store.max_phy_offset();
    let first = history::consistent_point(&mine, theirs, my_max, terms.max_offset)
        .ok_or_else(|| shares_nothing(addr, &mine, theirs))?;
    let mut points = vec![first];
    points.extend(history::fallback_points(&mine, theirs, first));
    let mut chosen = None;
    for point in points {
        // Bytes this store no longer has (retention) cannot be compared: further back.
        let Some((from, crc)) = inner.store.window_digest(point) else {
            continue;
        };
        let probe = handshake::Probe {
            offset: point,
            from,
            crc,
            epoch_list: mine.clone(),
            ready: false,
        };
        handshake::send_json(wr, &probe).await?;
        let (tag, body) = handshake_frame(rd).await?;
        match tag {
            handshake::MATCH => {
                chosen = Some(point);
                break;
            }
            handshake::MISMATCH => tracing::warn!(
                master = %addr,
                offset = point,
                reason = %String::from_utf8_lossy(&body),
                "this log and the master's differ there; trying an earlier point"
            ),
            handshake::REFUSED => {
                return Err(format!(
                    "the master refused this slave: {}",
                    String::from_utf8_lossy(&body)
                ))
            }
            other => return Err(format!("bad answer to a probe (frame {other})")),
        }
    }
    let point = chosen.ok_or_else(|| format!("{addr} recognises no point of this log"))?;
    cut_to(inner, addr, point, theirs).await?;
    let now = inner.store.max_phy_offset();
    let (from, crc) = inner
        .store
        .window_digest(now)
        .ok_or_else(|| format!("cannot read this log before {now}"))?;
    let ready = handshake::Probe {
        offset: now,
        from,
        crc,
        epoch_list: mine,
        ready: true,
    };
    handshake::send_json(wr, &ready).await?;
    Ok(now)
}

/// Cuts this log to `keep` (unless that would cut what it acknowledged as a master, without
/// an admin's `forceTruncate`) and takes the master's epochs. Under the role lock: a
/// promotion waits for the cut, and begins its term where the log then ends.
async fn cut_to(
    inner: &Arc<BrokerInner>,
    addr: &str,
    keep: i64,
    theirs: &[EpochEntry],
) -> Result<(), String> {
    let _change = inner.role.change().await;
    if !inner.role.is_slave() {
        return Err("promoted while reconciling".into());
    }
    let ours_max = inner.store.max_phy_offset();
    if keep < ours_max {
        let acknowledged = inner.ha.acknowledged();
        if keep < acknowledged && !inner.ha.take_force_truncate() {
            return Err(format!(
                "{addr} would have this broker cut to {keep}, below {acknowledged}, which it \
                 acknowledged to SYNC_MASTER producers as replicated: not following it (a step-down \
                 with forceTruncate=true allows it)"
            ));
        }
        tracing::warn!(master = %addr, keep, had = ours_max, "cutting the tail the master never had");
        inner.store.truncate_replica(keep).await?;
    }
    if !theirs.is_empty() {
        inner.role.epochs().replace(theirs.to_vec());
    }
    Ok(())
}

/// Stores what the master streams from `offset` on and reports progress: under the master's
/// term `term` (protocol 2), or as a bare offset (protocol 1). Ends when this broker is
/// promoted, stops, or is to follow another master.
#[allow(clippy::too_many_arguments)]
async fn stream<R, W>(
    inner: &Arc<BrokerInner>,
    addr: &str,
    mut rd: R,
    mut wr: W,
    stop: &CancellationToken,
    term: Option<i32>,
    mut offset: i64,
    switches: u64,
) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut last_report = Instant::now();
    loop {
        if !inner.role.is_slave() {
            return Ok(()); // promoted
        }
        // Told to follow another master (a step-down, a newer term's notice), or the name
        // servers name another one: this one's term may be over, and acknowledging its
        // writes would let it answer SEND_OK for records its successor does not have.
        if inner.ha.switches() != switches || target(inner).is_some_and(|t| t != addr) {
            return Err(format!(
                "no longer following {addr}: the master is now {:?}",
                target(inner)
            ));
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
        let first = h.get_i64();
        let len = h.get_i32();
        if len < 0 || len as usize > MAX_FRAME {
            return Err(format!("bad frame length {len} from the master"));
        }
        let body = if len > 0 {
            let mut body = vec![0u8; len as usize];
            rd.read_exact(&mut body).await.map_err(|e| e.to_string())?;
            body
        } else {
            Vec::new()
        };
        if first < 0 {
            return Err(format!(
                "the master ended the stream (frame {first}): {}",
                String::from_utf8_lossy(&body)
            ));
        }
        if !body.is_empty() {
            let records = split_records(Bytes::from(body))?;
            inner.store.append_replica(records).await?;
            offset = inner.store.max_phy_offset();
        }
        if len > 0 || last_report.elapsed() >= HEARTBEAT {
            match term {
                Some(epoch) => handshake::send_report(&mut wr, offset, epoch).await,
                None => wr.write_i64(offset).await,
            }
            .map_err(|e| e.to_string())?;
            last_report = Instant::now();
        }
    }
}

/// A handshake frame from the master, within the handshake's time.
async fn handshake_frame<R: AsyncRead + Unpin>(rd: &mut R) -> Result<(i64, Vec<u8>), String> {
    // A master comparing a large window, or a slow link: generous, but bounded.
    tokio::time::timeout(HEARTBEAT * 30, handshake::read_frame(rd, MAX_FRAME))
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
    use bytes::{BufMut, BytesMut};

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
