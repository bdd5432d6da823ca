//! Recovery after a stop: the commit log verified from a safe point, a torn or corrupt tail
//! cut, queue units and index entries past the cut dropped, and what the queues and index
//! lack dispatched again.
//!
//! Where the safe point is:
//!
//! * **After a clean stop** the shutdown recorded the commit log's end and where its last
//!   record starts (see [`Checkpoint`](super::checkpoint::Checkpoint)). Everything before was
//!   flushed, and dispatched, before that record was written: only that record is read (its
//!   CRC too), and nothing may follow it. The queues are rebuilt from the end of the last
//!   record they hold, as RocketMQ's dispatcher resumes (normally nothing).
//! * **After a crash** the checkpoint's offsets say below which point every record is on
//!   disk and has its queue units and index entries on disk; they move about every second.
//!   Records from there are verified (body CRC from the flushed point on) and dispatched again.
//!   When several files must be read, they are read on several threads.
//! * **Otherwise** (a checkpoint without these offsets, from RocketMQ or an older version of
//!   this store; a marker that disagrees with the files): as RocketMQ does, the last three
//!   files after a clean stop, or from the newest file older than the checkpoint's
//!   timestamps after a crash, every record checked.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::config::MessageStoreConfig;
use super::consume_queue::ConsumeQueue;
use super::mapped_file::MappedFile;
use super::message_store::Inner;
use super::scan::{self, Scan};

/// The consume queues found on disk, by topic and queue id.
pub(crate) fn load_queues(
    config: &MessageStoreConfig,
) -> io::Result<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>> {
    let root = config.consume_queue_dir();
    let mut out: HashMap<String, HashMap<i32, Arc<ConsumeQueue>>> = HashMap::new();
    let Ok(topics) = std::fs::read_dir(&root) else {
        return Ok(out);
    };
    for t in topics.flatten() {
        let Some(topic) = t.file_name().to_str().map(String::from) else {
            continue;
        };
        let Ok(ids) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for q in ids.flatten() {
            let Some(id) = q.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let cq =
                ConsumeQueue::load(&root, &topic, id, config.consume_queue_file_size() as usize)?;
            out.entry(topic.clone())
                .or_default()
                .insert(id, Arc::new(cq));
        }
    }
    Ok(out)
}

/// Where dispatching starts again.
enum DispatchFrom {
    /// Here: queues and index may lack anything after it.
    At(u64),
    /// After the last record the queues hold (no earlier than `min`): a clean stop left them
    /// complete, unless someone removed queue files to have them rebuilt.
    QueuesEnd { min: u64 },
}

/// How recovery goes for this start.
struct Plan {
    how: &'static str,
    /// Where verifying started.
    from: u64,
    scan: Scan,
    dispatch: DispatchFrom,
    /// After a crash, `(physic, logics)`: records from `physic` on, and queue units and index
    /// entries of records from `logics` on, may be in the page cache only.
    unflushed: Option<(u64, u64)>,
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}

/// After a clean stop with its marker: the last record checked, nothing after it.
fn after_clean_stop(inner: &Inner, files: &[Arc<MappedFile>]) -> Option<Plan> {
    let stop = inner.checkpoint.clean_stop()?;
    let disagree = |why: &str| {
        tracing::warn!(
            end = stop.end,
            last_record = stop.last_record,
            why,
            "the clean-stop record disagrees with the commit log: checking the last files"
        );
    };
    if inner.commit_log.extended_on_load() {
        disagree("the last file was short");
        return None;
    }
    if !scan::is_boundary(files, stop.last_record) {
        disagree("no record starts where the last one should");
        return None;
    }
    let scan = scan::verify(files, stop.last_record, stop.last_record, 1);
    if scan.end != stop.end || scan.last_record != Some(stop.last_record) {
        disagree("the last record is not whole, or does not end the log");
        return None;
    }
    if !scan::is_data_end(files, stop.end) {
        disagree("bytes follow the end");
        return None;
    }
    Some(Plan {
        how: "clean stop: last record checked",
        from: stop.last_record,
        scan,
        dispatch: DispatchFrom::QueuesEnd {
            min: inner.commit_log.min_offset(),
        },
        unflushed: None,
    })
}

/// After a crash, from the checkpoint's offsets.
fn from_checkpoint(inner: &Inner, files: &[Arc<MappedFile>]) -> Option<Plan> {
    let (physic, logics) = inner.checkpoint.safe_offsets()?;
    let from = physic.min(logics).max(inner.commit_log.min_offset());
    if !scan::is_boundary(files, from) {
        tracing::warn!(
            physic,
            logics,
            "the checkpoint's offset is not a record boundary: recovering by its timestamps"
        );
        return None;
    }
    // Records below `physic` were flushed before the checkpoint said so: no torn bytes there.
    let crc_from = if inner.config.check_crc_on_recover {
        physic.max(from)
    } else {
        u64::MAX
    };
    let scan = scan::verify(files, from, crc_from, threads());
    Some(Plan {
        how: "crash: from the checkpoint's offsets",
        from,
        scan,
        dispatch: DispatchFrom::At(from),
        unflushed: Some((physic.max(from), logics.max(from))),
    })
}

/// RocketMQ's way: the last three files after a clean stop; after a crash, the newest file
/// whose first record is older than everything the checkpoint says was flushed (less 3 s).
fn by_files(inner: &Inner, files: &[Arc<MappedFile>], abnormal: bool) -> Plan {
    let cl = &inner.commit_log;
    let n = files.len();
    let start = if abnormal {
        let min_ts = inner.checkpoint.min_timestamp(inner.index.is_some()) - 3000;
        (0..n)
            .rev()
            .find(|i| {
                cl.first_store_timestamp(*i)
                    .map(|t| t <= min_ts)
                    .unwrap_or(false)
            })
            .unwrap_or(0)
    } else {
        n.saturating_sub(3)
    };
    let from = files.get(start).map(|f| f.from_offset()).unwrap_or(0);
    let crc_from = if abnormal && inner.config.check_crc_on_recover {
        from
    } else {
        u64::MAX
    };
    let scan = scan::verify(files, from, crc_from, threads());
    Plan {
        how: if abnormal {
            "crash: from the checkpoint's timestamps"
        } else {
            "clean stop: last three files"
        },
        from,
        scan,
        dispatch: if abnormal {
            DispatchFrom::At(from)
        } else {
            DispatchFrom::QueuesEnd { min: from }
        },
        unflushed: abnormal.then_some((from, from)),
    }
}

/// Brings commit log, queues and index back in line after a stop, and records in the
/// checkpoint what is known to be on disk now.
pub(crate) fn recover(inner: &Arc<Inner>, abnormal: bool) -> io::Result<()> {
    let started = Instant::now();
    let cl = &inner.commit_log;
    let files = cl.files();
    let plan = if abnormal {
        from_checkpoint(inner, &files)
    } else {
        after_clean_stop(inner, &files)
    }
    .unwrap_or_else(|| by_files(inner, &files, abnormal));
    let verified = started.elapsed();
    let end = plan.scan.end;
    let mapped_end = files
        .last()
        .map(|f| f.from_offset() + f.size() as u64)
        .unwrap_or(0);
    drop(files);
    cl.truncate_to(end, false)?;
    tracing::info!(
        abnormal,
        how = plan.how,
        from = plan.from,
        files_read = plan.scan.files,
        records_read = plan.scan.records,
        valid_end = end,
        mapped_end,
        verify_ms = verified.as_millis() as u64,
        cut_ms = (started.elapsed() - verified).as_millis() as u64,
        "commit log recovered"
    );
    let queues: Vec<Arc<ConsumeQueue>> = inner
        .queues
        .read()
        .values()
        .flat_map(|m| m.values().cloned())
        .collect();
    for q in &queues {
        q.truncate_dirty(end as i64, false)?;
    }
    if let Some(index) = &inner.index {
        index.truncate_after(end as i64);
    }
    let dispatch_from = match plan.dispatch {
        DispatchFrom::At(at) => at,
        DispatchFrom::QueuesEnd { min } => {
            let held = queues.iter().map(|q| q.max_phys_end().max(0) as u64).max();
            held.unwrap_or(0).clamp(min, end.max(min))
        }
    };
    let dispatch_started = Instant::now();
    // Queue and index writes skip what they already hold.
    let mut redispatched = 0u64;
    let mut failed: Option<String> = None;
    let files = cl.files();
    let reached = scan::for_each_record(&files, dispatch_from, end, |r| {
        if failed.is_some() {
            return;
        }
        let m = &r.msg;
        let dispatched = inner.dispatch(&inner.dispatch_info(m, r.offset as i64, r.size));
        if let Err(e) = dispatched {
            // Opening without the queue entries would hide stored messages: refuse, clearly.
            failed = Some(format!(
                "rebuilding queues at commit-log offset {}: {e}",
                r.offset
            ));
            return;
        }
        redispatched += 1;
    });
    drop(files);
    if let Some(e) = failed {
        return Err(io::Error::other(e));
    }
    if reached < end {
        // Only possible below the verified range (queues removed by hand after a clean stop).
        tracing::error!(
            from = dispatch_from,
            reached,
            end,
            "an unreadable record stopped rebuilding the queues; units after it are missing"
        );
    }
    let min_phys = cl.min_offset() as i64;
    let mut table = inner.topic_queue_table.lock();
    for q in inner.queues.read().values().flat_map(|m| m.values()) {
        q.correct_min_offset(min_phys);
        table
            .entry(Arc::from(q.topic()))
            .or_default()
            .insert(q.queue_id(), q.max_offset());
    }
    drop(table);
    inner.dispatched_offset.store(end, Ordering::Release);
    // The next clean shutdown records the last record: know it even when none was dispatched.
    if inner.last_record.load(Ordering::Acquire) < 0 {
        let last = plan
            .scan
            .last_record
            .map(|o| o as i64)
            .or_else(|| last_record_in_queues(inner, end));
        inner
            .last_record
            .store(last.unwrap_or(-1), Ordering::Release);
    }
    // The checkpoint's timestamps (RocketMQ's) start from the last record, not from zero,
    // when nothing is appended or dispatched before the next flush.
    let last = inner.last_record.load(Ordering::Acquire);
    if let Some(ts) = (last >= 0)
        .then(|| cl.store_timestamp_at(last as u64))
        .flatten()
    {
        cl.set_last_store_timestamp(ts);
        let _ = inner.last_dispatched_store_ts.compare_exchange(
            0,
            ts,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
    let (physic, logics) = match plan.unflushed {
        Some((physic, logics)) => {
            let (physic, logics) = (physic.min(end), logics.min(end));
            // Found in the page cache, maybe not on disk: flushed again before the checkpoint
            // vouches for them (a power cut soon after this start must not lose them).
            cl.mark_unflushed_from(physic);
            for q in inner.queues.read().values().flat_map(|m| m.values()) {
                q.mark_unflushed_from_phys(logics as i64);
            }
            if let Some(index) = &inner.index {
                index.mark_dirty();
            }
            (physic, logics)
        }
        None => (end, end),
    };
    inner.checkpoint.opened(physic, logics)?;
    inner.flushed_tx.send_replace(cl.flushed_offset());
    tracing::info!(
        from = dispatch_from,
        records = redispatched,
        queues = queues.len(),
        dispatch_ms = dispatch_started.elapsed().as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "dispatch rebuilt"
    );
    Ok(())
}

/// The record ending at `end` as a queue knows it (when no record was read from the log).
fn last_record_in_queues(inner: &Inner, end: u64) -> Option<i64> {
    let queues = inner.queues.read();
    let q = queues
        .values()
        .flat_map(|m| m.values())
        .find(|q| q.max_phys_end() == end as i64)?;
    q.last_unit().map(|u| u.commit_log_offset)
}
