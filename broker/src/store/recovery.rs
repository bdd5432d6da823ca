//! Recovery after a stop: the commit log checked from a safe point (the last three files after
//! a clean stop; after a crash, the newest file older than everything the checkpoint says was
//! flushed, records verified with their CRC), a torn or corrupt tail cut, queue units and
//! index entries past the cut dropped, and what the queues and index lack dispatched again.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::config::MessageStoreConfig;
use super::consume_queue::ConsumeQueue;
use super::message_store::Inner;

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

/// Brings commit log, queues and index back in line after a stop.
pub(crate) fn recover(inner: &Arc<Inner>, abnormal: bool) -> io::Result<()> {
    let cl = &inner.commit_log;
    let n = cl.files().len();
    let start = if abnormal {
        // The newest file whose first record is older than everything the checkpoint says
        // was flushed (less 3 s of slack): everything before it is consistent.
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
    let check_crc = abnormal && inner.config.check_crc_on_recover;
    let end = cl.find_valid_end(start, check_crc);
    let before = cl
        .files()
        .last()
        .map(|f| f.from_offset() + f.size() as u64)
        .unwrap_or(0);
    cl.truncate_to(end, false)?;
    tracing::info!(
        abnormal,
        start_file = start,
        files = n,
        valid_end = end,
        mapped_end = before,
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
    // Re-dispatch from the start file: queue and index writes skip what they already hold.
    let mut redispatched = 0u64;
    let mut failed: Option<String> = None;
    cl.for_each_record(start, end, |r| {
        let m = &r.msg;
        let dispatched = inner.dispatch(&inner.dispatch_info(m, r.offset as i64, r.size));
        if let Err(e) = dispatched {
            // Opening without the queue entries would hide stored messages: refuse, clearly.
            if failed.is_none() {
                failed = Some(format!(
                    "rebuilding queues at commit-log offset {}: {e}",
                    r.offset
                ));
            }
            return;
        }
        redispatched += 1;
    });
    if let Some(e) = failed {
        return Err(io::Error::other(e));
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
    inner.flushed_tx.send_replace(end);
    tracing::info!(
        records = redispatched,
        queues = queues.len(),
        "dispatch rebuilt"
    );
    Ok(())
}
