//! The checkpoint file: up to when the commit log, consume queues and index are known to be on
//! disk (by store timestamp), so recovery after a crash knows where to start.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

const SIZE: usize = 4096;

pub struct Checkpoint {
    file: File,
    pub physic_msg_timestamp: AtomicI64,
    pub logics_msg_timestamp: AtomicI64,
    pub index_msg_timestamp: AtomicI64,
    pub master_flushed_offset: AtomicI64,
    pub confirm_phy_offset: AtomicI64,
}

impl Checkpoint {
    pub fn open(path: &Path) -> io::Result<Checkpoint> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
        let mut buf = [0u8; 40];
        let n = file.read_at(&mut buf, 0)?;
        let field = |i: usize| {
            if n >= i * 8 + 8 {
                i64::from_be_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or_default())
            } else {
                0
            }
        };
        if file.metadata()?.len() < SIZE as u64 {
            file.set_len(SIZE as u64)?;
        }
        Ok(Checkpoint {
            physic_msg_timestamp: AtomicI64::new(field(0)),
            logics_msg_timestamp: AtomicI64::new(field(1)),
            index_msg_timestamp: AtomicI64::new(field(2)),
            master_flushed_offset: AtomicI64::new(field(3)),
            confirm_phy_offset: AtomicI64::new(field(4)),
            file,
        })
    }

    /// Writes the fields and makes them durable.
    pub fn flush(&self) -> io::Result<()> {
        let mut buf = [0u8; 40];
        for (i, v) in [
            &self.physic_msg_timestamp,
            &self.logics_msg_timestamp,
            &self.index_msg_timestamp,
            &self.master_flushed_offset,
            &self.confirm_phy_offset,
        ]
        .iter()
        .enumerate()
        {
            buf[i * 8..i * 8 + 8].copy_from_slice(&v.load(Ordering::Acquire).to_be_bytes());
        }
        self.file.write_all_at(&buf, 0)?;
        self.file.sync_data()
    }

    /// The oldest of the three timestamps: everything stored before it is consistent.
    pub fn min_timestamp(&self, with_index: bool) -> i64 {
        let mut m = self
            .physic_msg_timestamp
            .load(Ordering::Acquire)
            .min(self.logics_msg_timestamp.load(Ordering::Acquire));
        if with_index {
            m = m.min(self.index_msg_timestamp.load(Ordering::Acquire));
        }
        m
    }
}
