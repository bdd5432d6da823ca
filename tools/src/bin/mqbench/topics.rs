//! `mqbench topics`: many topics on one cluster. Creates `--count` topics on every master
//! (UPDATE_AND_CREATE_TOPIC, `--concurrency` in flight), waits until the name server lists
//! them all (the brokers register them), looks every one of them up (GET_ROUTEINFO_BY_TOPIC,
//! one request in flight), and times the topic list and the cluster info.
//!
//! ```text
//! mqbench topics -n 127.0.0.1:9876 --count 10000 --queues 8
//! ```

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use rmq_remoting::header::{
    CreateTopicRequestHeader, DeleteTopicFromNamesrvRequestHeader, DeleteTopicRequestHeader,
    GetRouteInfoRequestHeader,
};
use rmq_remoting::protocol::topic::perm;
use rmq_remoting::protocol::TopicList;
use rmq_remoting::{JsonBody, RemotingClient, RemotingCommand, RequestCode, ResponseCode};

use crate::route::{cluster_info, name_servers};

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Name server address list, `host:port;host:port` (or NAMESRV_ADDR).
    #[arg(
        short = 'n',
        long = "namesrvAddr",
        env = "NAMESRV_ADDR",
        default_value = "127.0.0.1:9876"
    )]
    pub namesrv: String,
    /// How many topics.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Read and write queues of each topic on each master.
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// Topic names are this prefix and a number.
    #[arg(long, default_value = "ScaleTopic")]
    pub prefix: String,
    /// Creation (and deletion) requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Longest wait for the name server to list every topic, in seconds.
    #[arg(long, default_value_t = 300)]
    pub seconds: u64,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 10000)]
    pub timeout: u64,
    /// The topics exist already: only measure.
    #[arg(long = "noCreate")]
    pub no_create: bool,
    /// Delete the topics from the brokers and the name servers at the end.
    #[arg(long)]
    pub delete: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().map(ms).unwrap_or(0.0)
}

/// The median time of `n` calls of `req`, and the size of the last answer's body.
async fn timed(
    client: &RemotingClient,
    ns: &str,
    req: impl Fn() -> RemotingCommand,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<(f64, usize)> {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = client.invoke(ns, req(), timeout).await?.ensure_success()?;
        times.push(t.elapsed());
        size = r.body.len();
    }
    times.sort();
    Ok((percentile(&times, 0.5), size))
}

async fn listed(
    client: &RemotingClient,
    ns: &str,
    prefix: &str,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let r = client
        .invoke(
            ns,
            RemotingCommand::request(RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
            timeout,
        )
        .await?
        .ensure_success()?;
    Ok(TopicList::decode(&r.body)?
        .topic_list
        .iter()
        .filter(|t| t.starts_with(prefix))
        .count())
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(o.timeout);
    let client = RemotingClient::default()
        .with_credentials(rmq_acl::credential::load(&rmq_acl::credential::default_path()).ok());
    let (ns, info) = cluster_info(&client, &o.namesrv, timeout).await?;
    let masters: Vec<String> = info
        .broker_addr_table
        .values()
        .filter_map(|b| b.master_addr().map(String::from))
        .collect();
    anyhow::ensure!(!masters.is_empty(), "no master broker registered with {ns}");
    let names: Vec<String> = (0..o.count)
        .map(|i| format!("{}{i:06}", o.prefix))
        .collect();
    let already = listed(&client, &ns, &o.prefix, timeout).await?;
    println!(
        "topics: {} topics x {} queues on {} master(s), name server {ns} lists {already} already",
        o.count,
        o.queues,
        masters.len()
    );

    let mut create_s = 0.0;
    if !o.no_create {
        let started = Instant::now();
        let failed = stream::iter(names.iter())
            .map(|t| {
                let (client, masters) = (&client, &masters);
                async move {
                    for addr in masters {
                        let req = RemotingCommand::request_with_header(
                            RequestCode::UPDATE_AND_CREATE_TOPIC,
                            &CreateTopicRequestHeader {
                                topic: t.clone(),
                                default_topic: "TBW102".into(),
                                read_queue_nums: o.queues,
                                write_queue_nums: o.queues,
                                perm: perm::READ | perm::WRITE,
                                topic_filter_type: "SINGLE_TAG".into(),
                                ..Default::default()
                            },
                        );
                        match client.invoke(addr, req, timeout).await {
                            Ok(r) if r.code == ResponseCode::SUCCESS => {}
                            Ok(r) => return Some(format!("{t} on {addr}: {}", r.code_name())),
                            Err(e) => return Some(format!("{t} on {addr}: {e}")),
                        }
                    }
                    None
                }
            })
            .buffer_unordered(o.concurrency.max(1))
            .filter_map(|f| async move { f })
            .collect::<Vec<String>>()
            .await;
        create_s = started.elapsed().as_secs_f64();
        println!(
            "created in {create_s:.2} s ({:.0} topics/s), {} failed{}",
            o.count as f64 / create_s,
            failed.len(),
            failed
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        );
    }

    // Until the name server lists them all: the brokers' registrations got through.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(o.seconds);
    let listed_after = loop {
        let n = listed(&client, &ns, &o.prefix, timeout).await?;
        if n >= o.count {
            break started.elapsed();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the name server lists {n} of {} topics after {} s",
            o.count,
            o.seconds
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "listed by the name server {:.0} ms after the last creation",
        ms(listed_after)
    );

    // Every topic routes, and how fast.
    let mut lat = Vec::with_capacity(names.len());
    let mut missing = 0;
    for t in &names {
        let req = RemotingCommand::request_with_header(
            RequestCode::GET_ROUTEINFO_BY_TOPIC,
            &GetRouteInfoRequestHeader {
                topic: t.clone(),
                accept_standard_json_only: Some(true),
            },
        );
        let t0 = Instant::now();
        let r = client.invoke(&ns, req, timeout).await?;
        lat.push(t0.elapsed());
        if r.code != ResponseCode::SUCCESS {
            missing += 1;
        }
    }
    lat.sort();
    let (list_ms, list_bytes) = timed(
        &client,
        &ns,
        || RemotingCommand::request(RequestCode::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
        5,
        timeout,
    )
    .await?;
    let (cluster_ms, cluster_bytes) = timed(
        &client,
        &ns,
        || RemotingCommand::request(RequestCode::GET_BROKER_CLUSTER_INFO),
        5,
        timeout,
    )
    .await?;
    println!(
        "route lookups: {} of {} routed, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        lat.len() - missing,
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!("topic list: {list_ms:.2} ms ({list_bytes} bytes); cluster info: {cluster_ms:.2} ms ({cluster_bytes} bytes)");
    println!(
        "[row] topics={} queues={} create_s={create_s:.2} listed_ms={:.0} route_p50_ms={:.3} route_p99_ms={:.3} topic_list_ms={list_ms:.2} cluster_info_ms={cluster_ms:.2} unrouted={missing}",
        o.count,
        o.queues,
        ms(listed_after),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    );

    if o.delete {
        let started = Instant::now();
        let servers = name_servers(&o.namesrv);
        stream::iter(names.iter())
            .map(|t| {
                let (client, masters, servers) = (&client, &masters, &servers);
                async move {
                    for addr in masters {
                        let req = RemotingCommand::request_with_header(
                            RequestCode::DELETE_TOPIC_IN_BROKER,
                            &DeleteTopicRequestHeader { topic: t.clone() },
                        );
                        let _ = client.invoke(addr, req, timeout).await;
                    }
                    for ns in servers {
                        let req = RemotingCommand::request_with_header(
                            RequestCode::DELETE_TOPIC_IN_NAMESRV,
                            &DeleteTopicFromNamesrvRequestHeader {
                                topic: t.clone(),
                                cluster_name: None,
                            },
                        );
                        let _ = client.invoke(ns, req, timeout).await;
                    }
                }
            })
            .buffer_unordered(o.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
        println!("deleted in {:.2} s", started.elapsed().as_secs_f64());
    }
    anyhow::ensure!(missing == 0, "{missing} topics do not route");
    Ok(())
}
