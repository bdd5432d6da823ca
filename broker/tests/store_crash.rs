//! Crash recovery with real processes: kill -9 a process appending under load, and damage the
//! tail of the last file by hand. Every acknowledged record must come back at its queue
//! offset; after a damaged tail, everything before it is served.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rmq_broker::store::{GetStatus, MessageStore, MessageStoreConfig, PutStatus};
use rmq_testkit::store::*;

const TOOL: &str = env!("CARGO_BIN_EXE_rmq-store-tool");

#[derive(Debug, Clone, Copy)]
struct Ack {
    queue: i32,
    queue_offset: i64,
    phys: i64,
    crc: i32,
}

fn parse(line: &str) -> Ack {
    let p: Vec<i64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    Ack {
        queue: p[0] as i32,
        queue_offset: p[1],
        phys: p[2],
        crc: p[3] as i32,
    }
}

fn config(dir: &std::path::Path) -> MessageStoreConfig {
    MessageStoreConfig {
        store_path_root_dir: dir.display().to_string(),
        mapped_file_size_commit_log: 1 << 20,
        mapped_file_size_consume_queue: 20 * 1000,
        max_hash_slot_num: 1024,
        max_index_num: 4096,
        ..Default::default()
    }
}

/// Every acknowledged record is readable at its queue offset with its body.
fn verify(store: &MessageStore, acks: &[Ack]) {
    wait_dispatched(store);
    for a in acks {
        let r = store.get_messages("CrashTopic", a.queue, a.queue_offset, 1, 1 << 20, None);
        assert_eq!(r.status, GetStatus::Found, "ack {a:?}");
        let m = decode(&r.messages[0]);
        assert_eq!(
            (m.queue_offset, m.commit_log_offset, m.body_crc),
            (a.queue_offset, a.phys, a.crc),
            "ack {a:?}"
        );
        assert_eq!(rmq_remoting::message::body_crc(&m.body), a.crc);
    }
}

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_record() {
    for flush in ["ASYNC_FLUSH", "SYNC_FLUSH"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(TOOL)
            .args(["append", "--dir"])
            .arg(dir.path())
            .args([
                "--flush",
                flush,
                "--writers",
                "16",
                "--file-size",
                "1048576",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(l) = line.strip_suffix('\n').or(Some(&line)) {
                    if l.split_whitespace().count() == 4 {
                        acks.push(parse(l));
                    }
                }
            }
            acks
        });
        // Let it write across several 1 MiB files, then kill it mid-stride.
        let start = Instant::now();
        let limit = if flush == "SYNC_FLUSH" {
            Duration::from_millis(2500)
        } else {
            Duration::from_millis(1500)
        };
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        let acks = reader.join().unwrap();
        assert!(
            acks.len() > 500,
            "{flush}: only {} acks before the kill",
            acks.len()
        );
        assert!(
            dir.path().join("abort").exists(),
            "killed store leaves the abort file"
        );

        let store = MessageStore::open(config(dir.path())).unwrap();
        verify(&store, &acks);
        // Queue offsets continue after the highest acknowledged ones.
        for q in 0..4 {
            let max_acked = acks
                .iter()
                .filter(|a| a.queue == q)
                .map(|a| a.queue_offset)
                .max()
                .unwrap_or(-1);
            let next = store.max_offset_in_queue("CrashTopic", q, false);
            assert!(
                next > max_acked,
                "{flush} queue {q}: next {next} <= acked {max_acked}"
            );
            let r = store
                .put_message(msg("CrashTopic", q, b"after restart", None, None))
                .await;
            assert_eq!(r.append.unwrap().logics_offset, next);
        }
        store.shutdown();
    }
}

/// Runs the tool for exactly `count` acknowledged records and returns them; the tool exits
/// without a clean shutdown.
fn write_and_crash(dir: &std::path::Path, count: u64) -> Vec<Ack> {
    let out = Command::new(TOOL)
        .args(["append", "--dir"])
        .arg(dir)
        .args([
            "--writers",
            "1",
            "--queues",
            "1",
            "--size",
            "300",
            "--file-size",
            "1048576",
            // Nothing is flushed before the tool exits, so the checkpoint vouches for none of
            // these records however slow the machine: recovery reads them all.
            "--flush-interval",
            "600000",
            "--count",
            &count.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let acks: Vec<Ack> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(parse)
        .collect();
    assert_eq!(acks.len() as u64, count);
    acks
}

/// The commit-log file holding `offset` (a spare file may already exist after it).
fn commit_log_file_for(dir: &std::path::Path, offset: u64) -> (std::path::PathBuf, u64) {
    let mut files: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_str().unwrap().parse().unwrap(), p))
        .collect();
    files.sort();
    let (from, path) = files
        .into_iter()
        .rev()
        .find(|(from, _)| *from <= offset)
        .unwrap();
    (path, from)
}

/// Damages the record of `ack` with `damage(file, position_in_file, record_len)`, reopens,
/// and checks that exactly the records before it survive and writing goes on from there.
async fn damaged_tail(name: &str, damage: impl Fn(&std::fs::File, u64, u64)) {
    let dir = tempfile::tempdir().unwrap();
    let acks = write_and_crash(dir.path(), 200);
    let victim = acks[150];
    let next = acks[151];
    let (path, from) = commit_log_file_for(dir.path(), victim.phys as u64);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    damage(
        &f,
        victim.phys as u64 - from,
        (next.phys - victim.phys) as u64,
    );
    drop(f);

    let store = MessageStore::open(config(dir.path())).unwrap();
    verify(&store, &acks[..150]);
    assert_eq!(
        store.max_offset_in_queue("CrashTopic", 0, true),
        150,
        "{name}"
    );
    assert_eq!(
        store.max_phy_offset(),
        victim.phys,
        "{name}: cut at the damaged record"
    );
    let r = store.get_messages("CrashTopic", 0, 150, 32, 1 << 20, None);
    assert_eq!(r.status, GetStatus::OffsetOverflowOne, "{name}");
    // The cut record's key is gone from query results; new writes take its place.
    assert!(
        store
            .query_message("CrashTopic", "key-150", 8, 0, i64::MAX)
            .messages
            .is_empty(),
        "{name}"
    );
    let r = store
        .put_message(msg("CrashTopic", 0, b"replacement", None, Some("key-new")))
        .await;
    assert_eq!(r.status, PutStatus::PutOk);
    let a = r.append.unwrap();
    assert_eq!((a.logics_offset, a.wrote_offset), (150, victim.phys));
    wait_dispatched(&store);
    assert_eq!(
        decode(
            &store
                .get_messages("CrashTopic", 0, 150, 1, 1 << 20, None)
                .messages[0]
        )
        .body
        .as_ref(),
        b"replacement"
    );
    assert_eq!(
        store
            .query_message("CrashTopic", "key-new", 8, 0, i64::MAX)
            .messages
            .len(),
        1
    );
    store.shutdown();
    // And a clean restart after that sees the same.
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(
        store.max_offset_in_queue("CrashTopic", 0, true),
        151,
        "{name}"
    );
    store.shutdown();
}

#[tokio::test]
async fn corrupted_body_is_cut_by_crc() {
    damaged_tail("flipped body byte", |f, pos, len| {
        let at = pos + len - 40; // inside the body, before topic and properties
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0xFF], at).unwrap();
    })
    .await;
}

#[tokio::test]
async fn torn_write_is_cut() {
    // The record's second half never reached the disk.
    damaged_tail("zeroed half record", |f, pos, len| {
        f.write_all_at(&vec![0u8; (len / 2) as usize], pos + len / 2)
            .unwrap();
        // ...and nothing after it either.
        f.write_all_at(&vec![0u8; 200 * 400], pos + len).unwrap();
    })
    .await;
}

#[tokio::test]
async fn garbage_size_field_is_cut() {
    damaged_tail("bad size", |f, pos, _| {
        f.write_all_at(&0x7FFF_FFF0i32.to_be_bytes(), pos).unwrap();
    })
    .await;
}

#[tokio::test]
async fn file_truncated_by_hand_is_cut() {
    // `truncate -s` through the middle of a record: the file is short on disk.
    let dir = tempfile::tempdir().unwrap();
    let acks = write_and_crash(dir.path(), 200);
    let victim = acks[150];
    let (path, from) = commit_log_file_for(dir.path(), victim.phys as u64);
    // Drop the spare file after it, so this is the last file.
    for e in std::fs::read_dir(dir.path().join("commitlog")).unwrap() {
        let p = e.unwrap().path();
        if p > path {
            std::fs::remove_file(p).unwrap();
        }
    }
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(victim.phys as u64 - from + 37).unwrap();
    drop(f);
    let store = MessageStore::open(config(dir.path())).unwrap();
    verify(&store, &acks[..150]);
    assert_eq!(store.max_offset_in_queue("CrashTopic", 0, true), 150);
    assert_eq!(store.max_phy_offset(), victim.phys);
    let r = store
        .put_message(msg("CrashTopic", 0, b"again", None, None))
        .await;
    assert_eq!(r.append.unwrap().logics_offset, 150);
    store.shutdown();
}

#[tokio::test]
async fn short_file_in_the_middle_is_refused_clearly() {
    // Only the last file can be a torn tail; a short file before it means lost data.
    let dir = tempfile::tempdir().unwrap();
    // Enough for a second file: the spare made ahead of need may not exist yet when the tool
    // exits (the allocator thread had not run, on a busy machine).
    write_and_crash(dir.path(), 4000);
    let (path, _) = commit_log_file_for(dir.path(), 0);
    // A later file exists after it, so it is not the last.
    assert!(
        std::fs::read_dir(dir.path().join("commitlog"))
            .unwrap()
            .count()
            >= 2
    );
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(4096).unwrap();
    drop(f);
    let err = MessageStore::open(config(dir.path()))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("expected 1048576"), "{err}");
}

/// A clean shutdown of the store the tool left (it exits without one): the next open takes
/// the clean-stop path, whose record of the log's end names `last` as the last record.
fn stop_cleanly(dir: &std::path::Path) {
    let store = MessageStore::open(config(dir)).unwrap();
    store.shutdown();
}

/// After a clean stop only the last record is read; when it, or what follows it, does not
/// match what the shutdown recorded, the last files are checked as before and the damage cut.
async fn clean_stop_then_damaged(name: &str, damage: impl Fn(&std::path::Path, Ack, Ack)) {
    let dir = tempfile::tempdir().unwrap();
    let acks = write_and_crash(dir.path(), 200);
    stop_cleanly(dir.path());
    damage(dir.path(), acks[198], acks[199]);
    let store = MessageStore::open(config(dir.path())).unwrap();
    verify(&store, &acks[..199]);
    assert_eq!(
        store.max_offset_in_queue("CrashTopic", 0, true),
        199,
        "{name}"
    );
    assert_eq!(store.max_phy_offset(), acks[199].phys, "{name}: cut there");
    let r = store
        .put_message(msg("CrashTopic", 0, b"after", None, None))
        .await;
    let a = r.append.unwrap();
    assert_eq!((a.logics_offset, a.wrote_offset), (199, acks[199].phys));
    store.shutdown();
    let store = MessageStore::open(config(dir.path())).unwrap();
    verify(&store, &acks[..199]);
    assert_eq!(store.max_offset_in_queue("CrashTopic", 0, true), 200);
    store.shutdown();
}

#[tokio::test]
async fn clean_stop_then_torn_last_record_is_cut() {
    clean_stop_then_damaged("zeroed second half", |dir, _, last| {
        let (path, from) = commit_log_file_for(dir, last.phys as u64);
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let pos = last.phys as u64 - from;
        // From the end of the body on: the topic and properties lengths read 0.
        f.write_all_at(&[0u8; 300], pos + 300).unwrap();
    })
    .await;
}

#[tokio::test]
async fn clean_stop_then_file_cut_short_is_cut() {
    clean_stop_then_damaged("truncated", |dir, _, last| {
        let (path, from) = commit_log_file_for(dir, last.phys as u64);
        for e in std::fs::read_dir(dir.join("commitlog")).unwrap() {
            let p = e.unwrap().path();
            if p > path {
                std::fs::remove_file(p).unwrap();
            }
        }
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(last.phys as u64 - from + 120).unwrap();
    })
    .await;
}

#[tokio::test]
async fn clean_stop_then_bytes_after_the_end_are_dropped() {
    // Nothing is lost: the recorded end is right, only what follows it is not zeroes.
    let dir = tempfile::tempdir().unwrap();
    let acks = write_and_crash(dir.path(), 50);
    stop_cleanly(dir.path());
    let last = acks[49];
    let end = {
        let store = MessageStore::open(config(dir.path())).unwrap();
        let end = store.max_phy_offset();
        store.shutdown();
        end as u64
    };
    let (path, from) = commit_log_file_for(dir.path(), last.phys as u64);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0xABu8; 64], end - from).unwrap();
    drop(f);
    let store = MessageStore::open(config(dir.path())).unwrap();
    verify(&store, &acks);
    assert_eq!(store.max_phy_offset() as u64, end);
    let r = store
        .put_message(msg("CrashTopic", 0, b"after", None, None))
        .await;
    assert_eq!(r.append.unwrap().wrote_offset as u64, end);
    wait_dispatched(&store);
    let got = store.get_messages("CrashTopic", 0, 50, 1, 1 << 20, None);
    assert_eq!(decode(&got.messages[0]).body.as_ref(), b"after");
    store.shutdown();
}

/// The checkpoint's offsets (bytes 48..64: flushed, and dispatched durably), if its CRC holds.
fn checkpoint_offsets(dir: &std::path::Path) -> Option<(i64, i64)> {
    let b = std::fs::read(dir.join("checkpoint")).ok()?;
    if b.len() < 84
        || &b[40..48] != b"RMQCKPT1"
        || crc32fast::hash(&b[..80]).to_be_bytes() != b[80..84]
    {
        return None;
    }
    let at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap());
    Some((at(48), at(56)))
}

/// Rewrites the checkpoint's offsets, keeping its CRC valid.
fn set_checkpoint_offsets(dir: &std::path::Path, physic: i64, logics: i64) {
    let path = dir.join("checkpoint");
    let mut b = std::fs::read(&path).unwrap();
    b[48..56].copy_from_slice(&physic.to_be_bytes());
    b[56..64].copy_from_slice(&logics.to_be_bytes());
    let crc = crc32fast::hash(&b[..80]);
    b[80..84].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, b).unwrap();
}

/// The tool under load (16 writers, 1 MiB files, flushes every 200 ms) until the checkpoint
/// vouches for part of the log and at least `ahead` bytes were acknowledged past it; then
/// kill -9. Returns the acknowledgements and the checkpoint's safe offset (the greater of its
/// two offsets: every record from there on is checked with its CRC on recovery).
fn load_past_the_checkpoint_and_kill(dir: &std::path::Path, ahead: i64) -> (Vec<Ack>, i64) {
    let mut child = Command::new(TOOL)
        .args(["append", "--dir"])
        .arg(dir)
        .args(["--writers", "16", "--file-size", "1048576"])
        .args(["--flush-interval", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = acks.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.split_whitespace().count() == 4 {
                sink.lock().unwrap().push(parse(&line));
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let safe = loop {
        assert!(Instant::now() < deadline, "the checkpoint never moved");
        std::thread::sleep(Duration::from_millis(20));
        let Some((p, l)) = checkpoint_offsets(dir) else {
            continue;
        };
        let max_acked = acks.lock().unwrap().iter().map(|a| a.phys).max();
        if p.min(l) > 0 && max_acked.is_some_and(|m| m > p.max(l) + ahead) {
            break p.max(l);
        }
    };
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    reader.join().unwrap();
    let mut acks = acks.lock().unwrap().clone();
    acks.sort_by_key(|a| a.phys);
    // The checkpoint may have moved on between the last look and the kill.
    let (p, l) = checkpoint_offsets(dir).unwrap();
    (acks, safe.max(p.max(l)))
}

#[tokio::test]
async fn crash_recovery_from_the_checkpoint_cuts_a_corrupt_record_in_an_earlier_file() {
    // Several files past the checkpoint are read on several threads: damage in one that is
    // not the last still ends the log there, whatever the files after it hold.
    let dir = tempfile::tempdir().unwrap();
    let (acks, safe) = load_past_the_checkpoint_and_kill(dir.path(), 3 << 20);
    let victim = *acks
        .iter()
        .find(|a| a.phys >= safe + (1 << 20))
        .expect("a record a file past the checkpoint");
    let last_file = acks.last().unwrap().phys >> 20;
    assert!(
        victim.phys >> 20 < last_file,
        "the victim is not in the last file"
    );
    let (path, from) = commit_log_file_for(dir.path(), victim.phys as u64);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let at = victim.phys as u64 - from + 100; // inside the body
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0xFF], at).unwrap();
    drop(f);

    let store = MessageStore::open(config(dir.path())).unwrap();
    let before: Vec<Ack> = acks
        .iter()
        .copied()
        .filter(|a| a.phys < victim.phys)
        .collect();
    verify(&store, &before);
    assert_eq!(
        store.max_phy_offset(),
        victim.phys,
        "cut at the corrupt record"
    );
    let files: Vec<u64> = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    // (The next one may be there again: created ahead of need since the store opened.)
    assert!(
        files.iter().all(|f| *f <= from + (1 << 20)),
        "files after the cut are gone: {files:?}"
    );
    let next = store.max_offset_in_queue("CrashTopic", victim.queue, false);
    assert_eq!(
        next, victim.queue_offset,
        "its queue goes on from the cut record"
    );
    store.shutdown();
}

#[tokio::test]
async fn a_checkpoint_offset_off_a_record_boundary_is_not_trusted() {
    // A checkpoint whose offsets do not point at a record (damaged, or from elsewhere) is
    // ignored: recovery goes by its timestamps, reading more, and loses nothing.
    let dir = tempfile::tempdir().unwrap();
    let (acks, safe) = load_past_the_checkpoint_and_kill(dir.path(), 1 << 20);
    set_checkpoint_offsets(dir.path(), safe + 1, safe + 1);
    let store = MessageStore::open(config(dir.path())).unwrap();
    verify(&store, &acks);
    store.shutdown();
}

#[tokio::test]
async fn crash_recovery_from_the_checkpoint_can_end_on_a_file_boundary() {
    // The first file ends with its blank, the second lost its first records: the log ends
    // where the first file does, and the next append starts the second file.
    let dir = tempfile::tempdir().unwrap();
    let acks = write_and_crash(dir.path(), 4000);
    let second = acks
        .iter()
        .position(|a| a.phys >= 1 << 20)
        .expect("records in the second file");
    assert_eq!(acks[second].phys, 1 << 20);
    let (path, _) = commit_log_file_for(dir.path(), 1 << 20);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0u8; 4096], 0).unwrap();
    drop(f);
    set_checkpoint_offsets(dir.path(), 0, 0);
    let store = MessageStore::open(config(dir.path())).unwrap();
    verify(&store, &acks[..second]);
    assert_eq!(store.max_phy_offset(), 1 << 20);
    let r = store
        .put_message(msg("CrashTopic", 0, b"after", None, None))
        .await;
    assert_eq!(r.append.unwrap().wrote_offset, 1 << 20);
    store.shutdown();
}
