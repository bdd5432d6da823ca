//! Recovery's reading of the commit log: records verified from a known record boundary to
//! the end of valid data (magic, size, fields adding up, stored offset, and the body CRC from
//! a chosen offset on), several files at once on their own threads, and the records of a
//! range handed out in order for dispatch.
//!
//! Every file starts with a record, so files can be verified independently and the results
//! stitched: the valid data ends in the first file that does not end cleanly (with its
//! end-of-file blank, or exactly full).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rmq_remoting::message::{
    MessageExt, BLANK_MAGIC_CODE, MESSAGE_MAGIC_CODE_V1, MESSAGE_MAGIC_CODE_V2,
};

use super::commit_log::RecoveredRecord;
use super::mapped_file::MappedFile;

/// What scanning one file found.
#[derive(Debug, Clone, Copy)]
struct FileScan {
    /// Position after the last valid record (or the file's size when it ended cleanly).
    valid: usize,
    /// The file ended cleanly: the next file continues the log.
    ended: bool,
    /// Position of the last valid record.
    last: Option<usize>,
    records: u64,
}

/// What verifying the commit log from an offset found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    /// End of the valid data.
    pub end: u64,
    /// Offset of the last valid record at or after the start, if any.
    pub last_record: Option<u64>,
    pub records: u64,
    /// Files read.
    pub files: usize,
}

/// Index of the file holding `offset`, or `files.len()` when `offset` is the end of the last.
fn file_index(files: &[Arc<MappedFile>], offset: u64) -> Option<usize> {
    let first = files.first()?;
    let size = first.size() as u64;
    if offset < first.from_offset() {
        return None;
    }
    let i = ((offset - first.from_offset()) / size) as usize;
    match files.get(i) {
        Some(f) if f.from_offset() <= offset && offset < f.from_offset() + size => Some(i),
        None if i == files.len() => Some(i),
        _ => None,
    }
}

/// Whether a record, an end-of-file blank, the end of the data (zeroes), or a file boundary
/// begins at `offset`: a place a scan may start. A record must carry `offset` as its own.
pub(crate) fn is_boundary(files: &[Arc<MappedFile>], offset: u64) -> bool {
    let Some(i) = file_index(files, offset) else {
        return false;
    };
    let Some(f) = files.get(i) else {
        return true; // the end of the last file
    };
    let pos = (offset - f.from_offset()) as usize;
    if pos == 0 {
        return true;
    }
    if pos + 8 > f.size() {
        return false;
    }
    let (Some(total), Some(magic)) = (f.read_i32(pos), f.read_i32(pos + 4)) else {
        return false;
    };
    match magic {
        0 => total == 0,
        BLANK_MAGIC_CODE => total as usize == f.size() - pos,
        MESSAGE_MAGIC_CODE_V1 | MESSAGE_MAGIC_CODE_V2 => {
            total >= 8
                && pos + total as usize <= f.size()
                && f.read_i64(pos + 28) == Some(offset as i64)
        }
        _ => false,
    }
}

/// Verifies the log from `from` (a boundary: see [`is_boundary`]) to the end of its valid
/// data, body CRCs from `crc_from` on, on up to `threads` threads (one file each at a time).
pub(crate) fn verify(files: &[Arc<MappedFile>], from: u64, crc_from: u64, threads: usize) -> Scan {
    let Some(start) = file_index(files, from) else {
        return Scan {
            end: from,
            last_record: None,
            records: 0,
            files: 0,
        };
    };
    let todo = &files[start..];
    let pos_in = |i: usize| {
        if i == 0 {
            (from - todo[0].from_offset()) as usize
        } else {
            0
        }
    };
    let results: Vec<Option<FileScan>> = if threads <= 1 || todo.len() <= 1 {
        let mut out = Vec::new();
        for (i, f) in todo.iter().enumerate() {
            let r = scan_file(f, pos_in(i), crc_from, &mut |_| {});
            out.push(Some(r));
            if !r.ended {
                break;
            }
        }
        out
    } else {
        let next = AtomicUsize::new(0);
        // The first file known not to end cleanly: files after it need no reading.
        let stop = AtomicUsize::new(usize::MAX);
        let slots: Vec<parking_lot::Mutex<Option<FileScan>>> =
            todo.iter().map(|_| parking_lot::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..threads.min(todo.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::AcqRel);
                    if i >= todo.len() || i > stop.load(Ordering::Acquire) {
                        break;
                    }
                    let r = scan_file(&todo[i], pos_in(i), crc_from, &mut |_| {});
                    if !r.ended {
                        stop.fetch_min(i, Ordering::AcqRel);
                    }
                    *slots[i].lock() = Some(r);
                });
            }
        });
        slots.into_iter().map(|m| m.into_inner()).collect()
    };
    let mut scan = Scan {
        end: from,
        last_record: None,
        records: 0,
        files: 0,
    };
    for (f, r) in todo.iter().zip(results) {
        let Some(r) = r else { break };
        scan.files += 1;
        scan.records += r.records;
        scan.end = f.from_offset() + r.valid as u64;
        if let Some(p) = r.last {
            scan.last_record = Some(f.from_offset() + p as u64);
        }
        if !r.ended {
            break;
        }
    }
    scan
}

/// Whether the data ends at `offset`: zeroes follow (or the file or the log ends there).
pub(crate) fn is_data_end(files: &[Arc<MappedFile>], offset: u64) -> bool {
    let Some(i) = file_index(files, offset) else {
        return false;
    };
    let Some(f) = files.get(i) else {
        return true;
    };
    let pos = (offset - f.from_offset()) as usize;
    pos + 8 > f.size() || (f.read_i32(pos) == Some(0) && f.read_i32(pos + 4) == Some(0))
}

/// Every valid record from `from` (a boundary) up to `end`, in order. Returns where the
/// valid data stopped (`end` or past it when everything up to `end` was read).
pub(crate) fn for_each_record(
    files: &[Arc<MappedFile>],
    from: u64,
    end: u64,
    mut f: impl FnMut(RecoveredRecord),
) -> u64 {
    let Some(start) = file_index(files, from) else {
        return from;
    };
    let mut reached = from;
    for (i, file) in files.iter().enumerate().skip(start) {
        if file.from_offset() >= end {
            break;
        }
        let pos = if i == start {
            (from - file.from_offset()) as usize
        } else {
            0
        };
        let r = scan_file(file, pos, u64::MAX, &mut |r| {
            if r.offset < end {
                f(r)
            }
        });
        reached = file.from_offset() + r.valid as u64;
        if !r.ended {
            break;
        }
    }
    reached
}

/// Scans one file's records from `pos`; CRCs of records at or after commit-log offset
/// `crc_from` are checked.
fn scan_file(
    f: &MappedFile,
    mut pos: usize,
    crc_from: u64,
    on_record: &mut dyn FnMut(RecoveredRecord),
) -> FileScan {
    let size = f.size();
    let mut scan = FileScan {
        valid: pos,
        ended: false,
        last: None,
        records: 0,
    };
    loop {
        scan.valid = pos;
        if pos + 8 > size {
            scan.ended = pos == size;
            return scan;
        }
        let (Some(total), Some(magic)) = (f.read_i32(pos), f.read_i32(pos + 4)) else {
            return scan;
        };
        if magic == BLANK_MAGIC_CODE {
            if total as usize == size - pos {
                scan.valid = size;
                scan.ended = true;
            }
            return scan;
        }
        if total == 0 && magic == 0 {
            return scan; // end of data
        }
        if (magic != MESSAGE_MAGIC_CODE_V1 && magic != MESSAGE_MAGIC_CODE_V2)
            || total < 8
            || pos + total as usize > size
        {
            tracing::warn!(file = %f.path().display(), pos, total, magic, "invalid record: end of valid data");
            return scan;
        }
        // Zero copy: the file is mapped whole while recovery runs.
        let Some(mut bytes) = f.slice(pos, total as usize) else {
            return scan;
        };
        let msg = match MessageExt::decode(&mut bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(file = %f.path().display(), pos, error = %e, "undecodable record: end of valid data");
                return scan;
            }
        };
        let offset = f.from_offset() + pos as u64;
        if msg.commit_log_offset as u64 != offset {
            tracing::warn!(file = %f.path().display(), pos, stored = msg.commit_log_offset, "record offset mismatch: end of valid data");
            return scan;
        }
        if offset >= crc_from && rmq_remoting::message::body_crc(&msg.body) != msg.body_crc {
            tracing::warn!(file = %f.path().display(), pos, "body CRC mismatch: end of valid data");
            return scan;
        }
        scan.last = Some(pos);
        scan.records += 1;
        on_record(RecoveredRecord {
            offset,
            size: total as usize,
            msg,
        });
        pos += total as usize;
    }
}
