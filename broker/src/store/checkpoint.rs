//! The checkpoint file: up to when the commit log, consume queues and index are known to be on
//! disk, so recovery after a crash knows where to start.
//!
//! The first 40 bytes are RocketMQ's (`StoreCheckpoint`: three store timestamps, the master's
//! flushed offset, the confirm offset). After them this store keeps offsets, which recovery
//! can start from exactly instead of guessing a file from timestamps:
//!
//! | bytes | field |
//! | --- | --- |
//! | 40..48 | magic `RMQCKPT1` |
//! | 48..56 | commit-log offset below which every record is flushed |
//! | 56..64 | commit-log offset below which every record's queue unit and index entries are flushed |
//! | 64..72 | clean stop: the commit log's end (-1 while running or after a crash) |
//! | 72..80 | clean stop: offset of the last record (-1: none, or not known) |
//! | 80..84 | CRC-32 of bytes 0..80 |
//!
//! The CRC covers RocketMQ's fields too: a checkpoint rewritten by a store that does not know
//! these offsets (or torn) fails it, and recovery falls back to the timestamps.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;

const SIZE: usize = 4096;
const MAGIC: &[u8; 8] = b"RMQCKPT1";
const LEN: usize = 84;

pub struct Checkpoint {
    file: File,
    pub physic_msg_timestamp: AtomicI64,
    pub logics_msg_timestamp: AtomicI64,
    pub index_msg_timestamp: AtomicI64,
    pub master_flushed_offset: AtomicI64,
    pub confirm_phy_offset: AtomicI64,
    /// Every record below is flushed (-1: not known).
    pub physic_offset: AtomicI64,
    /// Every record below has its queue unit and index entries flushed (-1: not known).
    pub logics_offset: AtomicI64,
    /// Set only by a clean shutdown: the commit log's end.
    pub clean_end: AtomicI64,
    /// Set only by a clean shutdown: where the last record starts (-1: not known).
    pub clean_last: AtomicI64,
    /// Bumped by every cut of the commit log: an offset measured before a cut is stale.
    epoch: Mutex<u64>,
}

/// What a clean shutdown left: the commit log's end and where its last record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanStop {
    pub end: u64,
    pub last_record: u64,
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
        let mut buf = [0u8; LEN];
        let n = file.read_at(&mut buf, 0)?;
        let field = |i: usize| {
            if n >= i * 8 + 8 {
                i64::from_be_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or_default())
            } else {
                0
            }
        };
        let extended = n >= LEN
            && &buf[40..48] == MAGIC
            && crc32fast::hash(&buf[..80]).to_be_bytes() == buf[80..84];
        let ext = |i: usize| if extended { field(i) } else { -1 };
        if file.metadata()?.len() < SIZE as u64 {
            file.set_len(SIZE as u64)?;
        }
        Ok(Checkpoint {
            physic_msg_timestamp: AtomicI64::new(field(0)),
            logics_msg_timestamp: AtomicI64::new(field(1)),
            index_msg_timestamp: AtomicI64::new(field(2)),
            master_flushed_offset: AtomicI64::new(field(3)),
            confirm_phy_offset: AtomicI64::new(field(4)),
            physic_offset: AtomicI64::new(ext(6)),
            logics_offset: AtomicI64::new(ext(7)),
            clean_end: AtomicI64::new(ext(8)),
            clean_last: AtomicI64::new(ext(9)),
            epoch: Mutex::new(0),
            file,
        })
    }

    /// Writes the fields and makes them durable.
    pub fn flush(&self) -> io::Result<()> {
        let mut buf = [0u8; LEN];
        let fields = [
            &self.physic_msg_timestamp,
            &self.logics_msg_timestamp,
            &self.index_msg_timestamp,
            &self.master_flushed_offset,
            &self.confirm_phy_offset,
        ];
        for (i, v) in fields.iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&v.load(Ordering::Acquire).to_be_bytes());
        }
        buf[40..48].copy_from_slice(MAGIC);
        let offsets = [
            &self.physic_offset,
            &self.logics_offset,
            &self.clean_end,
            &self.clean_last,
        ];
        for (i, v) in offsets.iter().enumerate() {
            let at = 48 + i * 8;
            buf[at..at + 8].copy_from_slice(&v.load(Ordering::Acquire).to_be_bytes());
        }
        let crc = crc32fast::hash(&buf[..80]);
        buf[80..84].copy_from_slice(&crc.to_be_bytes());
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

    /// The offsets below which records are flushed and dispatched durably, if this store
    /// wrote them: `(physic, logics)`.
    pub fn safe_offsets(&self) -> Option<(u64, u64)> {
        let p = self.physic_offset.load(Ordering::Acquire);
        let l = self.logics_offset.load(Ordering::Acquire);
        (p >= 0 && l >= 0).then_some((p as u64, l as u64))
    }

    /// What the last clean shutdown left, if it did and knew its last record.
    pub fn clean_stop(&self) -> Option<CleanStop> {
        let end = self.clean_end.load(Ordering::Acquire);
        let last = self.clean_last.load(Ordering::Acquire);
        (end >= 0 && last >= 0 && last < end).then_some(CleanStop {
            end: end as u64,
            last_record: last as u64,
        })
    }

    /// The epoch an offset is measured in: pass it to the `set_*` calls made with it.
    pub fn epoch(&self) -> u64 {
        *self.epoch.lock()
    }

    /// Records that everything below `offset` is flushed, unless the commit log was cut since
    /// `epoch`.
    pub fn set_physic_offset(&self, offset: u64, epoch: u64) {
        let e = self.epoch.lock();
        if *e == epoch {
            self.physic_offset.store(offset as i64, Ordering::Release);
        }
    }

    /// Records that everything below `offset` is dispatched durably, unless the commit log
    /// was cut since `epoch`.
    pub fn set_logics_offset(&self, offset: u64, epoch: u64) {
        let e = self.epoch.lock();
        if *e == epoch {
            self.logics_offset.store(offset as i64, Ordering::Release);
        }
    }

    /// The commit log was cut back to `end`: no offset may point past it any more, and
    /// offsets measured before the cut are refused. Durable before returning, so that records
    /// written at the cut's place are never taken for ones the checkpoint vouched for.
    pub fn cut(&self, end: u64) -> io::Result<()> {
        {
            let mut e = self.epoch.lock();
            *e += 1;
            for v in [&self.physic_offset, &self.logics_offset] {
                v.fetch_min(end as i64, Ordering::AcqRel);
            }
        }
        self.flush()
    }

    /// At open, once recovery is done: the offsets recovery proved, and no clean stop until
    /// the next clean shutdown says so.
    pub fn opened(&self, physic: u64, logics: u64) -> io::Result<()> {
        self.physic_offset.store(physic as i64, Ordering::Release);
        self.logics_offset.store(logics as i64, Ordering::Release);
        self.clean_end.store(-1, Ordering::Release);
        self.clean_last.store(-1, Ordering::Release);
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_a_foreign_rewrite_drops_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        let c = Checkpoint::open(&path).unwrap();
        assert_eq!(
            c.safe_offsets(),
            None,
            "a new checkpoint vouches for nothing"
        );
        assert_eq!(c.clean_stop(), None);
        c.physic_msg_timestamp.store(7, Ordering::Release);
        c.set_physic_offset(4096, c.epoch());
        c.set_logics_offset(2048, c.epoch());
        c.clean_end.store(4096, Ordering::Release);
        c.clean_last.store(4000, Ordering::Release);
        c.flush().unwrap();
        drop(c);
        let c = Checkpoint::open(&path).unwrap();
        assert_eq!(c.physic_msg_timestamp.load(Ordering::Acquire), 7);
        assert_eq!(c.safe_offsets(), Some((4096, 2048)));
        assert_eq!(
            c.clean_stop(),
            Some(CleanStop {
                end: 4096,
                last_record: 4000
            })
        );
        drop(c);
        // RocketMQ rewrites its 40 bytes and leaves the rest: the CRC no longer matches.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&9i64.to_be_bytes(), 0).unwrap();
        drop(f);
        let c = Checkpoint::open(&path).unwrap();
        assert_eq!(c.physic_msg_timestamp.load(Ordering::Acquire), 9);
        assert_eq!(c.safe_offsets(), None);
        assert_eq!(c.clean_stop(), None);
    }

    #[test]
    fn a_cut_lowers_the_offsets_and_refuses_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint::open(&dir.path().join("checkpoint")).unwrap();
        c.opened(1000, 900).unwrap();
        let before = c.epoch();
        c.cut(500).unwrap();
        assert_eq!(c.safe_offsets(), Some((500, 500)));
        // A flusher that measured 1000 before the cut must not store it after.
        c.set_physic_offset(1000, before);
        c.set_logics_offset(1000, before);
        assert_eq!(c.safe_offsets(), Some((500, 500)));
        c.set_physic_offset(600, c.epoch());
        assert_eq!(c.safe_offsets(), Some((600, 500)));
    }
}
