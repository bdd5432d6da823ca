//! The message store: commit log, consume queues and index on memory-mapped files.

pub mod index;
