//! The put path's append, and the queue that carries appended records to the dispatcher.
//!
//! A put is appended on the caller's own thread, under the append lock, as RocketMQ's
//! `putMessageLock` does: copying a record into the mapped commit log takes a microsecond or
//! two, far less than handing it to a writer thread and waking the caller again. The append
//! never waits for a disk: files are created ahead by the allocator thread (and their pages
//! faulted in ahead of the cursor), flushing is the flusher's, and dispatching is the
//! dispatcher's. The writer thread is left with the replica's commands (replicated records,
//! cuts), which take the same lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rmq_remoting::message::sys_flag;

use super::commit_log::{CommitLog, WriteCursor};
use super::config::FlushDiskType;
use super::message_store::{DispatchInfo, Inner, PendingRecord};
use super::types::{AppendResult, PutStatus};

/// Next queue offset of every queue of every topic.
pub(crate) type QueueTable =
    std::collections::HashMap<Arc<str>, std::collections::HashMap<i32, i64>>;

impl Inner {
    /// Appends one put's records contiguously at the end of the commit log and queues them
    /// for dispatch, in commit-log order.
    pub(crate) fn append_now(
        &self,
        topic: &Arc<str>,
        queue_id: i32,
        records: &mut [PendingRecord],
    ) -> Result<AppendResult, PutStatus> {
        let mut dispatch = Vec::with_capacity(records.len());
        let result = {
            let mut writer = self.writer.lock();
            let Some(cursor) = writer.as_mut() else {
                return Err(PutStatus::ServiceNotAvailable(
                    "message store is shutting down".into(),
                ));
            };
            let result = {
                let mut table = self.topic_queue_table.lock();
                append(
                    &self.commit_log,
                    cursor,
                    &mut table,
                    topic,
                    queue_id,
                    records,
                    &mut dispatch,
                )
            };
            if let Ok(a) = &result {
                self.commit_log.publish(cursor, a.store_timestamp);
                // Still under the lock: the dispatcher sees records in commit-log order.
                self.dispatch_queue.push(dispatch);
            }
            result
        };
        if result.is_ok() {
            if self.config.flush_disk_type == FlushDiskType::SyncFlush {
                self.wake_flusher();
            }
            if let Some(listener) = self.append_listener.get() {
                listener();
            }
        }
        result
    }
}

/// Appends one put's records contiguously, numbering them in their queue.
pub(crate) fn append(
    cl: &CommitLog,
    cursor: &mut WriteCursor,
    table: &mut QueueTable,
    topic: &Arc<str>,
    queue_id: i32,
    records: &mut [PendingRecord],
    dispatch: &mut Vec<DispatchInfo>,
) -> Result<AppendResult, PutStatus> {
    let total: usize = records.iter().map(|r| r.meta.len() + r.body.len()).sum();
    if let Err(e) = cl.prepare_append(cursor, total) {
        return Err(if e.kind() == std::io::ErrorKind::InvalidInput {
            PutStatus::MessageIllegal(e.to_string())
        } else {
            tracing::error!(error = %e, "cannot create a commit log file");
            PutStatus::CreateMappedFileFailed(e.to_string())
        });
    }
    let next = match table.get_mut(topic) {
        Some(m) => m.entry(queue_id).or_insert(0),
        None => table
            .entry(topic.clone())
            .or_default()
            .entry(queue_id)
            .or_insert(0),
    };
    let first_offset = cl.cursor_offset(cursor) as i64;
    let mut logics_offset = None;
    let mut offsets = Vec::with_capacity(records.len());
    let mut last_ts = 0;
    for rec in records.iter_mut() {
        let dispatchable = rec.tran_type != sys_flag::TRANSACTION_PREPARED_TYPE
            && rec.tran_type != sys_flag::TRANSACTION_ROLLBACK_TYPE;
        let queue_offset = if dispatchable {
            let q = *next;
            *next += 1;
            q
        } else {
            0
        };
        let phys = cl.cursor_offset(cursor) as i64;
        rec.meta[20..28].copy_from_slice(&queue_offset.to_be_bytes());
        rec.meta[28..36].copy_from_slice(&phys.to_be_bytes());
        cl.append(cursor, &rec.meta[..rec.head_len]);
        cl.append(cursor, &rec.body);
        cl.append(cursor, &rec.meta[rec.head_len..]);
        logics_offset.get_or_insert(queue_offset);
        offsets.push(phys);
        last_ts = rec.store_timestamp;
        dispatch.push(DispatchInfo {
            topic: topic.clone(),
            queue_id,
            queue_offset,
            commit_log_offset: phys,
            size: (rec.meta.len() + rec.body.len()) as i32,
            tags_code: rec.tags_code,
            keys: rec.keys.take(),
            uniq_key: rec.uniq_key.take(),
            store_timestamp: rec.store_timestamp,
            tran_type: rec.tran_type,
        });
    }
    Ok(AppendResult {
        wrote_offset: first_offset,
        wrote_bytes: total,
        logics_offset: logics_offset.unwrap_or(0),
        store_timestamp: last_ts,
        offsets,
        store_host: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    })
}

/// How long the dispatcher lets appended records gather after a busy round, instead of
/// being woken for each: under load it wakes about once per tick, not once per put (a wake-up
/// costs more CPU than dispatching dozens of records). RocketMQ's dispatcher polls every
/// millisecond the same way; an idle dispatcher sleeps until the next append rings.
pub(crate) const DISPATCH_TICK: Duration = Duration::from_millis(1);

/// Appended records on their way to the dispatcher thread.
#[derive(Default)]
pub(crate) struct DispatchQueue {
    pending: Mutex<Pending>,
    ready: Condvar,
    /// The dispatcher waits for a ring (set and cleared under `pending`'s lock).
    parked: AtomicBool,
}

#[derive(Default)]
struct Pending {
    items: Vec<DispatchInfo>,
    closed: bool,
}

impl DispatchQueue {
    /// Queues records (callers hold the append lock, so they arrive in commit-log order),
    /// waking the dispatcher only if it sleeps.
    pub(crate) fn push(&self, items: Vec<DispatchInfo>) {
        if items.is_empty() {
            return;
        }
        {
            let mut p = self.pending.lock();
            if p.items.is_empty() {
                p.items = items;
            } else {
                p.items.extend(items);
            }
        }
        // Ordered by the lock: a dispatcher that parked before our push is seen parked here;
        // one that parks after it finds the records.
        if self.parked.load(Ordering::Acquire) {
            self.ready.notify_one();
        }
    }

    /// No more records will come; the dispatcher drains what is queued and stops.
    pub(crate) fn close(&self) {
        self.pending.lock().closed = true;
        self.ready.notify_all();
    }

    /// The dispatcher's wait for its next batch, swapped into `batch` (left empty when
    /// nothing came). `busy`: the last round had work, so let more gather for a tick
    /// before parking. `None` once closed and drained.
    pub(crate) fn next_batch(&self, batch: &mut Vec<DispatchInfo>, busy: bool) -> Option<()> {
        // The processed batch's allocation goes back to the pushers.
        batch.clear();
        let mut p = self.pending.lock();
        if p.items.is_empty() && !p.closed {
            if busy {
                // Not parked: appends do not ring for this wait, it simply times out.
                self.ready.wait_for(&mut p, DISPATCH_TICK);
            }
            if p.items.is_empty() && !p.closed {
                self.parked.store(true, Ordering::Release);
                self.ready.wait(&mut p);
                self.parked.store(false, Ordering::Release);
            }
        }
        if p.items.is_empty() && p.closed {
            return None;
        }
        std::mem::swap(batch, &mut p.items);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(offset: i64) -> DispatchInfo {
        DispatchInfo {
            topic: Arc::from("T"),
            queue_id: 0,
            queue_offset: offset,
            commit_log_offset: offset,
            size: 1,
            tags_code: 0,
            keys: None,
            uniq_key: None,
            store_timestamp: 0,
            tran_type: 0,
        }
    }

    /// Many pushers, one dispatcher that parks whenever it runs dry: every record arrives,
    /// once, in the order of the pushes (no lost ring leaves one behind).
    #[test]
    fn dispatch_queue_delivers_everything_in_order_without_lost_wakeups() {
        let q = Arc::new(DispatchQueue::default());
        let order = Arc::new(Mutex::new(0i64));
        let pushers: Vec<_> = (0..4)
            .map(|_| {
                let (q, order) = (q.clone(), order.clone());
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        // The append lock's role: numbering and pushing in one critical section.
                        let mut next = order.lock();
                        let n = *next;
                        *next += 1;
                        q.push(vec![info(n)]);
                        drop(next);
                        if i % 64 == 0 {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                })
            })
            .collect();
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut batch = Vec::new();
                let mut busy = false;
                while q.next_batch(&mut batch, busy).is_some() {
                    busy = !batch.is_empty();
                    seen.extend(batch.drain(..).map(|d| d.commit_log_offset));
                }
                seen
            })
        };
        for p in pushers {
            p.join().unwrap();
        }
        q.close();
        let seen = consumer.join().unwrap();
        assert_eq!(seen, (0..8_000).collect::<Vec<i64>>());
    }

    /// A parked dispatcher is woken by the first record after a quiet spell, without waiting
    /// for a timer.
    #[test]
    fn a_parked_dispatcher_is_rung_awake() {
        let q = Arc::new(DispatchQueue::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut batch = Vec::new();
                let _ = tx.send(q.next_batch(&mut batch, false).map(|_| batch.len()));
            })
        };
        while !q.parked.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        q.push(vec![info(7)]);
        let got = rx.recv_timeout(Duration::from_secs(10));
        q.close(); // frees the dispatcher if the ring was lost
        consumer.join().unwrap();
        assert_eq!(got, Ok(Some(1)), "the ring must wake a parked dispatcher");
    }
}
