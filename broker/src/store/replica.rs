//! Replication's side of the store: whole records for a master to ship, and a replica's
//! appends and truncations, checked as sends are before anything reaches the files.

use bytes::Bytes;
use rmq_remoting::message::MessageExt;
use tokio::sync::oneshot;

use super::message_store::{MessageStore, ReplicaRecord, WriterCommand, MAX_QUEUE_ID};

impl MessageStore {
    /// Replication, master side: whole records from commit-log `offset` on, at most about
    /// `max_bytes`, each with its offset; end-of-file blanks are stepped over. Also returns
    /// the offset after the last record.
    pub fn records_from(&self, offset: i64, max_bytes: usize) -> (Vec<(i64, Bytes)>, i64) {
        let cl = &self.inner.commit_log;
        let size = cl.file_size() as u64;
        let end = cl.max_offset();
        let mut at = (offset.max(0) as u64).max(cl.min_offset());
        let mut out = Vec::new();
        let mut bytes = 0;
        while at < end && bytes < max_bytes {
            let blank = |r: &Bytes| {
                r.len() >= 8
                    && i32::from_be_bytes([r[4], r[5], r[6], r[7]])
                        == rmq_remoting::message::BLANK_MAGIC_CODE
            };
            match cl.read_record(at).filter(|r| !blank(r)) {
                Some(rec) => {
                    bytes += rec.len();
                    let len = rec.len() as u64;
                    out.push((at as i64, rec));
                    at += len;
                }
                // A blank or the unused end of a file: the next record starts the next file.
                None => {
                    let next = (at / size + 1) * size;
                    if next >= end || next <= at {
                        break;
                    }
                    at = next;
                }
            }
        }
        (out, at as i64)
    }

    /// Replication, both sides: the CRC32 of the commit-log bytes `[from, to)`, which must lie
    /// in one file and be written (`Some(0)` for none). `None`: not all here (never written,
    /// or deleted by retention).
    pub fn digest(&self, from: i64, to: i64) -> Option<u32> {
        if from < 0 || to < from || to > self.max_phy_offset() {
            return None;
        }
        if from == to {
            return Some(0);
        }
        let cl = &self.inner.commit_log;
        let bytes = cl.read(from as u64, (to - from) as usize)?;
        Some(crc32fast::hash(&bytes))
    }

    /// Replication: the window of bytes compared before `offset` ([`crate::ha::history`]),
    /// as `(from, crc)`; `None` if this store no longer has them.
    pub fn window_digest(&self, offset: i64) -> Option<(i64, u32)> {
        let size = self.inner.commit_log.file_size() as i64;
        let from = crate::ha::history::window_start(offset, size);
        self.digest(from, offset).map(|crc| (from, crc))
    }

    /// Replication, replica side: stores records received from the master at their master
    /// offsets and dispatches them. An offset that does not continue this store is an error
    /// (the replica diverged, or skipped something).
    pub async fn append_replica(&self, records: Vec<(i64, Bytes)>) -> Result<(), String> {
        let mut replica = Vec::with_capacity(records.len());
        for (offset, bytes) in records {
            let mut b = bytes.clone();
            let m = MessageExt::decode(&mut b)
                .map_err(|e| format!("record at {offset} from the master: {e}"))?;
            if m.commit_log_offset != offset {
                return Err(format!(
                    "record from the master says offset {}, sent as {offset}",
                    m.commit_log_offset
                ));
            }
            // As a send is checked: a replica's names become paths, its ids queue files.
            rmq_remoting::topic::validate_topic(&m.topic)
                .map_err(|e| format!("record at {offset} from the master: {e}"))?;
            if !(0..=MAX_QUEUE_ID).contains(&m.queue_id)
                || m.queue_offset < 0
                || m.store_size as usize != bytes.len()
            {
                return Err(format!(
                    "record at {offset} from the master: queue {} offset {} size {} (sent {})",
                    m.queue_id,
                    m.queue_offset,
                    m.store_size,
                    bytes.len()
                ));
            }
            let info = self.inner.dispatch_info(&m, offset, bytes.len());
            replica.push(ReplicaRecord { bytes, info });
        }
        if replica.is_empty() {
            return Ok(());
        }
        if let Some(refused) = self.inner.refused_when_fenced() {
            return Err(format!("{refused:?}"));
        }
        let (reply, rx) = oneshot::channel();
        self.to_writer(
            WriterCommand::Replica {
                records: replica,
                reply,
            },
            rx,
        )
        .await
    }

    /// Replication, replica side: cuts everything from `offset` on — a former master's tail
    /// that the new master never had — with the queue and index entries pointing there.
    pub async fn truncate_replica(&self, offset: i64) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        let end = offset.max(0) as u64;
        self.to_writer(WriterCommand::Truncate { end, reply }, rx)
            .await
    }

    /// Hands a replica command to the writer thread and waits for it.
    async fn to_writer(
        &self,
        command: WriterCommand,
        rx: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(), String> {
        let sent = match self.inner.put_tx.lock().as_ref() {
            Some(s) => s.send(command).is_ok(),
            None => false,
        };
        if !sent {
            return Err("message store is not running".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("message store stopped".into()))
    }
}
