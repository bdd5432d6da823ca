//! Retention and disk protection: expired files go with their queue and index files, min
//! offsets move, appends are refused when the disk is (nearly) full, and a file system that
//! really runs out of space gives a clear error without harming what is stored.

use std::process::Command;

use rmq_broker::store::{GetStatus, MessageStore, MessageStoreConfig, PutStatus};
use rmq_testkit::store::*;

fn count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

async fn fill(store: &MessageStore, n: usize) {
    for i in 0..n {
        let r = store
            .put_message(msg(
                "Old",
                (i % 2) as i32,
                &[3u8; 900],
                None,
                Some(&format!("k{i}")),
            ))
            .await;
        assert_eq!(r.status, PutStatus::PutOk);
    }
    wait_dispatched(store);
}

#[tokio::test]
async fn expired_files_are_deleted_with_their_queues_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MessageStoreConfig {
        file_reserved_time: 0,
        mapped_file_size_consume_queue: 20 * 40,
        ..small_config(dir.path())
    };
    let store = MessageStore::open(cfg).unwrap();
    fill(&store, 300).await;
    let cl_dir = dir.path().join("commitlog");
    let cq_dir = dir.path().join("consumequeue/Old/0");
    let files_before = count(&cl_dir);
    let cq_before = count(&cq_dir);
    let index_before = count(&dir.path().join("index"));
    assert!(
        files_before >= 5 && cq_before >= 3 && index_before >= 2,
        "{files_before} {cq_before} {index_before}"
    );

    store.clean_now(true);
    // Everything but the current commit-log file (and the spare made ahead of need) is gone.
    assert!(
        count(&cl_dir) <= 2,
        "{} commit log files left",
        count(&cl_dir)
    );
    let min_phys = store.min_phy_offset();
    assert!(min_phys > 0);
    // Queue files that only pointed into deleted data are gone; min offsets moved.
    assert!(count(&cq_dir) < cq_before);
    assert!(count(&dir.path().join("index")) < index_before);
    let min = store.min_offset_in_queue("Old", 0);
    assert!(min > 0 && min < 150, "min offset {min}");
    let r = store.get_messages("Old", 0, 0, 32, 1 << 20, None);
    assert_eq!(
        (r.status, r.next_begin_offset),
        (GetStatus::OffsetTooSmall, min)
    );
    // What is left is whole and readable.
    let left = read_all(&store, "Old", 0);
    assert_eq!(left.len() as i64, 150 - min);
    assert!(left.iter().all(|m| m.commit_log_offset >= min_phys));
    assert!(store
        .query_message("Old", "k0", 4, 0, i64::MAX)
        .messages
        .is_empty());
    assert_eq!(
        store
            .query_message("Old", "k299", 4, 0, i64::MAX)
            .messages
            .len(),
        1
    );
    store.shutdown();
    // The moved offsets hold across a restart.
    let store = MessageStore::open(MessageStoreConfig {
        file_reserved_time: 0,
        mapped_file_size_consume_queue: 20 * 40,
        ..small_config(dir.path())
    })
    .unwrap();
    assert_eq!(store.min_offset_in_queue("Old", 0), min);
    store.shutdown();
}

#[tokio::test]
async fn unexpired_files_stay_outside_delete_hours() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MessageStoreConfig {
        delete_when: "99".into(),
        ..small_config(dir.path())
    };
    let store = MessageStore::open(cfg).unwrap();
    fill(&store, 200).await;
    // The allocator may still be creating the next file ahead of need: compare names, so a
    // file added meanwhile is not mistaken for one kept or lost.
    let names = |dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = names(&dir.path().join("commitlog"));
    store.clean_now(false); // not a delete hour, disk not full, files not expired
    store.clean_now(true); // a delete hour, but files are within fileReservedTime (72 h)
    let after = names(&dir.path().join("commitlog"));
    assert!(
        before.is_subset(&after),
        "before {before:?}, after {after:?}"
    );
    assert_eq!(store.min_phy_offset(), 0);
    store.shutdown();
}

#[tokio::test]
async fn appends_refused_above_the_disk_warning_level() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(small_config(dir.path())).unwrap();
        fill(&store, 10).await;
        store.shutdown();
    }
    // Any real file system is above 0 % used: the store must refuse appends.
    let cfg = MessageStoreConfig {
        disk_space_warning_level_ratio: 0,
        clean_file_forcibly_enable: false,
        disk_max_used_space_ratio: 100,
        ..small_config(dir.path())
    };
    let store = MessageStore::open(cfg).unwrap();
    store.clean_now(false);
    assert!(store.is_disk_full());
    let r = store
        .put_message(msg("Old", 0, b"no room", None, None))
        .await;
    assert!(
        matches!(&r.status, PutStatus::ServiceNotAvailable(s) if s.contains("diskSpaceWarningLevelRatio")),
        "{:?}",
        r.status
    );
    // Reads still work, and nothing was lost.
    assert_eq!(read_all(&store, "Old", 0).len(), 5);
    store.shutdown();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store.clean_now(false);
    assert!(!store.is_disk_full());
    assert_eq!(
        store
            .put_message(msg("Old", 0, b"room again", None, None))
            .await
            .status,
        PutStatus::PutOk
    );
    store.shutdown();
}

/// A tiny tmpfs mounted for the test and unmounted when dropped.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallFs(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[tokio::test]
async fn a_really_full_disk_gives_a_clear_error_and_keeps_data() {
    let fs = SmallFs::mount("1m");
    let cfg = MessageStoreConfig {
        mapped_file_size_commit_log: 256 * 1024,
        mapped_file_size_consume_queue: 20 * 64,
        max_hash_slot_num: 16,
        max_index_num: 64,
        // Keep the protective thresholds out of the way: this is about ENOSPC itself.
        disk_space_warning_level_ratio: 100,
        disk_max_used_space_ratio: 100,
        clean_file_forcibly_enable: false,
        ..small_config(fs.0.path())
    };
    let store = MessageStore::open(cfg.clone()).unwrap();
    // Ballast, freed later to show the store catches up once space comes back.
    let ballast = fs.0.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 96 * 1024]).unwrap();
    let mut acked = 0;
    let mut failure = None;
    for i in 0..2000 {
        let r = store
            .put_message(msg("Full", 0, &[9u8; 1000], None, Some(&format!("f{i}"))))
            .await;
        if r.status == PutStatus::PutOk {
            acked += 1;
        } else {
            failure = Some(r.status);
            break;
        }
    }
    let failure = failure.expect("a 1 MiB file system must fill up");
    // Either the commit log could not get a new file, or a consume queue or index file could
    // not be created for a stored record, and appends stop until it can.
    assert!(
        matches!(&failure, PutStatus::CreateMappedFileFailed(s) | PutStatus::ServiceNotAvailable(s) if s.contains("No space left")),
        "{failure:?}"
    );
    assert!(acked > 100, "{acked}");
    // Space comes back: every acknowledged message becomes readable, intact.
    std::fs::remove_file(&ballast).unwrap();
    let all = read_all(&store, "Full", 0);
    assert_eq!(all.len(), acked);
    assert!(all
        .iter()
        .all(|m| m.body.len() == 1000 && m.body.iter().all(|b| *b == 9)));
    store.shutdown();
    let store = MessageStore::open(cfg).unwrap();
    assert_eq!(read_all(&store, "Full", 0).len(), acked);
    store.shutdown();
}
