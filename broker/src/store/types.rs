//! What goes into the store and what comes out.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use rmq_remoting::message::Properties;

/// A message to store.
#[derive(Debug, Clone)]
pub struct PutMessage {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub body: Bytes,
    /// Kept in their wire form; the record is laid out from it as it is.
    pub properties: Properties,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// Whether a SYNC_FLUSH put answers only once flushed: a client's `WAIT` property (true
    /// when absent, else only "true", as Java reads it); the broker's own puts (delivery of delayed messages, retries,
    /// transaction records) do not wait. Kept apart from the properties so they stay as sent.
    pub wait_store_msg_ok: bool,
}

/// RocketMQ's `PutMessageStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutStatus {
    PutOk,
    /// Stored, but not flushed within `syncFlushTimeout`.
    FlushDiskTimeout,
    /// The store refuses writes (shut down, disk full, ...); the text says why.
    ServiceNotAvailable(String),
    CreateMappedFileFailed(String),
    /// The message breaks a rule (size, topic); the text says which.
    MessageIllegal(String),
    PropertiesSizeExceeded,
    UnknownError(String),
}

impl PutStatus {
    /// Whether the message is stored (possibly with a flush warning).
    pub fn is_stored(&self) -> bool {
        matches!(self, PutStatus::PutOk | PutStatus::FlushDiskTimeout)
    }
}

/// Where a stored message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Commit-log offset of the first record.
    pub wrote_offset: i64,
    /// Bytes written, all records together.
    pub wrote_bytes: usize,
    /// Queue offset of the first record.
    pub logics_offset: i64,
    pub store_timestamp: i64,
    /// Commit-log offset of each record.
    pub offsets: Vec<i64>,
    /// The store host the records carry (for their message ids).
    pub store_host: SocketAddr,
}

impl AppendResult {
    /// The offset message id of each record.
    pub fn msg_ids(&self) -> Vec<String> {
        self.offsets
            .iter()
            .map(|o| rmq_remoting::message::encode_offset_msg_id(self.store_host, *o))
            .collect()
    }
}

impl PutMessage {
    /// A stored message put again (to its real topic, a retry topic, a new half...) with
    /// `props`, stored here: same topic, queue, body, flags, born time and host, reconsume
    /// count; callers change what differs.
    pub fn copy_of(
        m: &rmq_remoting::message::MessageExt,
        props: &HashMap<String, String>,
        store_host: SocketAddr,
    ) -> PutMessage {
        PutMessage {
            topic: m.topic.clone(),
            queue_id: m.queue_id,
            flag: m.flag,
            body: m.body.clone(),
            properties: Properties::from_map(props),
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: m.born_host,
            store_host,
            reconsume_times: m.reconsume_times,
            prepared_transaction_offset: m.prepared_transaction_offset,
            wait_store_msg_ok: false,
        }
    }
}

/// The answer to a put.
#[derive(Debug, Clone)]
pub struct PutResult {
    pub status: PutStatus,
    pub append: Option<AppendResult>,
}

impl PutResult {
    pub fn error(status: PutStatus) -> Self {
        PutResult {
            status,
            append: None,
        }
    }
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

/// Messages read from a queue: each record a zero-copy slice of the commit log mapping.
#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    pub messages: Vec<Bytes>,
    pub queue_offsets: Vec<i64>,
    pub total_bytes: usize,
}

/// Chooses messages during a read: first by the consume-queue tag code, then (if that
/// passes) by the stored record itself.
pub trait MessageFilter {
    fn matches_tags_code(&self, tags_code: i64) -> bool;
    fn matches_record(&self, _record: &Bytes) -> bool {
        true
    }
}

/// Messages found by key.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub messages: Vec<Bytes>,
    pub index_last_update_timestamp: i64,
    pub index_last_update_phyoffset: i64,
}
