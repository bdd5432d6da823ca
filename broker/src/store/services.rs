//! The store's threads: writer (group commit), dispatcher, commit-log flusher, queue/index
//! flusher with checkpoint, allocator and cleaner. Plain OS threads: none of this blocking
//! work ever runs on a tokio worker.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rmq_remoting::message::sys_flag;

use super::append::QueueTable;
use super::config::FlushDiskType;
use super::message_store::{Inner, ReplicaRecord, WriterCommand};

fn spawn(inner: &Arc<Inner>, name: &str, f: impl FnOnce(Arc<Inner>) + Send + 'static) {
    let i = inner.clone();
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || f(i))
        .expect("spawn store thread");
    inner.threads.lock().push(handle);
}

pub(crate) fn start(inner: &Arc<Inner>) {
    let (put_tx, put_rx) = crossbeam_channel::unbounded::<WriterCommand>();
    *inner.put_tx.lock() = Some(put_tx);
    inner
        .threads
        .lock()
        .push(inner.commit_log.start_allocator());
    if let Err(e) = inner.commit_log.prepare_files() {
        // Appends will try again and report the error to their callers.
        tracing::error!(error = %e, "cannot create the first commit log file");
    }
    // After `prepare_files`: the cursor starts in the first file when the log was empty.
    *inner.writer.lock() = Some(inner.commit_log.cursor());
    spawn(inner, "store-writer", move |i| writer_loop(i, put_rx));
    spawn(inner, "store-dispatch", dispatch_loop);
    spawn(inner, "store-flush-cl", flush_commit_log_loop);
    spawn(inner, "store-flush-cq", flush_queues_loop);
    spawn(inner, "store-clean", clean_loop);
}

pub(crate) fn shutdown(inner: &Arc<Inner>) {
    if !inner.running.swap(false, Ordering::AcqRel) && inner.put_tx.lock().is_none() {
        return;
    }
    // Closing the writer's channel lets it finish its commands and exit; taking the cursor
    // ends appends (every one so far has queued its records), so the dispatch queue can close
    // and the dispatcher drains it and exits.
    inner.put_tx.lock().take();
    inner.writer.lock().take();
    inner.dispatch_queue.close();
    inner.commit_log.stop_allocator();
    {
        let mut stop = inner.stop.0.lock();
        *stop = true;
        inner.stop.1.notify_all();
    }
    inner.wake_flusher();
    let threads: Vec<_> = inner.threads.lock().drain(..).collect();
    for t in threads {
        let _ = t.join();
    }
    match final_flush(inner) {
        // The abort file stays: the next start verifies the store.
        Err(e) => {
            tracing::error!(error = %e, "final flush failed: the next start will verify the store")
        }
        Ok(()) if inner.dispatch_incomplete.load(Ordering::Acquire) => {}
        Ok(()) => {
            if let Err(e) = std::fs::remove_file(inner.config.abort_path()) {
                tracing::warn!(error = %e, "cannot remove the abort file");
            }
        }
    }
    // Closing the descriptor releases the flock: the store may be opened again.
    inner.lock.lock().take();
    tracing::info!(
        max_offset = inner.commit_log.max_offset(),
        "message store shut down cleanly"
    );
}

/// A failed flush ends the store's writing life. The kernel may have dropped the pages it
/// could not write and marked them clean (PostgreSQL's "fsyncgate"), so a later successful
/// flush proves nothing: like Kafka taking a log directory offline and etcd exiting, the store
/// refuses every write from here on, fails the puts waiting for this flush, stops moving the
/// flushed offset and the checkpoint, and keeps the abort file so the next start verifies
/// the files against what is really on disk.
pub(crate) fn fence(inner: &Inner, what: &str, e: &std::io::Error) {
    let why = format!("{what} flush failed: {e}");
    if inner.fenced.set(why.clone()).is_ok() {
        tracing::error!(reason = %why, "message store fenced: no more writes until a restart");
    }
    // Wake SYNC_FLUSH waiters: they see the fence and answer an error.
    inner.flushed_tx.send_modify(|_| {});
}

fn final_flush(inner: &Inner) -> std::io::Result<()> {
    if let Some(why) = inner.fenced.get() {
        return Err(std::io::Error::other(why.clone()));
    }
    let ts = inner.commit_log.last_store_timestamp();
    inner.commit_log.flush(0)?;
    for q in inner.queues.read().values().flat_map(|m| m.values()) {
        q.flush(0)?;
    }
    if let Some(index) = &inner.index {
        index.flush()?;
    }
    let dispatched_ts = inner.last_dispatched_store_ts.load(Ordering::Acquire);
    let ck = &inner.checkpoint;
    let end = inner.commit_log.max_offset();
    let epoch = ck.epoch();
    ck.set_physic_offset(inner.commit_log.flushed_offset(), epoch);
    let dispatched = inner.dispatched_offset.load(Ordering::Acquire);
    ck.set_logics_offset(dispatched, epoch);
    // The clean-stop marker: the next start checks this record and trusts what is before it.
    // Only when the dispatcher finished (the abort file stays otherwise) and the last record
    // it saw ends the log.
    let last = inner.last_record.load(Ordering::Acquire);
    let complete = !inner.dispatch_incomplete.load(Ordering::Acquire) && dispatched == end;
    let (clean_end, clean_last) = if complete && last >= 0 {
        (end as i64, last)
    } else {
        (-1, -1)
    };
    ck.clean_end.store(clean_end, Ordering::Release);
    ck.clean_last.store(clean_last, Ordering::Release);
    inner
        .checkpoint
        .physic_msg_timestamp
        .store(ts, Ordering::Release);
    inner
        .checkpoint
        .logics_msg_timestamp
        .store(dispatched_ts, Ordering::Release);
    inner
        .checkpoint
        .index_msg_timestamp
        .store(dispatched_ts, Ordering::Release);
    inner.checkpoint.flush()
}

/// Cuts a running store back to `end` (writer thread): waits for the dispatcher to finish
/// what it has, then cuts the commit log, the consume queues and the index, and recomputes
/// every queue's next offset.
fn truncate_running(
    inner: &Arc<Inner>,
    cl: &super::commit_log::CommitLog,
    cursor: &mut super::commit_log::WriteCursor,
    table: &mut QueueTable,
    end: u64,
) -> std::io::Result<()> {
    if end >= cl.max_offset() {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while inner.dispatched_offset.load(Ordering::Acquire) < cl.max_offset()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Queue entries for records past the cut must be cut with them: the dispatcher must
    // have written them all first, or an entry written after the cut would point at bytes
    // of a record that no longer exists.
    let dispatched = inner.dispatched_offset.load(Ordering::Acquire);
    if dispatched < cl.max_offset() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!(
                "not cut: queues are dispatched to {dispatched} of {}; try again",
                cl.max_offset()
            ),
        ));
    }
    cl.truncate_to(end, true)?;
    *cursor = cl.cursor();
    for (topic, queues) in inner.queues.read().iter() {
        for (qid, q) in queues {
            q.truncate_dirty(end as i64, true)?;
            table
                .entry(Arc::from(topic.as_str()))
                .or_default()
                .insert(*qid, q.max_offset());
        }
    }
    if let Some(index) = &inner.index {
        index.truncate_after(end as i64);
    }
    inner.dispatched_offset.store(end, Ordering::Release);
    inner.last_record.store(-1, Ordering::Release);
    // Before anything is appended at the cut: the checkpoint must not vouch for it.
    inner.checkpoint.cut(end)?;
    tracing::warn!(end, "commit log cut back to the new master's history");
    Ok(())
}

/// Appends a replica batch at the master's offsets; returns how many records went in, and
/// the reason it stopped early.
fn append_replica_records(
    cl: &super::commit_log::CommitLog,
    cursor: &mut super::commit_log::WriteCursor,
    table: &mut QueueTable,
    records: &[ReplicaRecord],
) -> Result<usize, (usize, String)> {
    for (n, rec) in records.iter().enumerate() {
        let info = &rec.info;
        cl.prepare_replica(cursor, info.commit_log_offset as u64, rec.bytes.len())
            .map_err(|e| (n, e.to_string()))?;
        cl.append(cursor, &rec.bytes);
        if info.tran_type != sys_flag::TRANSACTION_PREPARED_TYPE
            && info.tran_type != sys_flag::TRANSACTION_ROLLBACK_TYPE
        {
            let next = table
                .entry(info.topic.clone())
                .or_default()
                .entry(info.queue_id)
                .or_insert(0);
            *next = (*next).max(info.queue_offset + 1);
        }
    }
    Ok(records.len())
}

/// The writer thread: the replica's commands (replicated records, cuts), a batch at a time
/// under the append lock. Puts append on their own threads ([`Inner::append_now`]).
fn writer_loop(inner: Arc<Inner>, rx: Receiver<WriterCommand>) {
    let cl = inner.commit_log.clone();
    let max_batch = inner.config.max_append_batch.max(1);
    let mut replies = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut commands = Vec::with_capacity(16);
        commands.push(first);
        while commands.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => commands.push(r),
                Err(_) => break,
            }
        }
        {
            let mut writer = inner.writer.lock();
            let Some(cursor) = writer.as_mut() else {
                for command in commands {
                    let reply = match command {
                        WriterCommand::Truncate { reply, .. }
                        | WriterCommand::Replica { reply, .. } => reply,
                    };
                    let _ = reply.send(Err("message store is shutting down".into()));
                }
                continue;
            };
            let mut dispatch = Vec::new();
            let mut last_ts = cl.last_store_timestamp();
            let mut table = inner.topic_queue_table.lock();
            for command in commands {
                match command {
                    WriterCommand::Truncate { end, reply } => {
                        let r = truncate_running(&inner, &cl, cursor, &mut table, end)
                            .map_err(|e| e.to_string());
                        last_ts = cl.last_store_timestamp();
                        replies.push((reply, r));
                    }
                    WriterCommand::Replica { records, reply } => {
                        let result = append_replica_records(&cl, cursor, &mut table, &records);
                        let appended = match &result {
                            Ok(n) | Err((n, _)) => *n,
                        };
                        for r in records.into_iter().take(appended) {
                            last_ts = last_ts.max(r.info.store_timestamp);
                            dispatch.push(r.info);
                        }
                        replies.push((reply, result.map(|_| ()).map_err(|(_, e)| e)));
                    }
                }
            }
            drop(table);
            cl.publish(cursor, last_ts);
            inner.dispatch_queue.push(dispatch);
        }
        inner.wake_flusher();
        for (reply, r) in replies.drain(..) {
            let _ = reply.send(r);
        }
    }
    tracing::debug!("store writer stopped");
}

fn dispatch_loop(inner: Arc<Inner>) {
    let mut batch = Vec::new();
    let mut busy = false;
    while inner.dispatch_queue.next_batch(&mut batch, busy).is_some() {
        busy = !batch.is_empty();
        for d in &batch {
            // A failed write (typically no space for a new queue or index file) is retried
            // until it succeeds: the record is acknowledged and must become consumable.
            // Meanwhile appends are refused, as RocketMQ does on WRITE_LOGICS_QUEUE_ERROR.
            let mut attempts = 0u32;
            while let Err(e) = inner.dispatch(d) {
                if attempts == 0 {
                    tracing::error!(error = %e, "dispatch failed; refusing appends and retrying");
                }
                attempts += 1;
                *inner.dispatch_error.lock() = Some(e);
                if inner.sleep(Duration::from_millis(200)) {
                    // Stopping: the next start verifies the store and rebuilds what is missing.
                    inner.dispatch_incomplete.store(true, Ordering::Release);
                    tracing::warn!(
                        "stopping with undispatched records; the next start rebuilds them"
                    );
                    return;
                }
            }
            if attempts > 0 {
                tracing::info!(attempts, "dispatch recovered; accepting appends again");
                inner.dispatch_error.lock().take();
            }
        }
        let listener = inner.listener.read().clone();
        if let Some(listener) = listener {
            // One call per queue touched, with its new max offset (the last record's).
            let mut seen = std::collections::HashSet::new();
            for d in batch.iter().rev() {
                if seen.insert((&*d.topic, d.queue_id)) {
                    listener(&d.topic, d.queue_id, d.queue_offset + 1);
                }
            }
        }
    }
    tracing::debug!("store dispatcher stopped");
}

fn flush_commit_log_loop(inner: Arc<Inner>) {
    let sync = inner.config.flush_disk_type == FlushDiskType::SyncFlush;
    let interval = Duration::from_millis(inner.config.flush_interval_commit_log.max(1));
    let thorough = Duration::from_millis(inner.config.flush_commit_log_thorough_interval);
    let least = inner.config.flush_commit_log_least_pages as usize;
    let mut last_thorough = Instant::now();
    loop {
        if sync {
            // Group commit: flush whatever was appended since the last flush, as soon as the
            // writer says there is something; every waiter up to that point is released.
            let mut w = inner.flush_wake.0.lock();
            if !*w {
                inner
                    .flush_wake
                    .1
                    .wait_for(&mut w, Duration::from_millis(10));
            }
            *w = false;
        } else if inner.sleep(interval) {
            // stopping: fall through to a last full flush
        }
        let stopping = inner.stopping();
        if !stopping && inner.flush_paused.load(Ordering::Acquire) {
            continue;
        }
        if inner.fenced.get().is_some() {
            // No flush after a failed one: its success would prove nothing.
            if stopping {
                break;
            }
            continue;
        }
        let full = sync || stopping || last_thorough.elapsed() >= thorough;
        if full {
            last_thorough = Instant::now();
        }
        let ts = inner.commit_log.last_store_timestamp();
        let epoch = inner.checkpoint.epoch();
        let before = inner.commit_log.flushed_offset();
        let started = Instant::now();
        let flushed = inner.commit_log.flush(if full { 0 } else { least });
        if matches!(flushed, Ok(f) if f > before) {
            if let Some(observe) = inner.flush_observer.read().as_ref() {
                observe(started.elapsed().as_secs_f64());
            }
        }
        match flushed {
            Ok(flushed) => {
                if flushed > before {
                    inner
                        .checkpoint
                        .physic_msg_timestamp
                        .store(ts, Ordering::Release);
                    inner.checkpoint.set_physic_offset(flushed, epoch);
                    inner.flushed_tx.send_replace(flushed);
                }
            }
            Err(e) => fence(&inner, "commit log", &e),
        }
        if stopping {
            break;
        }
    }
}

fn flush_queues_loop(inner: Arc<Inner>) {
    let interval = Duration::from_millis(inner.config.flush_interval_consume_queue.max(1));
    let thorough = Duration::from_millis(inner.config.flush_consume_queue_thorough_interval);
    let least = inner.config.flush_consume_queue_least_pages as usize;
    let mut last_thorough = Instant::now();
    loop {
        let stopping = inner.sleep(interval);
        let full = stopping || last_thorough.elapsed() >= thorough;
        if full {
            last_thorough = Instant::now();
        }
        if inner.fenced.get().is_some() {
            // The checkpoint stays where the last good flush left it.
            if stopping {
                break;
            }
            continue;
        }
        let ts = inner.last_dispatched_store_ts.load(Ordering::Acquire);
        // Every record below this has its units and index entries written before the flush.
        let epoch = inner.checkpoint.epoch();
        let dispatched = inner.dispatched_offset.load(Ordering::Acquire);
        let queues: Vec<_> = inner
            .queues
            .read()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        let mut ok = true;
        // Where the first record starts whose unit a skipped (too few pages) flush left behind.
        let mut durable = dispatched;
        for q in queues {
            if let Err(e) = q.flush(if full { 0 } else { least }) {
                let what = format!("consume queue {}/{}", q.topic(), q.queue_id());
                fence(&inner, &what, &e);
                ok = false;
                break;
            }
            if let Some(phys) = q.first_unflushed_phys() {
                durable = durable.min(phys.max(0) as u64);
            }
        }
        if let Some(index) = &inner.index {
            if ok {
                if let Err(e) = index.flush() {
                    fence(&inner, "index", &e);
                    ok = false;
                }
            }
        }
        if ok && full {
            inner
                .checkpoint
                .logics_msg_timestamp
                .store(ts, Ordering::Release);
            inner
                .checkpoint
                .index_msg_timestamp
                .store(ts, Ordering::Release);
        }
        if !ok {
            continue;
        }
        // Unlike the timestamp (RocketMQ's, moved by thorough flushes only), the offset moves
        // on every pass: a crash then re-reads about a second of commit log, not a minute.
        inner.checkpoint.set_logics_offset(durable, epoch);
        if let Err(e) = inner.checkpoint.flush() {
            fence(&inner, "checkpoint", &e);
        }
        if stopping {
            break;
        }
    }
}

fn clean_loop(inner: Arc<Inner>) {
    let interval = Duration::from_millis(inner.config.clean_resource_interval.max(100));
    // First pass right away: a store opened on a full disk should say so before any put.
    super::retention::run(&inner, false);
    while !inner.sleep(interval) {
        super::retention::run(&inner, false);
    }
}
