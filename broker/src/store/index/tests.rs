//! The index service and its files, including corrupt ones and Java's on-disk layout.

use std::path::Path;

use super::*;
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;

fn config(dir: &Path, slots: u32, entries: u32) -> IndexConfig {
    IndexConfig {
        dir: dir.join("index"),
        max_hash_slot_num: slots,
        max_index_num: entries,
    }
}

fn small(dir: &Path) -> IndexService {
    IndexService::open(config(dir, 16, 50)).unwrap()
}

fn req<'a>(
    topic: &'a str,
    keys: &'a str,
    uniq: Option<&'a str>,
    off: i64,
    ts: i64,
) -> IndexRequest<'a> {
    IndexRequest {
        topic,
        keys,
        uniq_key: uniq,
        commit_log_offset: off,
        store_timestamp: ts,
    }
}

fn all(svc: &IndexService, topic: &str, key: &str) -> Vec<i64> {
    svc.query(topic, key, usize::MAX, 0, i64::MAX).phy_offsets
}

/// Puts message i (offset 100*i, time T0 + 1000*i) with keys "k{i%7}" and "u{i}".
fn fill(svc: &IndexService, n: i64) {
    for i in 0..n {
        let keys = format!("k{} ", i % 7);
        let uniq = format!("u{i}");
        svc.put(&req("T", &keys, Some(&uniq), 100 * i, T0 + 1000 * i))
            .unwrap();
    }
}

fn check_filled(svc: &IndexService, n: i64) {
    for k in 0..7 {
        let expected: Vec<i64> = (0..n)
            .rev()
            .filter(|i| i % 7 == k)
            .map(|i| 100 * i)
            .collect();
        assert_eq!(all(svc, "T", &format!("k{k}")), expected, "k{k}");
    }
    for i in 0..n {
        assert_eq!(all(svc, "T", &format!("u{i}")), vec![100 * i]);
    }
}

#[test]
fn file_names_are_utc_and_parse_back() {
    for (ms, name) in [
        (0, "19700101000000000"),
        (1_700_000_000_000, "20231114221320000"),
        (951_786_123_456, "20000229010203456"),
    ] {
        assert_eq!(file_name_for(ms), name);
        assert_eq!(parse_file_name(name), Some(ms));
    }
    assert_eq!(parse_file_name("abc"), None);
}

#[test]
fn key_hash_matches_java() {
    assert_eq!(key_hash("TopicA#k1"), 1_903_240_649);
    assert_eq!(key_hash("TopicA#uniq"), 642_164_306);
    assert_eq!(key_hash("polygenelubricants"), 0);
}

#[test]
fn put_query_round_trip_with_collisions() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    // 20 messages × 2 keys = 40 entries in 16 slots: one file, colliding chains.
    fill(&svc, 20);
    assert_eq!(svc.file_count(), 1);
    check_filled(&svc, 20);
    assert!(all(&svc, "T", "missing").is_empty());
    assert!(all(&svc, "Other", "k1").is_empty());
    let r = svc.query("T", "k1", 10, 0, i64::MAX);
    assert_eq!(r.index_last_update_phyoffset, 1900);
    assert_eq!(r.index_last_update_timestamp, T0 + 19_000);
    assert_eq!(svc.end_phy_offset(), 1900);
    assert_eq!(svc.last_update_timestamp(), T0 + 19_000);
}

#[test]
fn empty_keys_and_uniq_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    svc.put(&req("T", "", None, 0, T0)).unwrap();
    svc.put(&req("T", "  ", Some(""), 10, T0)).unwrap();
    assert_eq!(svc.file_count(), 0);
    svc.put(&req("T", " a  b ", None, 20, T0)).unwrap();
    assert_eq!(all(&svc, "T", "a"), vec![20]);
    assert_eq!(all(&svc, "T", "b"), vec![20]);
    assert!(all(&svc, "T", "").is_empty());
}

#[test]
fn max_num_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    fill(&svc, 120); // spans several files
    assert!(svc.file_count() > 3);
    let r = svc.query("T", "k3", 4, 0, i64::MAX);
    assert_eq!(r.phy_offsets, vec![11_500, 10_800, 10_100, 9_400]);
    assert!(svc.query("T", "k3", 0, 0, i64::MAX).phy_offsets.is_empty());
}

#[test]
fn time_range_filtering() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    fill(&svc, 120);
    // k0: messages 0, 7, 14, ...; pick those stored in [T0+20s, T0+60s].
    let r = svc.query("T", "k0", usize::MAX, T0 + 20_000, T0 + 60_000);
    assert_eq!(r.phy_offsets, vec![5600, 4900, 4200, 3500, 2800, 2100]);
    let r = svc.query("T", "u50", usize::MAX, T0 + 50_000, T0 + 50_000);
    assert_eq!(r.phy_offsets, vec![5000]);
    assert!(svc
        .query("T", "u50", 10, T0 + 51_000, T0 + 99_000)
        .phy_offsets
        .is_empty());
    assert!(svc.query("T", "u50", 10, 0, T0 - 1).phy_offsets.is_empty());
    assert!(svc
        .query("T", "u50", 10, T0 + 200_000, i64::MAX)
        .phy_offsets
        .is_empty());
}

#[test]
fn rollover_and_queries_span_files() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    fill(&svc, 120); // 240 entries, 49 per file
    assert_eq!(svc.file_count(), 5);
    check_filled(&svc, 120);
    let mut names: Vec<_> = fs::read_dir(dir.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 5);
    assert!(names.iter().all(|n| parse_file_name(n).is_some()));
    for e in fs::read_dir(dir.path().join("index")).unwrap() {
        assert_eq!(e.unwrap().metadata().unwrap().len(), file_size(16, 50));
    }
}

#[test]
fn reopen_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let svc = small(dir.path());
        fill(&svc, 70);
        svc.flush().unwrap();
    }
    let svc = small(dir.path());
    assert_eq!(svc.file_count(), 3);
    check_filled(&svc, 70);
    assert_eq!(svc.end_phy_offset(), 6900);
    // Continues where it left off.
    for i in 70..120 {
        let keys = format!("k{}", i % 7);
        let uniq = format!("u{i}");
        svc.put(&req("T", &keys, Some(&uniq), 100 * i, T0 + 1000 * i))
            .unwrap();
    }
    drop(svc);
    let svc = small(dir.path());
    check_filled(&svc, 120);
}

#[test]
fn reput_of_older_offset_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    fill(&svc, 30);
    fill(&svc, 30); // full re-dispatch: nothing is indexed twice, the last message included
    let mut k1: Vec<i64> = (0..30)
        .rev()
        .filter(|i| i % 7 == 1)
        .map(|i| 100 * i)
        .collect();
    assert_eq!(all(&svc, "T", "k1"), k1);
    assert_eq!(all(&svc, "T", "u28"), vec![2800]);
    assert_eq!(all(&svc, "T", "u29"), vec![2900]);
    svc.put(&req("T", "k1", None, 3000, T0 + 30_000)).unwrap();
    k1.insert(0, 3000);
    assert_eq!(all(&svc, "T", "k1"), k1);
    // Idempotence across a rollover.
    let svc2_dir = tempfile::tempdir().unwrap();
    let svc2 = IndexService::open(config(svc2_dir.path(), 4, 3)).unwrap();
    svc2.put(&req("T", "a b", None, 500, T0)).unwrap();
    svc2.put(&req("T", "c", None, 600, T0)).unwrap();
    assert_eq!(svc2.file_count(), 2);
    svc2.put(&req("T", "d", None, 400, T0)).unwrap();
    assert!(all(&svc2, "T", "d").is_empty());
}

#[test]
fn truncate_after_then_reput() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    fill(&svc, 120); // files hold messages 0..=24, 24..=48, 49..=73, 73..=97, 98..=119
    assert_eq!(svc.file_count(), 5);
    svc.truncate_after(6000); // cut before message 60
    assert_eq!(svc.file_count(), 3);
    assert_eq!(svc.end_phy_offset(), 5999);
    // Re-dispatch from the cut with different keys.
    for i in 60..120 {
        let keys = format!("n{}", i % 5);
        svc.put(&req("T", &keys, None, 100 * i, T0 + 1000 * i))
            .unwrap();
    }
    assert_eq!(all(&svc, "T", "u100"), Vec::<i64>::new());
    // Stale entries of the last kept file (messages 60..=73) remain; the caller filters them.
    assert_eq!(all(&svc, "T", "u65"), vec![6500]);
    assert_eq!(all(&svc, "T", "u59"), vec![5900]);
    let n0: Vec<i64> = (60..120)
        .rev()
        .filter(|i| i % 5 == 0)
        .map(|i| 100 * i)
        .collect();
    assert_eq!(all(&svc, "T", "n0"), n0);
    drop(svc);
    let svc = small(dir.path());
    assert_eq!(all(&svc, "T", "n0"), n0);
    svc.truncate_after(0);
    assert_eq!(svc.file_count(), 0);
    assert_eq!(fs::read_dir(dir.path().join("index")).unwrap().count(), 0);
}

#[test]
fn delete_files_before_keeps_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    fill(&svc, 120);
    assert_eq!(svc.file_count(), 5);
    assert_eq!(svc.delete_files_before(0), 0);
    assert_eq!(svc.delete_files_before(4800), 1); // ends: 2400, 4800, 7300, 9700, 11900
    assert_eq!(svc.file_count(), 4);
    assert_eq!(all(&svc, "T", "u10"), Vec::<i64>::new());
    assert_eq!(all(&svc, "T", "u30"), vec![3000]);
    assert_eq!(svc.delete_files_before(i64::MAX), 3);
    assert_eq!(svc.file_count(), 1);
    assert_eq!(fs::read_dir(dir.path().join("index")).unwrap().count(), 1);
    assert_eq!(all(&svc, "T", "u119"), vec![11_900]);
    drop(svc);
    assert_eq!(small(dir.path()).file_count(), 1);
}

#[test]
fn flush_tracks_dirty_files() {
    let dir = tempfile::tempdir().unwrap();
    let svc = small(dir.path());
    fill(&svc, 60);
    let dirty = |svc: &IndexService| {
        svc.files
            .read()
            .iter()
            .filter(|f| f.dirty.load(Ordering::Acquire))
            .count()
    };
    assert_eq!(dirty(&svc), 3);
    svc.flush().unwrap();
    assert_eq!(dirty(&svc), 0);
    svc.put(&req("T", "x", None, 10_000, T0 + 100_000)).unwrap();
    assert_eq!(dirty(&svc), 1);
    svc.flush().unwrap();
    assert_eq!(dirty(&svc), 0);
}

/// Hand-computed example: slots 4, entries 5.
#[test]
fn on_disk_layout_matches_java() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::open(config(dir.path(), 4, 5)).unwrap();
    // hashCode: TopicA#uniq = 642164306 (slot 2), TopicA#k1 = -1903240649 (abs, slot 1),
    // TopicA#k2 = -1903240648 (abs, slot 0).
    svc.put(&req("TopicA", "k1 k2", Some("uniq"), 1000, T0))
        .unwrap();
    svc.put(&req("TopicA", "k1", None, 2000, T0 + 3500))
        .unwrap();
    svc.flush().unwrap();
    let path = svc.files.read()[0].path.clone();
    let b = fs::read(&path).unwrap();
    assert_eq!(b.len(), 40 + 4 * 4 + 5 * 20);
    let i64_at = |p: usize| i64::from_be_bytes(b[p..p + 8].try_into().unwrap());
    let i32_at = |p: usize| i32::from_be_bytes(b[p..p + 4].try_into().unwrap());
    assert_eq!(i64_at(0), T0);
    assert_eq!(i64_at(8), T0 + 3500);
    assert_eq!(i64_at(16), 1000);
    assert_eq!(i64_at(24), 2000);
    assert_eq!(i32_at(32), 3);
    assert_eq!(i32_at(36), 5);
    assert_eq!(
        [i32_at(40), i32_at(44), i32_at(48), i32_at(52)],
        [3, 4, 1, 0]
    );
    // Entry 0 unused.
    assert_eq!(&b[56..76], &[0u8; 20]);
    // Entry 1: uniq.
    assert_eq!(&b[76..80], &642_164_306i32.to_be_bytes());
    assert_eq!(i64_at(80), 1000);
    assert_eq!((i32_at(88), i32_at(92)), (0, 0));
    // Entry 4 at 40 + 16 + 4*20 = 136: k1 again, 3 s later, chained to entry 2.
    let expected: Vec<u8> = [
        &1_903_240_649i32.to_be_bytes()[..],
        &2000i64.to_be_bytes(),
        &3i32.to_be_bytes(),
        &2i32.to_be_bytes(),
    ]
    .concat();
    assert_eq!(&b[136..156], &expected[..]);
    // Full: the next key goes to a new file that carries the end values over.
    svc.put(&req("TopicA", "k3", None, 3000, T0 + 5000))
        .unwrap();
    assert_eq!(svc.file_count(), 2);
    assert_eq!(all(&svc, "TopicA", "k1"), vec![2000, 1000]);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(name.len(), 17);
}

#[test]
fn new_file_names_sort_after_existing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("index");
    fs::create_dir_all(&idx).unwrap();
    // A file from the "future": new names must still sort after it.
    let future = "29991231235959999";
    {
        let svc = IndexService::open(config(dir.path(), 4, 3)).unwrap();
        svc.put(&req("T", "a", None, 1, T0)).unwrap();
        let old = svc.files.read()[0].path.clone();
        drop(svc);
        fs::rename(old, idx.join(future)).unwrap();
    }
    let svc = IndexService::open(config(dir.path(), 4, 3)).unwrap();
    svc.put(&req("T", "b c", None, 2, T0)).unwrap();
    let names: Vec<String> = svc
        .files
        .read()
        .iter()
        .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names[0], future);
    assert!(names[1].as_str() > future, "{names:?}");
    assert_eq!(all(&svc, "T", "c"), vec![2]);
}

#[test]
fn unusable_files_are_skipped_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("index");
    fs::create_dir_all(&idx).unwrap();
    fs::write(idx.join("20200101000000000"), b"short").unwrap();
    let mut bad = vec![0u8; file_size(16, 50) as usize];
    bad[36..40].copy_from_slice(&51i32.to_be_bytes()); // indexCount > max
    fs::write(idx.join("20200101000000001"), &bad).unwrap();
    assert!(IndexService::open(config(dir.path(), 0, 50)).is_err());
    assert!(IndexService::open(config(dir.path(), 16, 1)).is_err());
    let svc = small(dir.path());
    assert_eq!(svc.file_count(), 0);
    svc.put(&req("T", "a", None, 1, T0)).unwrap();
    assert_eq!(svc.file_count(), 1);
    assert_eq!(fs::read_dir(&idx).unwrap().count(), 3);
}

#[test]
fn concurrent_queries_during_puts() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Arc::new(small(dir.path()));
    let writer = {
        let svc = Arc::clone(&svc);
        std::thread::spawn(move || fill(&svc, 300))
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let svc = Arc::clone(&svc);
            std::thread::spawn(move || {
                for i in 0..300 {
                    let r = svc.query("T", &format!("k{}", i % 7), 5, 0, i64::MAX);
                    assert!(r.phy_offsets.len() <= 5);
                    assert!(r.phy_offsets.windows(2).all(|w| w[0] > w[1]));
                    let _ = svc.flush();
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    check_filled(&svc, 300);
}

#[derive(Debug, Clone)]
struct Corrupt {
    bytes: Vec<u8>,
    resize: Option<usize>,
}

fn corrupt_file() -> impl Strategy<Value = Corrupt> {
    let size = file_size(16, 50) as usize;
    (
        proptest::collection::vec(any::<u8>(), size),
        proptest::option::weighted(
            0.8,
            (
                -2i32..=52,
                -2i32..=18,
                0i64..5000,
                0i64..5000,
                0i64..=T0 + 100_000,
                0i64..=T0 + 100_000,
            ),
        ),
        proptest::option::weighted(0.1, 0usize..2 * size),
    )
        .prop_map(|(mut bytes, header, resize)| {
            if let Some((count, slots, bp, ep, bt, et)) = header {
                bytes[0..8].copy_from_slice(&bt.to_be_bytes());
                bytes[8..16].copy_from_slice(&et.to_be_bytes());
                bytes[16..24].copy_from_slice(&bp.to_be_bytes());
                bytes[24..32].copy_from_slice(&ep.to_be_bytes());
                bytes[32..36].copy_from_slice(&slots.to_be_bytes());
                bytes[36..40].copy_from_slice(&count.to_be_bytes());
                // Make slot heads and prev pointers mostly small so that chains get walked.
                for p in (40..104).step_by(4) {
                    let v = i32::from(bytes[p]) % 56 - 3;
                    bytes[p..p + 4].copy_from_slice(&v.to_be_bytes());
                }
                for e in 0..50 {
                    let p = 104 + e * 20 + 16;
                    let v = i32::from(bytes[p]) % 56 - 3;
                    bytes[p..p + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
            Corrupt { bytes, resize }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn corrupt_files_never_panic(c in corrupt_file(), begin in 0i64..=T0 + 100_000, span in 0i64..200_000) {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("index");
        fs::create_dir_all(&idx).unwrap();
        let mut bytes = c.bytes.clone();
        if let Some(len) = c.resize {
            bytes.resize(len, 7);
        }
        fs::write(idx.join("20200101000000000"), &bytes).unwrap();
        let svc = small(dir.path());
        let keys = ["k0", "k1", "k2", "u1", "zz"];
        for k in keys {
            let r = svc.query("T", k, 100, begin, begin.saturating_add(span));
            prop_assert!(r.phy_offsets.len() <= 100);
            let _ = svc.query("T", k, usize::MAX, i64::MIN, i64::MAX);
        }
        let end = svc.end_phy_offset();
        for (i, k) in keys.iter().enumerate() {
            svc.put(&req("T", k, Some("u1"), end + 1 + i as i64, T0 + 200_000)).unwrap();
        }
        for k in keys {
            prop_assert!(all(&svc, "T", k).contains(&(end + 1 + keys.iter().position(|x| *x == k).unwrap() as i64)));
        }
        svc.truncate_after(end);
        svc.delete_files_before(end);
        svc.flush().unwrap();
        drop(svc);
        let svc = small(dir.path());
        let _ = svc.query("T", "k0", usize::MAX, i64::MIN, i64::MAX);
    }
}
