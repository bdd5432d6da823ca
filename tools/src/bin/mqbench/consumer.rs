//! The consumer side: one long-polling pull loop per readable queue, as a push consumer runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use rmq_remoting::header::{
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, PullMessageRequestHeader,
    PullMessageResponseHeader,
};
use rmq_remoting::{RemotingClient, RemotingCommand, RequestCode, ResponseCode};
use tokio_util::sync::CancellationToken;

use rmq_remoting::protocol::route::TopicRouteData;

use crate::broker::BrokerCpu;
use crate::report::Outcome;
use crate::route::{queues, Queue};
use crate::stats::Stats;
use crate::Common;

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    #[command(flatten)]
    pub common: Common,
    /// Consumer group.
    #[arg(short = 'g', long, default_value = "benchmark_consumer")]
    pub group: String,
    /// Start from the first message still stored instead of the end of each queue.
    #[arg(long)]
    pub from_first: bool,
    /// Messages per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: i32,
}

/// Counts records and sums body bytes and end-to-end latency (now − born time) without
/// decoding properties.
fn scan(mut body: bytes::Bytes, now_ms: i64) -> (u64, u64, Vec<u64>) {
    let (mut n, mut bytes, mut lat) = (0u64, 0u64, Vec::new());
    while body.len() >= 8 {
        let total = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if total <= 0 || total as usize > body.len() {
            break;
        }
        let rec = body.split_to(total as usize);
        if rec.len() > 48 {
            let born = i64::from_be_bytes(rec[40..48].try_into().unwrap_or_default());
            lat.push(((now_ms - born).max(0) as u64) * 1000);
        }
        bytes += rec.len() as u64;
        n += 1;
    }
    let _ = body.remaining();
    (n, bytes, lat)
}

async fn start_offset(client: &RemotingClient, q: &Queue, topic: &str, timeout: Duration) -> i64 {
    let req = RemotingCommand::request_with_header(
        RequestCode::GET_MAX_OFFSET,
        &GetMaxOffsetRequestHeader {
            topic: topic.to_string(),
            queue_id: q.queue_id,
            committed: Some(true),
        },
    );
    match client
        .invoke(&q.addr, req, timeout)
        .await
        .and_then(|r| r.ensure_success())
    {
        Ok(r) => r
            .decode_header::<GetMaxOffsetResponseHeader>()
            .map(|h| h.offset)
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Pulls from every readable queue of `route` until the time or the count is up.
pub async fn run(o: Options, route: TopicRouteData) -> anyhow::Result<Outcome> {
    let timeout = Duration::from_millis(o.common.timeout);
    let client = o.common.client();
    let targets = queues(&route, false);
    anyhow::ensure!(
        !targets.is_empty(),
        "topic {} has no readable queue",
        o.common.topic
    );
    println!(
        "consumer: topic {} ({} queues), group {}, from {}, {} s",
        o.common.topic,
        targets.len(),
        o.group,
        if o.from_first {
            "the first message"
        } else {
            "the end"
        },
        o.common.seconds
    );
    let cpu = BrokerCpu::start(o.common.broker_metrics.as_deref()).await?;
    let stats = Stats::new();
    let stop = CancellationToken::new();
    let reporter = tokio::spawn(stats.clone().report_every_second("Consume", stop.clone()));
    let halt = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let o = Arc::new(o);
    let mut tasks = Vec::new();
    for q in targets {
        let (client, halt, stats, o, received) = (
            client.clone(),
            halt.clone(),
            stats.clone(),
            o.clone(),
            received.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut offset = if o.from_first {
                0
            } else {
                start_offset(&client, &q, &o.common.topic, timeout).await
            };
            while !halt.load(Ordering::Relaxed) {
                let req = RemotingCommand::request_with_header(
                    RequestCode::PULL_MESSAGE,
                    &PullMessageRequestHeader {
                        consumer_group: o.group.clone(),
                        topic: o.common.topic.clone(),
                        queue_id: q.queue_id,
                        queue_offset: offset,
                        max_msg_nums: o.pull_batch,
                        // commit offset | suspend | inline subscription
                        sys_flag: 0x1 | 0x2 | 0x4,
                        commit_offset: offset,
                        suspend_timeout_millis: 1000,
                        subscription: Some("*".into()),
                        sub_version: 0,
                        expression_type: Some("TAG".into()),
                        ..Default::default()
                    },
                );
                match client
                    .invoke(&q.addr, req, Duration::from_millis(1000) + timeout)
                    .await
                {
                    Ok(r) => {
                        let next = r
                            .decode_header::<PullMessageResponseHeader>()
                            .map(|h| h.next_begin_offset)
                            .ok();
                        if r.code == ResponseCode::SUCCESS {
                            let (n, bytes, lat) =
                                scan(r.body.clone(), rmq_remoting::util::now_millis());
                            for (i, l) in lat.iter().enumerate() {
                                stats.ok(
                                    if i == 0 { n } else { 0 },
                                    if i == 0 { bytes } else { 0 },
                                    Some(*l),
                                );
                            }
                            if received.fetch_add(n, Ordering::Relaxed) + n >= o.common.count
                                && o.common.count > 0
                            {
                                halt.store(true, Ordering::Relaxed);
                            }
                        }
                        if let Some(next) = next {
                            offset = next;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pull failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
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
    let (line, totals) = stats.summary("Consume");
    println!("{line}");
    let usage = match cpu {
        Some(cpu) => Some(cpu.finish(totals.ok).await?),
        None => None,
    };
    Ok(Outcome { totals, usage })
}
