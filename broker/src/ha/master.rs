//! Master side of the HA port: authenticates slaves, reconciles each one's log with its own
//! before counting it ([`super::handshake`]), then streams records and counts the slave's
//! reports toward SYNC_MASTER acknowledgements — for the term it reconciled with only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rmq_remoting::role::Epoch;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{handshake, history, FRAME_BYTES, HEARTBEAT};
use crate::broker::BrokerInner;

/// Probes one slave may make before it is refused (its fallbacks are the terms both logs
/// share, then 0: a handful).
const MAX_PROBES: usize = 64;

type Rd = ReadHalf<rmq_remoting::tls::MaybeTls>;
type Wr = WriteHalf<rmq_remoting::tls::MaybeTls>;

fn refused(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, reason)
}

/// Master side: accepts slaves on the HA port until `stop` (the end of this master term).
pub async fn serve(inner: Arc<BrokerInner>, listener: TcpListener, stop: CancellationToken) {
    let term = inner.role.snapshot().epoch;
    inner.ha.open_term(term);
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
            // The whole connection ends with the term: a push blocked on a stalled slave
            // must not outlive it.
            let r = tokio::select! {
                r = serve_slave(&inner, sock, peer, id, term) => r,
                _ = stop.cancelled() => Ok(()),
            };
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
    term: Epoch,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = tokio::io::split(sock);
    // Who is there: a slave of this group, holding the admin credential, not from a newer
    // term, speaking the protocol that reconciles before it counts.
    tokio::time::timeout(HEARTBEAT * 5, handshake::expect_magic(&mut rd))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no opening"))??;
    let nonce = handshake::challenge(&mut wr).await?;
    let hello = tokio::time::timeout(HEARTBEAT * 5, handshake::read_hello(&mut rd))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no hello"))??;
    let mut check = hello.check(&nonce, inner.gate.admin(), &inner.broker_name(), term.0);
    if check.is_ok() && hello.protocol < handshake::PROTOCOL {
        check = Err(format!(
            "the slave speaks HA protocol {}; this master needs {} (it reconciles logs before \
             counting a slave): upgrade the slave",
            hello.protocol.max(1),
            handshake::PROTOCOL
        ));
    }
    if let Err(reason) = check {
        let _ = handshake::write_frame(&mut wr, handshake::REFUSED, reason.as_bytes()).await;
        return Err(refused(format!("refused: {reason}")));
    }
    let first = match reconcile(inner, &mut rd, &mut wr, term).await {
        Ok(offset) => offset,
        Err(reason) => {
            let _ = handshake::write_frame(&mut wr, handshake::REFUSED, reason.as_bytes()).await;
            return Err(refused(format!("not reconciled: {reason}")));
        }
    };
    handshake::write_frame(&mut wr, handshake::MATCH, &[]).await?;
    // Only now does the slave count: it holds exactly this master's log up to `first`.
    let ended = inner
        .ha
        .slave_reconciled(id, peer, hello.broker_id, term, first);
    tracing::info!(%peer, broker_id = hello.broker_id, offset = first, %term, "slave reconciled; following");
    tokio::select! {
        r = stream(inner, rd, wr, peer, id, term, first) => r,
        _ = ended.cancelled() => Ok(()),
    }
}

/// Sends the master's terms and answers the slave's probes until it is READY at a matched
/// offset: the offset it holds, exactly as the master has it. `Err`: the refusal's reason.
async fn reconcile(
    inner: &Arc<BrokerInner>,
    rd: &mut Rd,
    wr: &mut Wr,
    term: Epoch,
) -> Result<i64, String> {
    let terms = handshake::Terms {
        epoch: term.0,
        epoch_list: inner.role.epochs().list(),
        max_offset: inner.store.max_phy_offset(),
    };
    let body = serde_json::to_vec(&terms).map_err(|e| e.to_string())?;
    handshake::write_frame(wr, handshake::TERMS, &body)
        .await
        .map_err(|e| e.to_string())?;
    let mut matched: Option<i64> = None;
    for _ in 0..MAX_PROBES {
        // A slave cutting a large tail may take a while before it says READY.
        let probe: handshake::Probe =
            tokio::time::timeout(HEARTBEAT * 60, handshake::read_json(rd, "probe"))
                .await
                .map_err(|_| "no probe from the slave".to_string())?
                .map_err(|e| e.to_string())?;
        if probe.ready {
            // READY must be the offset last matched, checked again as it is now.
            if matched != Some(probe.offset) {
                return Err(format!(
                    "the slave says it is ready at {}, but the offset that matched is {matched:?}",
                    probe.offset
                ));
            }
            check_probe(inner, &probe)?;
            if inner.role.snapshot().epoch != term {
                return Err(format!("this master's term {term} ended"));
            }
            return Ok(probe.offset);
        }
        match check_probe(inner, &probe) {
            Ok(()) => {
                matched = Some(probe.offset);
                handshake::write_frame(wr, handshake::MATCH, &[])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(why) => {
                matched = None;
                tracing::info!(offset = probe.offset, reason = %why, "a slave's log differs from this master's there");
                handshake::write_frame(wr, handshake::MISMATCH, why.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Err(format!("no matching point after {MAX_PROBES} probes"))
}

/// Whether the slave's log up to `probe.offset` is this master's: within it, the same terms
/// below that offset, and the same bytes before it.
fn check_probe(inner: &BrokerInner, probe: &handshake::Probe) -> Result<(), String> {
    let max = inner.store.max_phy_offset();
    if probe.offset < 0 || probe.offset > max {
        return Err(format!(
            "the slave claims offset {}, past this master's end {max}",
            probe.offset
        ));
    }
    history::check_terms_below(&probe.epoch_list, &inner.role.epochs().list(), probe.offset)?;
    if probe.from > probe.offset || probe.offset - probe.from > history::WINDOW {
        return Err(format!(
            "bad window [{}, {}) in the probe",
            probe.from, probe.offset
        ));
    }
    if probe.offset > 0 && probe.from == probe.offset {
        return Err("an empty window proves nothing".into());
    }
    match inner.store.digest(probe.from, probe.offset) {
        Some(crc) if crc == probe.crc => Ok(()),
        Some(_) => Err(format!(
            "the slave's bytes in [{}, {}) are not this master's",
            probe.from, probe.offset
        )),
        None => Err(format!(
            "this master no longer holds [{}, {}) to compare",
            probe.from, probe.offset
        )),
    }
}

/// Streams records from `first` on and counts the slave's reports (each under `term`).
async fn stream(
    inner: &Arc<BrokerInner>,
    mut rd: Rd,
    mut wr: Wr,
    peer: SocketAddr,
    id: u64,
    term: Epoch,
    first: i64,
) -> std::io::Result<()> {
    // Never count more than was sent: what the slave held when it reconciled, then what
    // was sent to it.
    let sent = Arc::new(AtomicI64::new(first));
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
                let (offset, epoch) = tokio::time::timeout(silence, async {
                    let offset = rd.read_i64().await?;
                    let epoch = rd.read_i32().await?;
                    Ok::<_, std::io::Error>((offset, epoch))
                })
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no report from the slave for {silence:?}"),
                    )
                })??;
                if epoch != term.0 {
                    return Err(refused(format!(
                        "the slave reports under epoch {epoch}, this connection serves {term}"
                    )));
                }
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
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        r = reports => r,
        r = pushes => r,
    }
}
