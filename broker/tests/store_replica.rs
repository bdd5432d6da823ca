//! Store-level replication: a replica fed the master's records (`records_from` →
//! `append_replica`) ends up byte-identical at every offset, across file rolls, batches and
//! several topics, with the same consume queues and index, and picks up after a restart; a
//! record that does not continue the replica is refused.

use rmq_broker::store::{MessageStore, MessageStoreConfig, PutMessage};
use rmq_testkit::store::*;

async fn fill(master: &MessageStore, from: usize, to: usize) {
    for i in from..to {
        // Bodies of varying size so records straddle file ends at awkward places.
        let body = vec![b'a' + (i % 26) as u8; 300 + (i * 37) % 900];
        let topic = if i % 3 == 0 { "Orders" } else { "Audit" };
        let r = if i % 10 == 9 {
            let batch: Vec<PutMessage> = (0..4)
                .map(|k| {
                    msg(
                        topic,
                        (i % 2) as i32,
                        &body,
                        Some("B"),
                        Some(&format!("b{i}-{k}")),
                    )
                })
                .collect();
            master.put_messages(batch).await
        } else {
            master
                .put_message(msg(
                    topic,
                    (i % 2) as i32,
                    &body,
                    Some("T"),
                    Some(&format!("k{i}")),
                ))
                .await
        };
        assert!(r.status.is_stored(), "{:?}", r.status);
    }
}

/// Ships everything the replica lacks, in chunks of about `chunk` bytes.
async fn catch_up(master: &MessageStore, replica: &MessageStore, chunk: usize) {
    loop {
        let (records, _) = master.records_from(replica.max_phy_offset(), chunk);
        if records.is_empty() {
            break;
        }
        replica
            .append_replica(records)
            .await
            .expect("replica append");
    }
    assert_eq!(replica.max_phy_offset(), master.max_phy_offset());
}

fn same_queues(master: &MessageStore, replica: &MessageStore) {
    wait_dispatched(master);
    wait_dispatched(replica);
    for topic in ["Orders", "Audit"] {
        for q in 0..2 {
            let a = read_all(master, topic, q);
            let b = read_all(replica, topic, q);
            assert!(!a.is_empty());
            assert_eq!(a.len(), b.len(), "{topic}/{q}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(
                    (x.commit_log_offset, x.queue_offset, &x.body, x.uniq_key()),
                    (y.commit_log_offset, y.queue_offset, &y.body, y.uniq_key())
                );
            }
            assert_eq!(
                master.max_offset_in_queue(topic, q, true),
                replica.max_offset_in_queue(topic, q, true)
            );
        }
    }
}

#[tokio::test]
async fn a_replica_fed_the_masters_records_is_identical_and_resumes() {
    let mdir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let master = MessageStore::open(small_config(mdir.path())).unwrap();
    let replica = MessageStore::open(small_config(rdir.path())).unwrap();
    fill(&master, 0, 300).await;
    assert!(master.max_phy_offset() > 3 * 64 * 1024, "several files");
    catch_up(&master, &replica, 5000).await;
    same_queues(&master, &replica);
    // Keys are queryable on the replica too.
    let found = replica.query_message("Orders", "k3", 4, 0, i64::MAX);
    assert_eq!(found.messages.len(), 1);

    // A record that does not continue the replica is refused, and nothing is written.
    let (mut records, _) = master.records_from(0, 2000);
    let before = replica.max_phy_offset();
    let err = replica
        .append_replica(vec![records.remove(0)])
        .await
        .unwrap_err();
    assert!(err.contains("replica at commit-log offset"), "{err}");
    assert_eq!(replica.max_phy_offset(), before);

    // The replica restarts and resumes where it was.
    replica.shutdown();
    let replica = MessageStore::open(MessageStoreConfig {
        ..small_config(rdir.path())
    })
    .unwrap();
    fill(&master, 300, 400).await;
    catch_up(&master, &replica, 64 * 1024).await;
    same_queues(&master, &replica);
    replica.shutdown();
    master.shutdown();
}

/// A replica cutting its log (it rejoins behind a new master) while readers hold slices of
/// the records it cuts: the slices keep the bytes they were given, even once new records are
/// written at the same offsets, and new readers see the new records.
#[tokio::test]
async fn a_running_cut_never_rewrites_bytes_a_reader_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    fill(&store, 0, 40).await;
    wait_dispatched(&store);
    let held = read_all(&store, "Orders", 0);
    let cut_at = held[held.len() / 2].commit_log_offset;
    // Raw slices over the tail that is about to be cut, as a pull response holds them.
    let (records, _) = store.records_from(cut_at, 1 << 20);
    assert!(records.len() > 3);
    let before: Vec<Vec<u8>> = records.iter().map(|(_, b)| b.to_vec()).collect();

    store.truncate_replica(cut_at).await.expect("cut");
    assert_eq!(store.max_phy_offset(), cut_at);
    // New records land at the cut offsets.
    for i in 0..10 {
        let r = store
            .put_message(msg(
                "Orders",
                0,
                &[b'Z'; 700],
                Some("N"),
                Some(&format!("n{i}")),
            ))
            .await;
        assert!(r.status.is_stored());
    }
    for ((_, b), old) in records.iter().zip(&before) {
        assert_eq!(&b[..], &old[..], "a held slice changed under its reader");
    }
    wait_dispatched(&store);
    let now = read_all(&store, "Orders", 0);
    let fresh: Vec<_> = now
        .iter()
        .filter(|m| m.commit_log_offset >= cut_at)
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|m| m.body[..] == [b'Z'; 700][..]));
    store.shutdown();
    // What is on disk is the cut and rewritten log.
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    wait_dispatched(&store);
    assert_eq!(read_all(&store, "Orders", 0).len(), now.len());
    store.shutdown();
}

/// Records from a master are checked as sends are: a topic that would be a path, or a queue
/// id no topic has, is refused before anything is written.
#[tokio::test]
async fn hostile_replica_records_are_refused() {
    let mdir = tempfile::tempdir().unwrap();
    let rdir = tempfile::tempdir().unwrap();
    let master = MessageStore::open(small_config(mdir.path())).unwrap();
    let replica = MessageStore::open(small_config(rdir.path())).unwrap();
    fill(&master, 0, 3).await;
    let (records, _) = master.records_from(0, 1 << 20);
    let (offset, good) = records[0].clone();
    let mut m = rmq_testkit::store::decode(&good);
    for (topic, queue) in [("../../escape", 0), ("/abs/dir", 0), ("Orders", 1 << 20)] {
        m.topic = topic.to_string();
        m.queue_id = queue;
        m.store_size = 0;
        let bytes = m.encode().unwrap().freeze();
        let err = replica
            .append_replica(vec![(offset, bytes)])
            .await
            .unwrap_err();
        assert!(err.contains("from the master"), "{topic}/{queue}: {err}");
        assert_eq!(replica.max_phy_offset(), 0);
    }
    assert!(!rdir.path().join("escape").exists());
    assert!(!std::path::Path::new("/abs/dir").exists());
    replica.shutdown();
    master.shutdown();
}
