//! The producer side: senders round-robin over the topic's writable queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_remoting::header::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_remoting::message::{encode_batch, encode_properties, BatchItem, Properties};
use rmq_remoting::{RemotingCommand, RequestCode, ResponseCode};
use tokio_util::sync::CancellationToken;

use rmq_remoting::protocol::route::TopicRouteData;

use crate::broker::BrokerCpu;
use crate::report::Outcome;
use crate::route::{queues, Queue};
use crate::stats::Stats;
use crate::{Common, SendMode};

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent senders (RocketMQ's `-w` threads).
    #[arg(short = 'w', long, default_value_t = 64)]
    pub threads: usize,
    /// Message body size in bytes.
    #[arg(short = 's', long, default_value_t = 128)]
    pub size: usize,
    #[arg(long, value_enum, default_value = "sync")]
    pub mode: SendMode,
    /// Requests in flight per sender in async mode.
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Messages per send (SEND_BATCH_MESSAGE when > 1).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Give every message a key (indexed by the broker).
    #[arg(short = 'k', long)]
    pub keys: bool,
    /// Number of distinct tags to cycle through (0: none).
    #[arg(short = 'c', long, default_value_t = 0)]
    pub tags: usize,
    /// Queues per broker if the topic has to be created.
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
}

fn properties(n: u64, o: &Options) -> HashMap<String, String> {
    let mut p = HashMap::new();
    if o.keys {
        p.insert("KEYS".to_string(), format!("bench-{n}"));
    }
    if o.tags > 0 {
        p.insert("TAGS".to_string(), format!("Tag{}", n as usize % o.tags));
    }
    p.insert("WAIT".to_string(), "true".to_string());
    p
}

fn request(q: &Queue, topic: &str, body: &Bytes, n: u64, o: &Options) -> RemotingCommand {
    let batch = o.batch > 1;
    let header = SendMessageRequestHeaderV2::from_v1(SendMessageRequestHeader {
        producer_group: "benchmark_producer".into(),
        topic: topic.to_string(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 8,
        queue_id: q.queue_id,
        sys_flag: 0,
        born_timestamp: rmq_remoting::util::now_millis(),
        flag: 0,
        properties: (!batch).then(|| encode_properties(&properties(n, o))),
        batch: Some(batch),
        ..Default::default()
    });
    if batch {
        let items: Vec<BatchItem> = (0..o.batch as u64)
            .map(|i| BatchItem {
                flag: 0,
                body: body.clone(),
                properties: Properties::from_map(&properties(n + i, o)),
            })
            .collect();
        RemotingCommand::request_with_header(RequestCode::SEND_BATCH_MESSAGE, &header)
            .with_body(encode_batch(&items).freeze())
    } else {
        RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &header)
            .with_body(body.clone())
    }
}

/// Sends to the queues of `route` (see [`crate::broker::prepare`]) until the time or the
/// count is up.
pub async fn run(o: Options, route: TopicRouteData) -> anyhow::Result<Outcome> {
    let timeout = Duration::from_millis(o.common.timeout);
    let client = o.common.client();
    let targets = Arc::new(queues(&route, true));
    anyhow::ensure!(
        !targets.is_empty(),
        "topic {} has no writable queue",
        o.common.topic
    );
    println!(
        "producer: topic {} ({} queues), {} senders, {} B bodies, mode {:?}{}, {} s{}",
        o.common.topic,
        targets.len(),
        o.threads,
        o.size,
        o.mode,
        if o.batch > 1 {
            format!(", batches of {}", o.batch)
        } else {
            String::new()
        },
        o.common.seconds,
        if o.common.count > 0 {
            format!(" or {} messages", o.common.count)
        } else {
            String::new()
        }
    );
    let cpu = BrokerCpu::start(o.common.broker_metrics.as_deref()).await?;
    let stats = Stats::new();
    let stop = CancellationToken::new();
    let reporter = tokio::spawn(stats.clone().report_every_second("Send", stop.clone()));
    let body = Bytes::from(vec![b'a'; o.size]);
    let issued = Arc::new(AtomicU64::new(0));
    let halt = Arc::new(AtomicBool::new(false));
    let o = Arc::new(o);
    let per_sender = if o.mode == SendMode::Async {
        o.inflight.max(1)
    } else {
        1
    };
    let mut tasks = Vec::new();
    for w in 0..o.threads * per_sender {
        let (client, targets, body, issued, halt, stats, o) = (
            client.clone(),
            targets.clone(),
            body.clone(),
            issued.clone(),
            halt.clone(),
            stats.clone(),
            o.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !halt.load(Ordering::Relaxed) {
                let n = issued.fetch_add(o.batch.max(1) as u64, Ordering::Relaxed);
                if o.common.count > 0 && n >= o.common.count {
                    break;
                }
                let q = &targets[i % targets.len()];
                i += 1;
                let req = request(q, &o.common.topic, &body, n, &o);
                let msgs = o.batch.max(1) as u64;
                let bytes = msgs * body.len() as u64;
                let t0 = Instant::now();
                if o.mode == SendMode::Oneway {
                    match client.invoke_oneway(&q.addr, req).await {
                        Ok(()) => stats.ok(msgs, bytes, None),
                        Err(_) => stats.failed(msgs),
                    }
                    continue;
                }
                match client.invoke(&q.addr, req, timeout).await {
                    Ok(r) if r.code == ResponseCode::SUCCESS => {
                        stats.ok(msgs, bytes, Some(t0.elapsed().as_micros() as u64))
                    }
                    Ok(r) => {
                        stats.failed(msgs);
                        tracing::warn!(code = r.code_name(), remark = ?r.remark, "send failed");
                        if r.code != ResponseCode::SYSTEM_BUSY
                            && r.code != ResponseCode::FLUSH_DISK_TIMEOUT
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Err(e) => {
                        stats.failed(msgs);
                        tracing::warn!(error = %e, "send failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    let deadline = tokio::time::sleep(Duration::from_secs(o.common.seconds));
    tokio::pin!(deadline);
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut deadline => { halt.store(true, Ordering::Relaxed); all.await; }
        _ = &mut all => {}
    }
    stop.cancel();
    let _ = reporter.await;
    let (line, totals) = stats.summary("Send");
    println!("{line}");
    let usage = match cpu {
        Some(cpu) => Some(cpu.finish(totals.ok).await?),
        None => None,
    };
    Ok(Outcome { totals, usage })
}
