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
