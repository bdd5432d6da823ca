//! `rmq-store-tool`: drives the message store on its own.
//!
//! * `bench`: append and read throughput next to the disk's own sequential-write and
//!   `fdatasync` rates, measured in the same run.
//! * `append`: appends under load and prints one line per acknowledged record
//!   (`queue_id queue_offset commit_log_offset body_crc`); with `--count` it exits right after,
//!   without a clean shutdown (a crash, as far as the store can tell). Crash tests use it.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use rmq_broker::store::{FlushDiskType, MessageStore, MessageStoreConfig, PutMessage, PutStatus};
use rmq_remoting::message::Properties;

#[derive(Parser)]
#[command(
    name = "rmq-store-tool",
    about = "Benchmark and exercise the message store"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure append and read throughput, and the disk's own rates.
    Bench {
        /// Store directory (on the disk to measure); emptied first.
        #[arg(long)]
        dir: PathBuf,
        /// Record body size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Seconds per append run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent writers.
        #[arg(long, default_value_t = 64)]
        writers: usize,
        /// Messages per batch in the batched runs.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Commit-log file size.
        #[arg(long, default_value_t = 1 << 30)]
        file_size: u64,
        /// Runs to do, of `async1,async-batch,sync1,sync-batch`.
        #[arg(long, default_value = "async1,async-batch,sync1,sync-batch")]
        runs: String,
        /// Skip measuring the disk itself.
        #[arg(long)]
        no_disk: bool,
        /// warmMapedFileEnable: the allocator touches every page of the next file.
        #[arg(long)]
        warm: bool,
    },
    /// Append until killed (or `--count` records), printing each acknowledgement.
    Append {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "CrashTopic")]
        topic: String,
        #[arg(long, default_value_t = 4)]
        queues: i32,
        #[arg(long, default_value_t = 256)]
        size: usize,
        #[arg(long, default_value_t = 1 << 20)]
        file_size: u64,
        #[arg(long, default_value = "ASYNC_FLUSH")]
        flush: FlushDiskType,
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// flushIntervalCommitLog (ms) for ASYNC_FLUSH: how long acknowledged records may stay
        /// unflushed (power-cut tests make it long).
        #[arg(long, default_value_t = 500)]
        flush_interval: u64,
        /// Stop after this many acknowledgements, without a clean shutdown.
        #[arg(long)]
        count: Option<u64>,
    },
}

fn message(topic: &str, queue_id: i32, body: Bytes, n: u64) -> PutMessage {
    // Properties in their wire form, as a send request carries them.
    let properties = Properties::from_string(format!("KEYS\u{1}key-{n}\u{2}TAGS\u{1}bench"));
    PutMessage {
        topic: topic.to_string(),
        queue_id,
        flag: 0,
        body,
        properties,
        sys_flag: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        born_host: SocketAddr::from(([127, 0, 0, 1], 50000)),
        store_host: SocketAddr::from(([127, 0, 0, 1], 10911)),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: true,
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match cli.cmd {
        Cmd::Append {
            dir,
            topic,
            queues,
            size,
            file_size,
            flush,
            writers,
            flush_interval,
            count,
        } => rt.block_on(append(
            dir,
            topic,
            queues,
            size,
            file_size,
            flush,
            writers,
            flush_interval,
            count,
        )),
        Cmd::Bench {
            dir,
            size,
            seconds,
            writers,
            batch,
            file_size,
            runs,
            no_disk,
            warm,
        } => rt.block_on(bench(BenchArgs {
            dir,
            size,
            seconds,
            writers,
            batch,
            file_size,
            runs,
            no_disk,
            warm,
        })),
    }
}

#[allow(clippy::too_many_arguments)]
async fn append(
    dir: PathBuf,
    topic: String,
    queues: i32,
    size: usize,
    file_size: u64,
    flush: FlushDiskType,
    writers: usize,
    flush_interval: u64,
    count: Option<u64>,
) {
    let config = MessageStoreConfig {
        store_path_root_dir: dir.display().to_string(),
        mapped_file_size_commit_log: file_size,
        mapped_file_size_consume_queue: 20 * 1000,
        max_hash_slot_num: 1024,
        max_index_num: 4096,
        flush_disk_type: flush,
        flush_interval_commit_log: flush_interval,
        ..Default::default()
    };
    let store = MessageStore::open(config).expect("open store");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let issued = Arc::new(AtomicU64::new(0));
    for w in 0..writers {
        let store = store.clone();
        let tx = tx.clone();
        let topic = topic.clone();
        let issued = issued.clone();
        tokio::spawn(async move {
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if count.map(|c| n >= c).unwrap_or(false) {
                    return;
                }
                let q = ((n as usize + w) % queues.max(1) as usize) as i32;
                let mut body = vec![0u8; size];
                body[..8.min(size)].copy_from_slice(&n.to_be_bytes()[..8.min(size)]);
                let crc = rmq_remoting::message::body_crc(&body);
                let r = store
                    .put_message(message(&topic, q, Bytes::from(body), n))
                    .await;
                match (r.status, r.append) {
                    (PutStatus::PutOk, Some(a)) => {
                        let _ = tx.send(format!(
                            "{q} {} {} {crc}\n",
                            a.logics_offset, a.wrote_offset
                        ));
                    }
                    (status, _) => {
                        eprintln!("put failed: {status:?}");
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    let mut acked = 0u64;
    while let Some(line) = rx.recv().await {
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        acked += 1;
        if count.map(|c| acked >= c).unwrap_or(false) {
            break;
        }
    }
    // Leave without shutdown: the abort file stays, as after a crash.
    std::process::exit(0);
}

struct Run {
    records: u64,
    bytes: u64,
    secs: f64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.secs
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1_048_576.0
    }
}

async fn bench_appends(
    store: &MessageStore,
    size: usize,
    seconds: u64,
    writers: usize,
    batch: usize,
) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let body = Bytes::from(vec![7u8; size]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, stop, records, body) =
            (store.clone(), stop.clone(), records.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let q = (w % 8) as i32;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = if batch <= 1 {
                    store
                        .put_message(message("BenchTopic", q, body.clone(), n))
                        .await
                } else {
                    let msgs = (0..batch)
                        .map(|i| message("BenchTopic", q, body.clone(), n + i as u64))
                        .collect();
                    store.put_messages(msgs).await
                };
                assert!(r.status.is_stored(), "{:?}", r.status);
                n += batch.max(1) as u64;
                records.fetch_add(batch.max(1) as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let records = records.load(Ordering::Relaxed);
    Run {
        records,
        bytes: records * size as u64,
        secs,
    }
}

fn bench_reads(store: &MessageStore) -> Run {
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    for q in 0..8 {
        let mut offset = store.min_offset_in_queue("BenchTopic", q);
        loop {
            let r = store.get_messages("BenchTopic", q, offset, 32, 256 * 1024, None);
            if r.messages.is_empty() {
                break;
            }
            records += r.messages.len() as u64;
            bytes += r.total_bytes as u64;
            offset = r.next_begin_offset;
        }
    }
    Run {
        records,
        bytes,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Sequential buffered writes of 1 MiB blocks ending in one fdatasync: MB/s.
fn disk_sequential_write(dir: &Path, total: u64) -> f64 {
    let path = dir.join("disk-seq-test");
    let f = std::fs::File::create(&path).expect("create test file");
    let block = vec![0x5Au8; 1 << 20];
    let start = Instant::now();
    let mut off = 0u64;
    while off < total {
        f.write_all_at(&block, off).expect("write");
        off += block.len() as u64;
    }
    f.sync_data().expect("fdatasync");
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    total as f64 / secs / 1_048_576.0
}

/// 4 KiB overwrite + fdatasync in a loop: syncs per second.
fn disk_fdatasync_rate(dir: &Path, seconds: f64) -> f64 {
    let path = dir.join("disk-sync-test");
    let f = std::fs::File::create(&path).expect("create test file");
    let block = vec![0xA5u8; 4096];
    f.write_all_at(&block, 0).expect("write");
    f.sync_all().expect("sync");
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        f.write_all_at(&block, (n % 256) * 4096).expect("write");
        f.sync_data().expect("fdatasync");
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

struct BenchArgs {
    dir: PathBuf,
    size: usize,
    seconds: u64,
    writers: usize,
    batch: usize,
    file_size: u64,
    runs: String,
    no_disk: bool,
    warm: bool,
}

async fn bench(args: BenchArgs) {
    let BenchArgs {
        dir,
        size,
        seconds,
        writers,
        batch,
        file_size,
        runs,
        no_disk,
        warm,
    } = args;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create bench dir");
    let seq = if no_disk {
        f64::NAN
    } else {
        let seq = disk_sequential_write(&dir, 1 << 30);
        let syncs = disk_fdatasync_rate(&dir, 3.0);
        println!("disk: sequential write {seq:.0} MB/s (1 GiB, 1 MiB blocks, one fdatasync), fdatasync {syncs:.0}/s (4 KiB)");
        seq
    };
    println!("records of {size} B body, {writers} writers, {seconds} s per run, commit-log files of {} MiB, warm={warm}", file_size >> 20);
    println!(
        "{:<34} {:>12} {:>10} {:>18}",
        "run", "records/s", "MB/s", "vs disk seq write"
    );
    let wanted: Vec<&str> = runs.split(',').map(str::trim).collect();
    for (name, flush, b) in [
        ("async1", FlushDiskType::AsyncFlush, 1),
        ("async-batch", FlushDiskType::AsyncFlush, batch),
        ("sync1", FlushDiskType::SyncFlush, 1),
        ("sync-batch", FlushDiskType::SyncFlush, batch),
    ] {
        if !wanted.contains(&name) {
            continue;
        }
        let sub = dir.join(format!("{}-{b}", flush.as_str().to_lowercase()));
        let config = MessageStoreConfig {
            store_path_root_dir: sub.display().to_string(),
            mapped_file_size_commit_log: file_size,
            flush_disk_type: flush,
            warm_mapped_file_enable: warm,
            ..Default::default()
        };
        let store = MessageStore::open(config).expect("open store");
        // Let the allocator map (and warm) the next file before timing.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let run = bench_appends(&store, size, seconds, writers, b).await;
        let label = format!("append {flush} batch={b}");
        println!(
            "{:<34} {:>12.0} {:>10.1} {:>17.1}%",
            label,
            run.rate(),
            run.mbps(),
            run.mbps() / seq * 100.0
        );
        if flush == FlushDiskType::AsyncFlush && b == 1 {
            let read = bench_reads(&store);
            println!(
                "{:<34} {:>12.0} {:>10.1} {:>17.1}%",
                "sequential read (32/pull)",
                read.rate(),
                read.mbps(),
                read.mbps() / seq * 100.0
            );
        }
        store.shutdown();
        let _ = std::fs::remove_dir_all(&sub);
    }
}
