//! The message store: commit log, consume queues and index on memory-mapped files, with group
//! commit, crash recovery and retention. Usable on its own; the broker's network layer sits on
//! top of [`MessageStore`].

mod append;
pub mod checkpoint;
pub mod commit_log;
pub mod config;
pub mod consume_queue;
pub mod index;
pub mod mapped_file;
pub mod memory;
pub mod message_store;
mod recovery;
mod replica;
pub mod retention;
mod scan;
mod services;
pub mod types;

pub use config::{FlushDiskType, MessageStoreConfig};
pub use consume_queue::CqUnit;
pub use message_store::{
    AppendListener, DispatchListener, MessageStore, StoreError, SCHEDULE_TOPIC,
};
pub use types::*;
