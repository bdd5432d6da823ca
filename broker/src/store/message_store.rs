//! `MessageStore`: opening and recovering the store, the put path, reads and queries.
//!
//! Threads (see `services`): puts append on the caller's thread under the append lock
//! (`append`), a writer thread applies the replica's commands under the same lock, a
//! dispatcher builds consume-queue units and index entries from what was appended, a flusher
//! makes the commit log durable (on a timer, or at once for SYNC_FLUSH), another flushes
//! queues, index and checkpoint, an allocator creates commit-log files ahead of need, and a
//! cleaner enforces retention and disk limits. Async callers never block on any of them.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, RwLock};
use rmq_remoting::message::{property, sys_flag, MessageExt};
use rmq_remoting::util::{java_hash_code, now_millis};
use tokio::sync::{oneshot, watch};

use super::checkpoint::Checkpoint;
use super::commit_log::CommitLog;
use super::config::{FlushDiskType, MessageStoreConfig};
use super::consume_queue::{ConsumeQueue, CqUnit};
use super::index::{IndexConfig, IndexRequest, IndexService};
use super::services;
use super::types::*;

/// Called after messages are dispatched to a queue: `(topic, queue_id, next queue offset)`.
/// Long polling hangs off this.
pub type DispatchListener = Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

/// Called after each put is appended (outside the append lock): replication pushes from
/// here, without waiting for the dispatcher.
pub type AppendListener = Arc<dyn Fn() + Send + Sync>;

/// Called with the duration of each commit-log flush, seconds (metrics).
pub type FlushObserver = Arc<dyn Fn(f64) + Send + Sync>;

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path} is locked by another process")]
    Locked { path: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One record waiting for the writer: `meta` holds the fields before the body (`head_len`
/// bytes) and after it.
pub(crate) struct PendingRecord {
    pub meta: BytesMut,
    pub head_len: usize,
    pub body: Bytes,
    pub tags_code: i64,
    pub keys: Option<String>,
    pub uniq_key: Option<String>,
    pub store_timestamp: i64,
    pub tran_type: i32,
}

/// What the writer thread is asked to do; it takes whatever is queued as one batch.
pub(crate) enum WriterCommand {
    /// Store records copied from the master byte for byte at their master offsets.
    Replica {
        records: Vec<ReplicaRecord>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Cut the commit log (and what points into it) back to this offset.
    Truncate {
        end: u64,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// One record received from the master, with what dispatching it needs.
pub(crate) struct ReplicaRecord {
    pub bytes: Bytes,
    pub info: DispatchInfo,
}

/// What the dispatcher needs of one appended record.
#[derive(Debug, Clone)]
pub(crate) struct DispatchInfo {
    pub topic: Arc<str>,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub size: i32,
    pub tags_code: i64,
    pub keys: Option<String>,
    pub uniq_key: Option<String>,
    pub store_timestamp: i64,
    pub tran_type: i32,
}

pub(crate) struct Inner {
    pub config: MessageStoreConfig,
    pub commit_log: Arc<CommitLog>,
    pub queues: RwLock<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>>,
    pub index: Option<IndexService>,
    pub checkpoint: Checkpoint,
    pub put_tx: Mutex<Option<Sender<WriterCommand>>>,
    /// The append lock and the commit log's write position; `None` while not running.
    pub writer: Mutex<Option<super::commit_log::WriteCursor>>,
    /// Appended records waiting for the dispatcher.
    pub dispatch_queue: super::append::DispatchQueue,
    pub flushed_tx: watch::Sender<u64>,
    pub flush_wake: (Mutex<bool>, Condvar),
    pub stop: (Mutex<bool>, Condvar),
    pub running: AtomicBool,
    pub disk_full: AtomicBool,
    /// Why consume-queue or index writes are failing (e.g. no space for a new file): the
    /// dispatcher retries the entry, and appends are refused until it succeeds.
    pub dispatch_error: Mutex<Option<String>>,
    /// Entries were left undispatched at shutdown: the next start must verify and rebuild.
    pub dispatch_incomplete: AtomicBool,
    /// Tests: the commit-log flusher does nothing while set (a disk that never finishes).
    pub flush_paused: AtomicBool,
    /// Why the store stopped taking writes for good: a flush failed ([`services::fence`]).
    pub fenced: std::sync::OnceLock<String>,
    pub listener: RwLock<Option<DispatchListener>>,
    pub append_listener: std::sync::OnceLock<AppendListener>,
    pub flush_observer: RwLock<Option<FlushObserver>>,
    /// Next queue offset of every queue: the writer assigns from it.
    pub topic_queue_table: Mutex<HashMap<Arc<str>, HashMap<i32, i64>>>,
    pub last_dispatched_store_ts: AtomicI64,
    pub dispatched_offset: AtomicU64,
    /// Where the last dispatched record starts (-1: not known); a clean shutdown records it.
    pub last_record: AtomicI64,
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    /// The flock on `storePathRootDir/lock`, released at shutdown.
    pub lock: Mutex<Option<File>>,
    /// `messageDelayLevel` in ms, level 1 first.
    pub delay_levels: Vec<i64>,
}

/// Highest queue id a record may carry (topics have at most 1,024 queues; the margin is
/// for whatever a master was configured with).
pub const MAX_QUEUE_ID: i32 = 65_535;

/// Where delayed messages wait: one queue per delay level (queue id = level - 1).
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// The message store.
#[derive(Clone)]
pub struct MessageStore {
    pub(super) inner: Arc<Inner>,
}

fn dispatchable(tran_type: i32) -> bool {
    tran_type != sys_flag::TRANSACTION_PREPARED_TYPE
        && tran_type != sys_flag::TRANSACTION_ROLLBACK_TYPE
}

impl Inner {
    pub fn stopping(&self) -> bool {
        *self.stop.0.lock()
    }

    /// Sleeps up to `d`; true when the store is stopping.
    pub fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.0.lock();
        if !*stop {
            self.stop.1.wait_for(&mut stop, d);
        }
        *stop
    }

    /// The refusal every write gets once the store is fenced.
    pub fn refused_when_fenced(&self) -> Option<PutStatus> {
        self.fenced.get().map(|why| {
            PutStatus::ServiceNotAvailable(format!(
                "message store stopped taking writes after a failed flush ({why}); restart the broker to recover from disk"
            ))
        })
    }

    pub fn wake_flusher(&self) {
        let mut w = self.flush_wake.0.lock();
        *w = true;
        self.flush_wake.1.notify_one();
    }

    pub fn find_queue(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        self.queues.read().get(topic)?.get(&queue_id).cloned()
    }

    fn find_or_create_queue(&self, topic: &str, queue_id: i32) -> io::Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.find_queue(topic, queue_id) {
            return Ok(q);
        }
        // The name becomes a directory: nothing but a valid topic may reach the file system.
        rmq_remoting::topic::validate_topic(topic)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut queues = self.queues.write();
        if let Some(q) = queues.get(topic).and_then(|m| m.get(&queue_id)) {
            return Ok(q.clone());
        }
        let q = Arc::new(ConsumeQueue::load(
            &self.config.consume_queue_dir(),
            topic,
            queue_id,
            self.config.consume_queue_file_size() as usize,
        )?);
        queues
            .entry(topic.to_string())
            .or_default()
            .insert(queue_id, q.clone());
        Ok(q)
    }

    /// Builds the consume-queue unit and index entries of one record.
    /// The consume-queue tags code of a record: the tag's Java hash, or for the delay queues
    /// (`SCHEDULE_TOPIC_XXXX`) the time the message is due, which the schedule service reads.
    pub fn tags_code(
        &self,
        topic: &str,
        tags: Option<&str>,
        delay_level: Option<&str>,
        store_timestamp: i64,
    ) -> i64 {
        if topic == SCHEDULE_TOPIC {
            let level = delay_level
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .clamp(1, self.delay_levels.len());
            return store_timestamp + self.delay_levels[level - 1];
        }
        tags.map(|t| java_hash_code(t) as i64).unwrap_or(0)
    }

    /// What dispatching a stored record needs, read from the record itself (replicas and
    /// recovery; appends know it already).
    pub fn dispatch_info(&self, m: &MessageExt, offset: i64, size: usize) -> DispatchInfo {
        DispatchInfo {
            topic: Arc::from(m.topic.as_str()),
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commit_log_offset: offset,
            size: size as i32,
            tags_code: self.tags_code(
                &m.topic,
                m.tags(),
                m.properties
                    .get(property::DELAY_TIME_LEVEL)
                    .map(String::as_str),
                m.store_timestamp,
            ),
            keys: m.properties.get(property::KEYS).cloned(),
            uniq_key: m.uniq_key().map(String::from),
            store_timestamp: m.store_timestamp,
            tran_type: sys_flag::transaction_value(m.sys_flag),
        }
    }

    /// Writes the consume-queue unit and index entries of one record. Both writes skip what
    /// they already hold, so a failed dispatch can simply be retried.
    pub fn dispatch(&self, d: &DispatchInfo) -> Result<(), String> {
        if dispatchable(d.tran_type) {
            let q = self
                .find_or_create_queue(&d.topic, d.queue_id)
                .map_err(|e| format!("consume queue {}/{}: {e}", d.topic, d.queue_id))?;
            q.put(d.commit_log_offset, d.size, d.tags_code, d.queue_offset)
                .map_err(|e| format!("consume queue {}/{}: {e}", d.topic, d.queue_id))?;
        }
        if let Some(index) = &self.index {
            if d.tran_type != sys_flag::TRANSACTION_ROLLBACK_TYPE {
                let req = IndexRequest {
                    topic: &d.topic,
                    keys: d.keys.as_deref().unwrap_or(""),
                    uniq_key: d.uniq_key.as_deref(),
                    commit_log_offset: d.commit_log_offset,
                    store_timestamp: d.store_timestamp,
                };
                index.put(&req).map_err(|e| format!("index: {e}"))?;
            }
        }
        self.dispatched_offset.fetch_max(
            (d.commit_log_offset + d.size as i64) as u64,
            Ordering::AcqRel,
        );
        self.last_record
            .store(d.commit_log_offset, Ordering::Release);
        self.last_dispatched_store_ts
            .store(d.store_timestamp, Ordering::Release);
        Ok(())
    }
}

impl MessageStore {
    /// Opens (creating if needed) the store under `config.storePathRootDir` and recovers it:
    /// after a clean stop by checking the last record the shutdown recorded, after a crash by
    /// verifying every record past the checkpoint's offsets (see `recovery`).
    pub fn open(config: MessageStoreConfig) -> Result<MessageStore, StoreError> {
        let root = config.root();
        std::fs::create_dir_all(&root)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", root.display())))?;
        let delay_levels = config
            .delay_levels()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let lock = lock_store(&config.lock_path())?;
        let abnormal = config.abort_path().exists();
        let checkpoint = Checkpoint::open(&config.checkpoint_path())?;
        let commit_log = Arc::new(CommitLog::load(
            &config.commit_log_dir(),
            config.mapped_file_size_commit_log as usize,
            config.warm_mapped_file_enable,
        )?);
        let queues = super::recovery::load_queues(&config)?;
        let index = if config.message_index_enable {
            Some(IndexService::open(IndexConfig {
                dir: config.index_dir(),
                max_hash_slot_num: config.max_hash_slot_num,
                max_index_num: config.max_index_num,
            })?)
        } else {
            None
        };
        let (flushed_tx, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            config,
            commit_log,
            queues: RwLock::new(queues),
            index,
            checkpoint,
            put_tx: Mutex::new(None),
            writer: Mutex::new(None),
            dispatch_queue: Default::default(),
            flushed_tx,
            flush_wake: (Mutex::new(false), Condvar::new()),
            stop: (Mutex::new(false), Condvar::new()),
            running: AtomicBool::new(false),
            disk_full: AtomicBool::new(false),
            dispatch_error: Mutex::new(None),
            dispatch_incomplete: AtomicBool::new(false),
            flush_paused: AtomicBool::new(false),
            fenced: std::sync::OnceLock::new(),
            listener: RwLock::new(None),
            append_listener: std::sync::OnceLock::new(),
            flush_observer: RwLock::new(None),
            topic_queue_table: Mutex::new(HashMap::new()),
            last_dispatched_store_ts: AtomicI64::new(0),
            dispatched_offset: AtomicU64::new(0),
            last_record: AtomicI64::new(-1),
            threads: Mutex::new(Vec::new()),
            lock: Mutex::new(Some(lock)),
            delay_levels,
        });
        super::recovery::recover(&inner, abnormal)?;
        // From here on a crash leaves the abort file behind and the next start verifies.
        File::create(inner.config.abort_path())?;
        let store = MessageStore { inner };
        services::start(&store.inner);
        store.inner.running.store(true, Ordering::Release);
        Ok(store)
    }

    pub fn config(&self) -> &MessageStoreConfig {
        &self.inner.config
    }

    /// Registers the callback run after each dispatch.
    pub fn set_dispatch_listener(&self, listener: DispatchListener) {
        *self.inner.listener.write() = Some(listener);
    }

    /// Registers the callback run after each put is appended (once; later calls are ignored).
    pub fn set_append_listener(&self, listener: AppendListener) {
        let _ = self.inner.append_listener.set(listener);
    }

    /// Registers the callback given each commit-log flush's duration.
    pub fn set_flush_observer(&self, observer: FlushObserver) {
        *self.inner.flush_observer.write() = Some(observer);
    }

    /// Stores one message.
    pub async fn put_message(&self, msg: PutMessage) -> PutResult {
        self.put_messages(vec![msg]).await
    }

    /// Stores messages of one topic and queue as consecutive records (a batch).
    pub async fn put_messages(&self, msgs: Vec<PutMessage>) -> PutResult {
        let inner = &self.inner;
        if !inner.running.load(Ordering::Acquire) {
            return PutResult::error(PutStatus::ServiceNotAvailable(
                "message store is not running".into(),
            ));
        }
        if inner.disk_full.load(Ordering::Acquire) {
            return PutResult::error(PutStatus::ServiceNotAvailable(format!(
                "disk usage is above diskSpaceWarningLevelRatio ({}%): message store is not writable",
                inner.config.disk_space_warning_level_ratio
            )));
        }
        if let Some(e) = inner.dispatch_error.lock().clone() {
            return PutResult::error(PutStatus::ServiceNotAvailable(format!(
                "message store is not writable until queues and index catch up: {e}"
            )));
        }
        if let Some(refused) = inner.refused_when_fenced() {
            return PutResult::error(refused);
        }
        let Some(first) = msgs.first() else {
            return PutResult::error(PutStatus::MessageIllegal("empty batch".into()));
        };
        let topic: Arc<str> = Arc::from(first.topic.as_str());
        let queue_id = first.queue_id;
        let store_host = first.store_host;
        let mut wait = true;
        let mut records = Vec::with_capacity(msgs.len());
        for m in msgs {
            if *m.topic != *topic || m.queue_id != queue_id {
                return PutResult::error(PutStatus::MessageIllegal(
                    "a batch must be of one topic and queue".into(),
                ));
            }
            match self.encode(m) {
                Ok((rec, w)) => {
                    wait &= w;
                    records.push(rec);
                }
                Err(status) => return PutResult::error(status),
            }
        }
        let mut append = match inner.append_now(&topic, queue_id, &mut records) {
            Ok(a) => a,
            Err(status) => return PutResult::error(status),
        };
        append.store_host = store_host;
        let end = append.wrote_offset as u64 + append.wrote_bytes as u64;
        let mut status = PutStatus::PutOk;
        if wait
            && inner.config.flush_disk_type == FlushDiskType::SyncFlush
            && inner.commit_log.flushed_offset() < end
        {
            let mut rx = inner.flushed_tx.subscribe();
            let timeout = Duration::from_millis(inner.config.sync_flush_timeout);
            let fenced = || inner.fenced.get().is_some();
            let flushed =
                tokio::time::timeout(timeout, rx.wait_for(|f| *f >= end || fenced())).await;
            if inner.commit_log.flushed_offset() < end {
                if let Some(refused) = inner.refused_when_fenced() {
                    // Never acknowledged: the flush that should have covered it failed.
                    return PutResult::error(refused);
                }
            }
            if !matches!(flushed, Ok(Ok(_))) {
                tracing::warn!(end, "sync flush did not finish within syncFlushTimeout");
                status = PutStatus::FlushDiskTimeout;
            }
        }
        PutResult {
            status,
            append: Some(append),
        }
    }

    /// Validates a message and lays out its record: everything but the body in `meta` (the
    /// writer patches the offsets), the body as given, so it is copied once, into the map.
    fn encode(&self, m: PutMessage) -> Result<(PendingRecord, bool), PutStatus> {
        rmq_remoting::topic::validate_topic(&m.topic).map_err(PutStatus::MessageIllegal)?;
        if m.queue_id < 0 {
            return Err(PutStatus::MessageIllegal(format!(
                "invalid queue id {}",
                m.queue_id
            )));
        }
        if m.properties.len() > i16::MAX as usize {
            return Err(PutStatus::PropertiesSizeExceeded);
        }
        let store_timestamp = now_millis();
        let tags_code = self.inner.tags_code(
            &m.topic,
            m.properties.get(property::TAGS),
            m.properties.get(property::DELAY_TIME_LEVEL),
            store_timestamp,
        );
        let keys = m.properties.get(property::KEYS).map(String::from);
        let uniq_key = m
            .properties
            .get(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .map(String::from);
        let props = m.properties.as_str();
        let wait = m.wait_store_msg_ok;
        let tran_type = sys_flag::transaction_value(m.sys_flag);
        let topic = m.topic.as_bytes();
        let v2 = topic.len() > 127;
        let host_len = |a: &std::net::SocketAddr| if a.is_ipv6() { 20 } else { 8 };
        let head_len = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + host_len(&m.born_host)
            + 8
            + host_len(&m.store_host)
            + 4
            + 8
            + 4;
        let tail_len = if v2 { 2 } else { 1 } + topic.len() + 2 + props.len();
        let total = head_len + m.body.len() + tail_len;
        if total > self.inner.config.max_message_size {
            return Err(PutStatus::MessageIllegal(format!(
                "message of {total} bytes exceeds maxMessageSize {}",
                self.inner.config.max_message_size
            )));
        }
        let mut sys = m.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
        if m.born_host.is_ipv6() {
            sys |= sys_flag::BORNHOST_V6;
        }
        if m.store_host.is_ipv6() {
            sys |= sys_flag::STOREHOST_V6;
        }
        let mut meta = BytesMut::with_capacity(head_len + tail_len);
        meta.put_i32(total as i32);
        meta.put_i32(if v2 {
            rmq_remoting::message::MESSAGE_MAGIC_CODE_V2
        } else {
            rmq_remoting::message::MESSAGE_MAGIC_CODE_V1
        });
        meta.put_i32(rmq_remoting::message::body_crc(&m.body));
        meta.put_i32(m.queue_id);
        meta.put_i32(m.flag);
        meta.put_i64(0); // queue offset, set by the writer
        meta.put_i64(0); // commit-log offset, set by the writer
        meta.put_i32(sys);
        meta.put_i64(m.born_timestamp);
        put_host(&mut meta, m.born_host);
        meta.put_i64(store_timestamp);
        put_host(&mut meta, m.store_host);
        meta.put_i32(m.reconsume_times);
        meta.put_i64(m.prepared_transaction_offset);
        meta.put_i32(m.body.len() as i32);
        if v2 {
            meta.put_i16(topic.len() as i16);
        } else {
            meta.put_u8(topic.len() as u8);
        }
        meta.put_slice(topic);
        meta.put_i16(props.len() as i16);
        meta.put_slice(props.as_bytes());
        Ok((
            PendingRecord {
                meta,
                head_len,
                body: m.body,
                tags_code,
                keys,
                uniq_key,
                store_timestamp,
                tran_type,
            },
            wait,
        ))
    }

    /// Reads up to `max_count` messages (and about `max_bytes`) of a queue from `offset`.
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: Option<&dyn MessageFilter>,
    ) -> GetResult {
        let mut r = GetResult {
            status: GetStatus::NoMatchedLogicQueue,
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
            messages: Vec::new(),
            queue_offsets: Vec::new(),
            total_bytes: 0,
        };
        let Some(q) = self.inner.find_queue(topic, queue_id) else {
            return r;
        };
        let (min, max) = (q.min_offset(), q.max_offset());
        r.min_offset = min;
        r.max_offset = max;
        if max == 0 {
            r.status = GetStatus::NoMessageInQueue;
            return r;
        }
        if offset < min {
            r.status = GetStatus::OffsetTooSmall;
            r.next_begin_offset = min;
            return r;
        }
        if offset == max {
            r.status = GetStatus::OffsetOverflowOne;
            r.next_begin_offset = offset;
            return r;
        }
        if offset > max {
            r.status = GetStatus::OffsetOverflowBadly;
            r.next_begin_offset = if min == 0 { min } else { max };
            return r;
        }
        let scan = max_count.max(800);
        let units = q.read_units(offset, scan);
        if units.is_empty() {
            r.status = GetStatus::OffsetFoundNull;
            r.next_begin_offset = offset;
            return r;
        }
        let mut next = offset;
        let mut status = GetStatus::NoMatchedMessage;
        for u in &units {
            let CqUnit {
                queue_offset,
                commit_log_offset,
                size,
                tags_code,
            } = *u;
            if !r.messages.is_empty()
                && (r.messages.len() >= max_count || r.total_bytes + size as usize > max_bytes)
            {
                break;
            }
            next = queue_offset + 1;
            if u.is_blank() {
                continue;
            }
            if let Some(f) = filter {
                if !f.matches_tags_code(tags_code) {
                    continue;
                }
            }
            let Some(rec) = self
                .inner
                .commit_log
                .read(commit_log_offset as u64, size as usize)
            else {
                if r.messages.is_empty() {
                    status = GetStatus::MessageWasRemoving;
                }
                continue;
            };
            if let Some(f) = filter {
                if !f.matches_record(&rec) {
                    continue;
                }
            }
            r.total_bytes += rec.len();
            r.messages.push(rec);
            r.queue_offsets.push(queue_offset);
            status = GetStatus::Found;
        }
        r.status = status;
        r.next_begin_offset = next;
        r
    }

    /// Next queue offset: dispatched (`committed`) or assigned by the writer.
    pub fn max_offset_in_queue(&self, topic: &str, queue_id: i32, committed: bool) -> i64 {
        if committed {
            self.inner
                .find_queue(topic, queue_id)
                .map(|q| q.max_offset())
                .unwrap_or(0)
        } else {
            self.inner
                .topic_queue_table
                .lock()
                .get(topic)
                .and_then(|m| m.get(&queue_id).copied())
                .unwrap_or(0)
        }
    }

    pub fn min_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.inner
            .find_queue(topic, queue_id)
            .map(|q| q.min_offset())
            .unwrap_or(0)
    }

    /// The queue offset for a store time (`upper` = last at or before, else first at or after).
    pub fn offset_in_queue_by_time(
        &self,
        topic: &str,
        queue_id: i32,
        timestamp: i64,
        upper: bool,
    ) -> i64 {
        let Some(q) = self.inner.find_queue(topic, queue_id) else {
            return 0;
        };
        let cl = &self.inner.commit_log;
        q.offset_by_time(timestamp, upper, |phys| cl.store_timestamp_at(phys as u64))
    }

    /// The consume-queue unit at `offset` of a queue, if it exists yet.
    pub fn queue_unit(&self, topic: &str, queue_id: i32, offset: i64) -> Option<CqUnit> {
        self.inner.find_queue(topic, queue_id)?.get(offset)
    }

    /// `messageDelayLevel` in milliseconds, level 1 first.
    pub fn delay_levels(&self) -> &[i64] {
        &self.inner.delay_levels
    }

    /// Store time of the message at `offset` of a queue.
    pub fn message_store_timestamp(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let u = self.inner.find_queue(topic, queue_id)?.get(offset)?;
        self.inner
            .commit_log
            .store_timestamp_at(u.commit_log_offset as u64)
    }

    /// Store time of the oldest message still in a queue.
    pub fn earliest_message_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let q = self.inner.find_queue(topic, queue_id)?;
        let min = q.min_offset();
        (min < q.max_offset())
            .then(|| self.message_store_timestamp(topic, queue_id, min))
            .flatten()
    }

    /// The raw record at a commit-log offset (VIEW_MESSAGE_BY_ID).
    pub fn select_one_message_by_offset(&self, commit_log_offset: i64) -> Option<Bytes> {
        if commit_log_offset < 0 {
            return None;
        }
        self.inner.commit_log.read_record(commit_log_offset as u64)
    }

    /// The decoded message at a commit-log offset.
    pub fn look_message_by_offset(&self, commit_log_offset: i64) -> Option<MessageExt> {
        let mut rec = self.select_one_message_by_offset(commit_log_offset)?;
        MessageExt::decode(&mut rec).ok()
    }

    /// Messages of `topic` with `key` (a KEYS entry or the UNIQ_KEY), stored in
    /// `[begin, end]` ms, newest first, at most `max_num`.
    pub fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin: i64,
        end: i64,
    ) -> QueryResult {
        let Some(index) = &self.inner.index else {
            return QueryResult::default();
        };
        let found = index.query(topic, key, max_num, begin, end);
        let mut out = QueryResult {
            messages: Vec::new(),
            index_last_update_timestamp: found.index_last_update_timestamp,
            index_last_update_phyoffset: found.index_last_update_phyoffset,
        };
        for off in found.phy_offsets {
            let Some(rec) = self.select_one_message_by_offset(off) else {
                continue;
            };
            let mut b = rec.clone();
            let Ok(m) = MessageExt::decode(&mut b) else {
                continue;
            };
            // The index is a hash table: confirm the key on the message itself.
            if m.topic == topic && (m.uniq_key() == Some(key) || m.keys().any(|k| k == key)) {
                out.messages.push(rec);
            }
        }
        out
    }

    /// Deletes the queues (and their files) of `topics`.
    pub fn delete_topics(&self, topics: &[&str]) -> usize {
        let mut n = 0;
        for t in topics {
            if rmq_remoting::topic::validate_topic(t).is_err() {
                continue;
            }
            let removed = self.inner.queues.write().remove(*t);
            if let Some(qs) = removed {
                for q in qs.values() {
                    if let Err(e) = q.destroy() {
                        tracing::error!(topic = t, error = %e, "cannot delete consume queue");
                    }
                }
                let _ = std::fs::remove_dir_all(self.inner.config.consume_queue_dir().join(t));
                n += 1;
            }
            self.inner.topic_queue_table.lock().remove(*t);
        }
        n
    }

    /// Queue ids that exist for `topic`.
    pub fn queue_ids(&self, topic: &str) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .inner
            .queues
            .read()
            .get(topic)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Store time of the oldest record in the commit log.
    pub fn earliest_commit_log_time(&self) -> Option<i64> {
        let cl = &self.inner.commit_log;
        if cl.max_offset() <= cl.min_offset() {
            return None;
        }
        cl.store_timestamp_at(cl.min_offset())
    }

    pub fn min_phy_offset(&self) -> i64 {
        self.inner.commit_log.min_offset() as i64
    }

    pub fn max_phy_offset(&self) -> i64 {
        self.inner.commit_log.max_offset() as i64
    }

    /// Whether the record at commit-log offset `phy` lies so far behind the newest data that
    /// RocketMQ counts it as no longer in memory: more than `accessMessageInMemoryMaxRatio` %
    /// of the memory (RocketMQ's `checkInDiskByCommitOffset`).
    pub fn is_beyond_memory(&self, phy: i64) -> bool {
        let window = (super::memory::total_memory() as f64
            * (self.inner.config.access_message_in_memory_max_ratio as f64 / 100.0))
            as i64;
        self.max_phy_offset() - phy > window
    }

    /// RocketMQ's `checkInDiskByConsumeOffset`: the queue holds a unit at `offset` and its
    /// record is beyond memory.
    pub fn is_beyond_memory_at(&self, topic: &str, queue_id: i32, offset: i64) -> bool {
        self.queue_unit(topic, queue_id, offset)
            .is_some_and(|u| self.is_beyond_memory(u.commit_log_offset))
    }

    pub fn flushed_phy_offset(&self) -> i64 {
        self.inner.commit_log.flushed_offset() as i64
    }

    /// Commit-log offset up to which queues and index are built.
    pub fn dispatched_phy_offset(&self) -> i64 {
        self.inner.dispatched_offset.load(Ordering::Acquire) as i64
    }

    /// Test support: stops the commit-log flusher from flushing until called with `false`,
    /// as a disk that never completes would (SYNC_FLUSH puts then time out).
    #[doc(hidden)]
    /// Why the store stopped taking writes for good (a flush failed), if it did.
    pub fn fenced(&self) -> Option<String> {
        self.inner.fenced.get().cloned()
    }

    pub fn set_flush_paused(&self, paused: bool) {
        self.inner.flush_paused.store(paused, Ordering::Release);
    }

    /// Whether appends are refused for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        self.inner.disk_full.load(Ordering::Acquire)
    }

    /// Runs one retention pass now (normally every `cleanResourceInterval`).
    pub fn clean_now(&self, force_hour: bool) {
        super::retention::run(&self.inner, force_hour);
    }

    /// Stops the threads, flushes everything, writes the checkpoint and removes the abort
    /// file, so the next open recovers quickly.
    pub fn shutdown(&self) {
        services::shutdown(&self.inner);
    }
}

fn put_host(b: &mut BytesMut, addr: std::net::SocketAddr) {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => b.put_slice(&ip.octets()),
        std::net::IpAddr::V6(ip) => b.put_slice(&ip.octets()),
    }
    b.put_i32(addr.port() as i32);
}

fn lock_store(path: &Path) -> Result<File, StoreError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    // A lock just released may still be held for a moment: a child process forked by any
    // thread shares our descriptor until it execs, and a previous broker may still be
    // exiting. Only a lock held for a whole second means another live store.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        // SAFETY: plain syscall on our own descriptor.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(f);
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Locked {
                path: path.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
