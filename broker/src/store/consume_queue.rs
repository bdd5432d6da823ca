//! Consume queues: per topic and queue id, one 20-byte unit per message (commit-log offset,
//! size, tag hash code), so a queue offset finds its message in O(1).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::mapped_file::{load_dir, MappedFile};

/// Bytes per unit.
pub const CQ_UNIT_SIZE: usize = 20;

/// One consume-queue unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    /// Logical offset (message count) in the queue.
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub size: i32,
    pub tags_code: i64,
}

impl CqUnit {
    /// A filler unit (`0, i32::MAX, 0`), written over gaps.
    pub fn is_blank(&self) -> bool {
        self.commit_log_offset == 0 && self.size == i32::MAX && self.tags_code == 0
    }
}

pub struct ConsumeQueue {
    topic: String,
    queue_id: i32,
    dir: PathBuf,
    file_size: usize,
    files: RwLock<Vec<Arc<MappedFile>>>,
    /// First valid byte (units below point into deleted commit log).
    min_logic_offset: AtomicU64,
    /// End (offset + size) of the last unit's record in the commit log.
    max_phys_end: AtomicI64,
}

fn encode_unit(phys: i64, size: i32, tags: i64) -> [u8; CQ_UNIT_SIZE] {
    let mut b = [0u8; CQ_UNIT_SIZE];
    b[..8].copy_from_slice(&phys.to_be_bytes());
    b[8..12].copy_from_slice(&size.to_be_bytes());
    b[12..].copy_from_slice(&tags.to_be_bytes());
    b
}

fn decode_unit(b: &[u8]) -> (i64, i32, i64) {
    (
        i64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
        i32::from_be_bytes(b[8..12].try_into().unwrap_or_default()),
        i64::from_be_bytes(b[12..20].try_into().unwrap_or_default()),
    )
}

impl ConsumeQueue {
    /// Maps `root/<topic>/<queue_id>/*` and finds the end of its data.
    pub fn load(
        root: &Path,
        topic: &str,
        queue_id: i32,
        file_size: usize,
    ) -> io::Result<ConsumeQueue> {
        let dir = root.join(topic).join(queue_id.to_string());
        let files = load_dir(&dir, file_size)?;
        let cq = ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            dir,
            file_size,
            min_logic_offset: AtomicU64::new(files.first().map(|f| f.from_offset()).unwrap_or(0)),
            files: RwLock::new(files),
            max_phys_end: AtomicI64::new(0),
        };
        cq.recover();
        Ok(cq)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }

    /// Positions every file at its first invalid unit, as RocketMQ does, checking the last
    /// three files: a file older than those was flushed long before the checkpoint. A file
    /// that ends early (its pages were never synced when the power went: zeroes) ends the
    /// queue there; the files after it go, and recovery rebuilds their units from the commit
    /// log (dispatch skips the units a queue already holds, and fills the rest).
    fn recover(&self) {
        let mut files = self.files.write();
        let n = files.len();
        let mut end = None;
        for (i, f) in files.iter().enumerate() {
            if i + 3 < n {
                f.set_positions(f.size());
                continue;
            }
            let mut pos = 0;
            let mut unit = [0u8; CQ_UNIT_SIZE];
            while pos + CQ_UNIT_SIZE <= f.size() && f.read_raw(pos, &mut unit) {
                let (phys, size, _) = decode_unit(&unit);
                if phys < 0 || size <= 0 {
                    break;
                }
                pos += CQ_UNIT_SIZE;
            }
            f.set_positions(pos);
            if pos + CQ_UNIT_SIZE <= f.size() {
                end = Some(i);
                break;
            }
        }
        if let Some(i) = end {
            while files.len() > i + 1 {
                let Some(f) = files.pop() else { break };
                tracing::warn!(file = %f.path().display(), "consume queue file past a hole removed; recovery rebuilds it");
                if let Err(e) = f.destroy() {
                    tracing::error!(error = %e, "cannot remove a consume queue file");
                }
            }
        }
        drop(files);
        self.max_phys_end.store(
            self.last_unit().map(|u| unit_end(&u)).unwrap_or(0),
            Ordering::Release,
        );
    }

    pub(crate) fn last_unit(&self) -> Option<CqUnit> {
        let max = self.max_offset();
        if max == 0 || max <= self.min_offset() {
            return None;
        }
        // Walk back over blanks to the last real unit.
        let mut i = max - 1;
        loop {
            let u = self.get(i)?;
            if !u.is_blank() {
                return Some(u);
            }
            if i == self.min_offset() {
                return None;
            }
            i -= 1;
        }
    }

    /// Next logical offset (count of units written).
    pub fn max_offset(&self) -> i64 {
        self.files
            .read()
            .last()
            .map(|f| ((f.from_offset() + f.wrote() as u64) / CQ_UNIT_SIZE as u64) as i64)
            .unwrap_or_else(|| {
                (self.min_logic_offset.load(Ordering::Acquire) / CQ_UNIT_SIZE as u64) as i64
            })
    }

    /// First logical offset still readable.
    pub fn min_offset(&self) -> i64 {
        (self.min_logic_offset.load(Ordering::Acquire) / CQ_UNIT_SIZE as u64) as i64
    }

    /// End of the last dispatched record in the commit log.
    pub fn max_phys_end(&self) -> i64 {
        self.max_phys_end.load(Ordering::Acquire)
    }

    fn file_for_byte(&self, byte: u64) -> Option<Arc<MappedFile>> {
        let files = self.files.read();
        let first = files.first()?;
        if byte < first.from_offset() {
            return None;
        }
        let idx = ((byte - first.from_offset()) / self.file_size as u64) as usize;
        files.get(idx).filter(|f| f.from_offset() <= byte).cloned()
    }

    /// The unit at logical offset `index`.
    pub fn get(&self, index: i64) -> Option<CqUnit> {
        if index < 0 {
            return None;
        }
        // A client's offset (a committed one, read back by GET_CONSUME_STATS) can be any i64.
        let byte = (index as u64).checked_mul(CQ_UNIT_SIZE as u64)?;
        let f = self.file_for_byte(byte)?;
        let pos = (byte - f.from_offset()) as usize;
        let b = f.slice(pos, CQ_UNIT_SIZE)?;
        let (phys, size, tags) = decode_unit(&b);
        Some(CqUnit {
            queue_offset: index,
            commit_log_offset: phys,
            size,
            tags_code: tags,
        })
    }

    /// Up to `max` consecutive units from `start` (stops at the end of the data).
    pub fn read_units(&self, start: i64, max: usize) -> Vec<CqUnit> {
        let mut out = Vec::with_capacity(max.min(1024));
        let mut i = start.max(self.min_offset());
        let end = self.max_offset();
        while out.len() < max && i < end {
            let byte = i as u64 * CQ_UNIT_SIZE as u64;
            let Some(f) = self.file_for_byte(byte) else {
                break;
            };
            let pos = (byte - f.from_offset()) as usize;
            let avail = f.wrote().saturating_sub(pos) / CQ_UNIT_SIZE;
            let take = avail.min(max - out.len());
            if take == 0 {
                break;
            }
            let Some(b) = f.slice(pos, take * CQ_UNIT_SIZE) else {
                break;
            };
            for (k, chunk) in b.chunks_exact(CQ_UNIT_SIZE).enumerate() {
                let (phys, size, tags) = decode_unit(chunk);
                out.push(CqUnit {
                    queue_offset: i + k as i64,
                    commit_log_offset: phys,
                    size,
                    tags_code: tags,
                });
            }
            i += take as i64;
        }
        out
    }

    /// Appends the unit for `queue_offset`. Idempotent: a unit already written is skipped
    /// (re-dispatch after recovery); a gap is filled with blank units and logged.
    pub fn put(&self, phys: i64, size: i32, tags: i64, queue_offset: i64) -> io::Result<()> {
        let expect = queue_offset as u64 * CQ_UNIT_SIZE as u64;
        loop {
            let file = self.last_file_for_write(expect)?;
            let cur = file.from_offset() + file.wrote() as u64;
            if expect < cur {
                return Ok(()); // already built
            }
            let pos = file.wrote();
            if cur < expect {
                tracing::warn!(topic = %self.topic, queue = self.queue_id, at = cur / 20, expect = queue_offset, "consume queue gap, filling blanks");
                file.write_at(pos, &encode_unit(0, i32::MAX, 0));
                file.publish(pos + CQ_UNIT_SIZE);
                continue;
            }
            file.write_at(pos, &encode_unit(phys, size, tags));
            file.publish(pos + CQ_UNIT_SIZE);
            self.max_phys_end
                .store(phys + size as i64, Ordering::Release);
            return Ok(());
        }
    }

    /// The file new units go to, creating it (or the next one) when needed.
    fn last_file_for_write(&self, expect: u64) -> io::Result<Arc<MappedFile>> {
        if let Some(f) = self.files.read().last() {
            if !f.is_full() {
                return Ok(f.clone());
            }
        }
        let mut files = self.files.write();
        let from = match files.last() {
            Some(f) if f.is_full() => f.from_offset() + f.size() as u64,
            Some(f) => return Ok(f.clone()),
            // The first file starts at the file boundary holding `expect`; units before it
            // are blanks (their messages were deleted).
            None => expect - expect % self.file_size as u64,
        };
        let f = Arc::new(MappedFile::create(&self.dir, from, self.file_size, false)?);
        if files.is_empty() {
            self.min_logic_offset.store(expect, Ordering::Release);
            // Mark the skipped range as blanks so positions stay aligned.
            let mut pos = 0;
            while (from + pos as u64) < expect {
                f.write_at(pos, &encode_unit(0, i32::MAX, 0));
                pos += CQ_UNIT_SIZE;
            }
            f.publish(pos);
        }
        files.push(f.clone());
        Ok(f)
    }

    /// Recovery: removes units whose record ends past `phys_end` (a cut commit log tail).
    /// `live`: readers may hold slices, so a cut inside a file replaces it with a copy.
    pub fn truncate_dirty(&self, phys_end: i64, live: bool) -> io::Result<()> {
        let max = self.max_offset();
        let dirty = max > self.min_offset()
            && self
                .get(max - 1)
                .map(|u| !u.is_blank() && unit_end(&u) > phys_end)
                .unwrap_or(false);
        if dirty {
            // Binary search for the first unit whose record ends past the cut.
            let (mut lo, mut hi) = (self.min_offset(), max - 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.get(mid) {
                    Some(m) if m.is_blank() || unit_end(&m) <= phys_end => lo = mid + 1,
                    _ => hi = mid,
                }
            }
            self.cut_at(lo, live)?;
        }
        self.max_phys_end.store(
            self.last_unit().map(|u| unit_end(&u)).unwrap_or(0),
            Ordering::Release,
        );
        Ok(())
    }

    /// Drops every unit from logical offset `index` on.
    fn cut_at(&self, index: i64, live: bool) -> io::Result<()> {
        let byte = index as u64 * CQ_UNIT_SIZE as u64;
        let mut files = self.files.write();
        while let Some(last) = files.last() {
            if last.from_offset() >= byte && files.len() > 1 {
                last.destroy()?;
                files.pop();
            } else {
                break;
            }
        }
        if let Some(last) = files.last_mut() {
            let pos = byte.saturating_sub(last.from_offset()) as usize;
            if live && last.wrote() > pos {
                *last = Arc::new(last.cut_copy(pos)?);
            } else {
                last.truncate_to(pos)?;
            }
        }
        tracing::warn!(topic = %self.topic, queue = self.queue_id, from = index, "consume queue units past the commit log end removed");
        Ok(())
    }

    /// The offset of the first message stored at or after `timestamp` (`upper` = false), or
    /// the last stored at or before it (`upper` = true), using the commit log's timestamps.
    pub fn offset_by_time(
        &self,
        timestamp: i64,
        upper: bool,
        time_at: impl Fn(i64) -> Option<i64>,
    ) -> i64 {
        let (min, max) = (self.min_offset(), self.max_offset());
        if max <= min {
            return min;
        }
        let time_of = |i: i64| -> Option<i64> {
            let u = self.get(i)?;
            if u.is_blank() {
                return None;
            }
            time_at(u.commit_log_offset)
        };
        // Lower bound: first index with time >= timestamp.
        let (mut lo, mut hi) = (min, max);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match time_of(mid) {
                Some(t) if t < timestamp => lo = mid + 1,
                Some(_) => hi = mid,
                None => lo = mid + 1,
            }
        }
        if !upper {
            return lo;
        }
        // Upper: the last index with time <= timestamp.
        let (mut lo2, mut hi2) = (min, max);
        while lo2 < hi2 {
            let mid = lo2 + (hi2 - lo2) / 2;
            match time_of(mid) {
                Some(t) if t <= timestamp => lo2 = mid + 1,
                Some(_) => hi2 = mid,
                None => lo2 = mid + 1,
            }
        }
        (lo2 - 1).max(min)
    }

    /// For the checkpoint, after a flush: where the first record starts whose unit is not
    /// flushed yet (`None`: every unit is). Units are in commit-log order, so every record
    /// of this queue before it has its unit on disk.
    pub fn first_unflushed_phys(&self) -> Option<i64> {
        let files = self.files.read();
        for f in files.iter() {
            let (mut pos, wrote) = (f.flushed(), f.wrote());
            while pos + CQ_UNIT_SIZE <= wrote {
                let b = f.slice(pos, CQ_UNIT_SIZE)?;
                let (phys, size, tags) = decode_unit(&b);
                let blank = phys == 0 && size == i32::MAX && tags == 0;
                if !blank {
                    return Some(phys);
                }
                pos += CQ_UNIT_SIZE;
            }
        }
        None
    }

    /// Recovery after a crash: units of records from `phys` on may be in the page cache only.
    /// The files that may hold them are flushed again whole (a flush of pages already on
    /// disk costs little) before the checkpoint vouches for them.
    pub fn mark_unflushed_from_phys(&self, phys: i64) {
        let files = self.files.read();
        for f in files.iter().rev() {
            f.mark_unflushed_from(0);
            let first = f.slice(0, CQ_UNIT_SIZE).map(|b| decode_unit(&b));
            let blank = |(p, size, tags): (i64, i32, i64)| p == 0 && size == i32::MAX && tags == 0;
            if first.is_some_and(|u| !blank(u) && u.0 < phys) {
                break; // this file holds the first such unit: earlier ones are older
            }
        }
    }

    /// Flushes dirty files; `least_pages` as for the commit log.
    pub fn flush(&self, least_pages: usize) -> io::Result<()> {
        let files: Vec<Arc<MappedFile>> = self
            .files
            .read()
            .iter()
            .filter(|f| f.flushed() < f.wrote())
            .cloned()
            .collect();
        for f in files {
            f.flush(least_pages)?;
        }
        Ok(())
    }

    /// Retention: deletes files whose every unit points below `min_phys` (never the last
    /// file), then moves the min offset past units that do. Returns files deleted.
    pub fn delete_expired(&self, min_phys: i64) -> io::Result<usize> {
        let mut deleted = 0;
        loop {
            let first = {
                let files = self.files.read();
                if files.len() <= 1 {
                    break;
                }
                files[0].clone()
            };
            let last_pos = first.size() - CQ_UNIT_SIZE;
            let Some(b) = first.slice(last_pos, CQ_UNIT_SIZE) else {
                break;
            };
            let (phys, size, _) = decode_unit(&b);
            let blank = phys == 0 && size == i32::MAX;
            if !blank && phys >= min_phys {
                break;
            }
            first.destroy()?;
            self.files.write().retain(|f| !Arc::ptr_eq(f, &first));
            deleted += 1;
        }
        self.correct_min_offset(min_phys);
        Ok(deleted)
    }

    /// Moves the min offset to the first unit whose record is still in the commit log.
    pub fn correct_min_offset(&self, min_phys: i64) {
        let Some(first) = self.files.read().first().cloned() else {
            return;
        };
        let cur = self
            .min_logic_offset
            .load(Ordering::Acquire)
            .max(first.from_offset());
        let mut byte = cur;
        let end = first.from_offset() + first.wrote() as u64;
        while byte < end {
            let Some(b) = first.slice((byte - first.from_offset()) as usize, CQ_UNIT_SIZE) else {
                break;
            };
            let (phys, size, _) = decode_unit(&b);
            let blank = phys == 0 && size == i32::MAX;
            if !blank && phys >= min_phys {
                break;
            }
            byte += CQ_UNIT_SIZE as u64;
        }
        self.min_logic_offset.store(byte, Ordering::Release);
    }

    /// Deletes every file (topic deleted).
    pub fn destroy(&self) -> io::Result<()> {
        let mut files = self.files.write();
        for f in files.drain(..) {
            f.destroy()?;
        }
        let _ = std::fs::remove_dir(&self.dir);
        Ok(())
    }
}

fn unit_end(u: &CqUnit) -> i64 {
    u.commit_log_offset + u.size as i64
}
