//! The store on its own: puts, reads, queues, index, file rolling, bad input, clean restart.

use rmq_broker::store::{GetStatus, MessageFilter, MessageStore, MessageStoreConfig, PutStatus};
use rmq_remoting::util::java_hash_code;
use rmq_testkit::store::*;

#[tokio::test]
async fn put_and_read_across_files_and_queues() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let body = vec![b'x'; 900];
    let mut acked = Vec::new();
    for i in 0..300 {
        let q = i % 3;
        let r = store
            .put_message(msg(
                "TopicA",
                q,
                &body,
                Some(if i % 2 == 0 { "even" } else { "odd" }),
                Some(&format!("k{i}")),
            ))
            .await;
        assert_eq!(r.status, PutStatus::PutOk);
        let a = r.append.unwrap();
        assert_eq!(a.msg_ids().len(), 1);
        assert_eq!(a.msg_ids()[0].len(), 32);
        acked.push((q, a.logics_offset, a.wrote_offset));
    }
    // Queue offsets are consecutive per queue.
    wait_dispatched(&store);
    for q in 0..3 {
        let offs: Vec<i64> = acked.iter().filter(|a| a.0 == q).map(|a| a.1).collect();
        assert_eq!(offs, (0..100).collect::<Vec<i64>>());
        assert_eq!(store.max_offset_in_queue("TopicA", q, true), 100);
        assert_eq!(store.max_offset_in_queue("TopicA", q, false), 100);
        assert_eq!(store.min_offset_in_queue("TopicA", q), 0);
    }
    // ~300 KB over 64 KB files: several files, each ending in a blank record.
    let files = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .count();
    assert!(files >= 5, "{files} commit log files");
    let all = read_all(&store, "TopicA", 1);
    assert_eq!(all.len(), 100);
    for (n, m) in all.iter().enumerate() {
        assert_eq!(m.queue_offset, n as i64);
        assert_eq!(m.queue_id, 1);
        assert_eq!(m.body.len(), 900);
        assert_eq!(m.body_crc, rmq_remoting::message::body_crc(&m.body));
        // The stored offset is where the record really is.
        let again = store.look_message_by_offset(m.commit_log_offset).unwrap();
        assert_eq!(again.queue_offset, m.queue_offset);
    }
    // Statuses at the edges.
    assert_eq!(
        store
            .get_messages("TopicA", 0, 100, 32, 1 << 20, None)
            .status,
        GetStatus::OffsetOverflowOne
    );
    assert_eq!(
        store
            .get_messages("TopicA", 0, 500, 32, 1 << 20, None)
            .status,
        GetStatus::OffsetOverflowBadly
    );
    assert_eq!(
        store.get_messages("Nope", 0, 0, 32, 1 << 20, None).status,
        GetStatus::NoMatchedLogicQueue
    );
    // Size and count limits.
    let r = store.get_messages("TopicA", 0, 0, 5, 1 << 20, None);
    assert_eq!((r.messages.len(), r.next_begin_offset), (5, 5));
    let r = store.get_messages("TopicA", 0, 0, 32, 3500, None);
    assert_eq!(r.messages.len(), 3);
    store.shutdown();
}

struct TagFilter(i64);
impl MessageFilter for TagFilter {
    fn matches_tags_code(&self, code: i64) -> bool {
        code == self.0
    }
}

#[tokio::test]
async fn tag_filter_batch_index_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let t0 = rmq_remoting::util::now_millis();
    for i in 0..40 {
        let tag = if i % 4 == 0 { "TagA" } else { "TagB" };
        store
            .put_message(msg(
                "T",
                0,
                format!("m{i}").as_bytes(),
                Some(tag),
                Some(&format!("order-{i} shared")),
            ))
            .await;
    }
    wait_dispatched(&store);
    let filter = TagFilter(java_hash_code("TagA") as i64);
    let r = store.get_messages("T", 0, 0, 32, 1 << 20, Some(&filter));
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!(r.messages.len(), 10);
    assert!(r.messages.iter().all(|m| decode(m).tags() == Some("TagA")));
    let none = TagFilter(12345);
    let r = store.get_messages("T", 0, 0, 32, 1 << 20, Some(&none));
    assert_eq!(r.status, GetStatus::NoMatchedMessage);
    assert_eq!(
        r.next_begin_offset, 40,
        "filtered units still advance the offset"
    );

    // A batch gets consecutive queue offsets and one record each.
    let batch: Vec<_> = (0..5)
        .map(|i| msg("T", 1, format!("b{i}").as_bytes(), None, None))
        .collect();
    let r = store.put_messages(batch).await;
    let a = r.append.unwrap();
    assert_eq!(
        (a.logics_offset, a.offsets.len(), a.msg_ids().len()),
        (0, 5, 5)
    );
    let back = read_all(&store, "T", 1);
    assert_eq!(
        back.iter().map(|m| m.body.to_vec()).collect::<Vec<_>>(),
        (0..5)
            .map(|i| format!("b{i}").into_bytes())
            .collect::<Vec<_>>()
    );

    // Index: by key and by unique key.
    wait_dispatched(&store);
    let found = store.query_message("T", "order-7", 10, 0, i64::MAX);
    assert_eq!(found.messages.len(), 1);
    assert_eq!(decode(&found.messages[0]).body.as_ref(), b"m7");
    assert_eq!(
        store
            .query_message("T", "shared", 64, 0, i64::MAX)
            .messages
            .len(),
        40
    );
    assert_eq!(
        store
            .query_message("T", "shared", 5, 0, i64::MAX)
            .messages
            .len(),
        5
    );
    let m3 = decode(&store.get_messages("T", 0, 3, 1, 1 << 20, None).messages[0]);
    let by_uniq = store.query_message("T", m3.uniq_key().unwrap(), 1, 0, i64::MAX);
    assert_eq!(decode(&by_uniq.messages[0]).queue_offset, 3);
    assert!(store
        .query_message("T", "absent", 10, 0, i64::MAX)
        .messages
        .is_empty());
    assert!(store
        .query_message("Other", "order-7", 10, 0, i64::MAX)
        .messages
        .is_empty());

    // Offsets by time.
    assert_eq!(store.offset_in_queue_by_time("T", 0, t0 - 10_000, false), 0);
    assert_eq!(store.offset_in_queue_by_time("T", 0, i64::MAX, false), 40);
    assert_eq!(store.offset_in_queue_by_time("T", 0, i64::MAX, true), 39);
    let earliest = store.earliest_message_time("T", 0).unwrap();
    assert!(earliest >= t0 && earliest <= rmq_remoting::util::now_millis());
    store.shutdown();
}

#[tokio::test]
async fn reads_are_zero_copy_slices_of_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store.put_message(msg("Z", 0, b"hello", None, None)).await;
    wait_dispatched(&store);
    let a = store
        .get_messages("Z", 0, 0, 1, 1 << 20, None)
        .messages
        .remove(0);
    let b = store
        .get_messages("Z", 0, 0, 1, 1 << 20, None)
        .messages
        .remove(0);
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "both reads point into the same mapped memory"
    );
    store.shutdown();
    // The slice outlives the store (it owns the mapping).
    assert_eq!(decode(&a).body.as_ref(), b"hello");
}

#[tokio::test]
async fn bad_input_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config(dir.path());
    cfg.max_message_size = 4096;
    let store = MessageStore::open(cfg).unwrap();
    store.put_message(msg("Good", 0, b"ok", None, None)).await;
    let before = store.max_phy_offset();

    let r = store
        .put_message(msg("Good", 0, &vec![0u8; 5000], None, None))
        .await;
    assert!(
        matches!(&r.status, PutStatus::MessageIllegal(s) if s.contains("maxMessageSize")),
        "{:?}",
        r.status
    );
    let r = store
        .put_message(msg(&"t".repeat(128), 0, b"x", None, None))
        .await;
    assert!(
        matches!(&r.status, PutStatus::MessageIllegal(s) if s.contains("longer")),
        "{:?}",
        r.status
    );
    let r = store
        .put_message(msg("bad topic!", 0, b"x", None, None))
        .await;
    assert!(
        matches!(&r.status, PutStatus::MessageIllegal(s) if s.contains("illegal characters")),
        "{:?}",
        r.status
    );
    let r = store.put_message(msg("Good", -1, b"x", None, None)).await;
    assert!(matches!(r.status, PutStatus::MessageIllegal(_)));
    let mut huge = msg("Good", 0, b"x", None, None);
    huge.properties.insert("P", &"v".repeat(40_000));
    assert_eq!(
        store.put_message(huge).await.status,
        PutStatus::PropertiesSizeExceeded
    );
    let mixed = vec![
        msg("Good", 0, b"a", None, None),
        msg("Good", 1, b"b", None, None),
    ];
    assert!(matches!(
        store.put_messages(mixed).await.status,
        PutStatus::MessageIllegal(_)
    ));

    assert_eq!(store.max_phy_offset(), before, "nothing was written");
    assert_eq!(read_all(&store, "Good", 0).len(), 1);
    store.shutdown();
    // After shutdown, puts are refused, not lost silently.
    let r = store.put_message(msg("Good", 0, b"late", None, None)).await;
    assert!(matches!(r.status, PutStatus::ServiceNotAvailable(_)));
}

#[tokio::test]
async fn clean_restart_keeps_everything_and_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path());
    {
        let store = MessageStore::open(cfg.clone()).unwrap();
        for i in 0..150 {
            store
                .put_message(msg(
                    "R",
                    i % 2,
                    &[i as u8; 700],
                    None,
                    Some(&format!("key{i}")),
                ))
                .await;
        }
        store.shutdown();
    }
    assert!(
        !dir.path().join("abort").exists(),
        "clean stop removes the abort file"
    );
    let store = MessageStore::open(cfg.clone()).unwrap();
    assert!(dir.path().join("abort").exists());
    assert_eq!(read_all(&store, "R", 0).len(), 75);
    assert_eq!(store.max_offset_in_queue("R", 1, false), 75);
    let r = store.put_message(msg("R", 1, b"after", None, None)).await;
    assert_eq!(r.append.unwrap().logics_offset, 75);
    wait_dispatched(&store);
    assert_eq!(
        store
            .query_message("R", "key149", 4, 0, i64::MAX)
            .messages
            .len(),
        1
    );
    // A second process (or store) on the same directory is refused.
    assert!(MessageStore::open(cfg).is_err());
    store.shutdown();
}

#[tokio::test]
async fn sync_flush_acknowledges_durable_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MessageStoreConfig {
        flush_disk_type: rmq_broker::store::FlushDiskType::SyncFlush,
        ..small_config(dir.path())
    };
    let store = MessageStore::open(cfg).unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.put_message(msg("S", i % 4, &[1u8; 1024], None, None))
                .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, PutStatus::PutOk);
        let a = r.append.unwrap();
        assert!(store.flushed_phy_offset() >= a.wrote_offset + a.wrote_bytes as i64);
    }
    store.shutdown();
}

#[tokio::test]
async fn sync_flush_timeout_is_reported_and_the_message_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MessageStoreConfig {
        flush_disk_type: rmq_broker::store::FlushDiskType::SyncFlush,
        sync_flush_timeout: 200,
        ..small_config(dir.path())
    };
    let store = MessageStore::open(cfg).unwrap();
    assert_eq!(
        store
            .put_message(msg("F", 0, b"first", None, None))
            .await
            .status,
        PutStatus::PutOk
    );
    // A disk that does not finish flushing: the put is stored but reports the timeout.
    store.set_flush_paused(true);
    let started = std::time::Instant::now();
    let r = store
        .put_message(msg("F", 0, b"slow disk", None, None))
        .await;
    assert_eq!(r.status, PutStatus::FlushDiskTimeout);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    let a = r
        .append
        .expect("a timed-out put still says where it was stored");
    assert_eq!(a.logics_offset, 1);
    // A put that does not wait (WAIT=false on the wire) returns before the flush.
    let mut m = msg("F", 0, b"nowait", None, None);
    m.wait_store_msg_ok = false;
    assert_eq!(store.put_message(m).await.status, PutStatus::PutOk);
    store.set_flush_paused(false);
    assert_eq!(
        store
            .put_message(msg("F", 0, b"fast again", None, None))
            .await
            .status,
        PutStatus::PutOk
    );
    assert_eq!(read_all(&store, "F", 0).len(), 4);
    store.shutdown();
}

/// One store per directory: a second open is refused while the first runs, and succeeds at
/// once after it shut down, even with child processes being forked meanwhile (they share the
/// lock's descriptor until they exec).
#[test]
fn the_store_directory_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    match MessageStore::open(small_config(dir.path())) {
        Err(rmq_broker::store::StoreError::Locked { path }) => assert!(path.ends_with("lock")),
        other => panic!("second open: {:?}", other.err()),
    }
    let forks = std::thread::spawn(|| {
        for _ in 0..20 {
            let _ = std::process::Command::new("true").status();
        }
    });
    store.shutdown();
    let again = MessageStore::open(small_config(dir.path())).expect("reopens after shutdown");
    again.shutdown();
    forks.join().unwrap();
}

/// Recovery that ends exactly where a file ends (its end-of-file blank written, nothing valid
/// in the next one) leaves a full file: the next append starts the next file instead of
/// writing past the end.
#[tokio::test]
async fn appends_continue_after_recovery_ends_on_a_file_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path());
    let size = cfg.mapped_file_size_commit_log;
    let store = MessageStore::open(cfg.clone()).unwrap();
    let mut i = 0;
    while (store.max_phy_offset() as u64) <= size {
        let r = store
            .put_message(msg("Edge", 0, &[7u8; 1000], None, Some(&format!("e{i}"))))
            .await;
        assert!(r.status.is_stored());
        i += 1;
    }
    store.shutdown();
    // The second file's records are lost (torn), and the stop was not clean: nor did the
    // checkpoint, which vouches for what it says was flushed, reach the disk.
    let second = dir.path().join("commitlog").join(format!("{size:020}"));
    let mut bytes = std::fs::read(&second).unwrap();
    bytes[..4096].fill(0);
    std::fs::write(&second, bytes).unwrap();
    std::fs::write(dir.path().join("abort"), b"").unwrap();
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();

    let store = MessageStore::open(cfg).unwrap();
    assert_eq!(store.max_phy_offset() as u64, size);
    let r = store
        .put_message(msg("Edge", 0, b"after", None, None))
        .await;
    assert!(r.status.is_stored(), "{:?}", r.status);
    assert_eq!(r.append.unwrap().wrote_offset as u64, size);
    store.shutdown();
}

/// Puts append on their callers' threads under one lock: many of them at once, across file
/// rolls, still number each queue densely, store every record where its queue entry points,
/// and keep queue entries in commit-log order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_number_queues_densely_in_commit_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let (tasks, per_task, queues) = (16, 60, 3);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let body = vec![b'a' + (t % 26) as u8; 700];
            let mut acked = Vec::new();
            for i in 0..per_task {
                let q = (t + i) % queues;
                let r = store.put_message(msg("Busy", q, &body, None, None)).await;
                assert_eq!(r.status, PutStatus::PutOk);
                let a = r.append.unwrap();
                acked.push((q, a.logics_offset, a.wrote_offset));
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.unwrap());
    }
    wait_dispatched(&store);
    let files = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .count();
    assert!(files >= 5, "the puts rolled over {files} files");
    let total = (tasks * per_task) as i64;
    let mut seen = 0;
    for q in 0..queues {
        let mut mine: Vec<(i64, i64)> = acked
            .iter()
            .filter(|a| a.0 == q)
            .map(|a| (a.1, a.2))
            .collect();
        mine.sort();
        let n = mine.len() as i64;
        seen += n;
        // Dense, no offset given twice.
        assert_eq!(
            mine.iter().map(|m| m.0).collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>()
        );
        // Queue order is commit-log order.
        assert!(
            mine.windows(2).all(|w| w[0].1 < w[1].1),
            "queue {q} out of order"
        );
        for (offset, phys) in &mine {
            let unit = store.queue_unit("Busy", q, *offset).unwrap();
            assert_eq!(unit.commit_log_offset, *phys);
            let m = store.look_message_by_offset(*phys).unwrap();
            assert_eq!((m.queue_id, m.queue_offset), (q, *offset));
            assert_eq!(m.body.len(), 700);
        }
    }
    assert_eq!(seen, total);
    store.shutdown();
}
