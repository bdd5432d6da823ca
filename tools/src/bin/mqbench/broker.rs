//! What mqbench reads of the brokers themselves: their `flushDiskType` and `brokerRole`
//! (GET_BROKER_CONFIG, as `mqadmin getBrokerConfig`), and their process CPU time and resident
//! memory from the metrics endpoint.

use std::time::Duration;

use anyhow::{bail, Context};
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::role::FlushDiskType;
use rmq_remoting::{RemotingClient, RemotingCommand, RequestCode};

use crate::route::route_or_create;
use crate::Common;

/// One broker (group) of the topic's route, as its master describes itself.
#[derive(Debug, Clone)]
pub struct BrokerConf {
    pub name: String,
    pub addr: String,
    /// `flushDiskType` and `brokerRole`, or why they could not be read.
    pub conf: Result<(String, String), String>,
}

impl BrokerConf {
    pub fn line(&self) -> String {
        match &self.conf {
            Ok((flush, role)) => format!(
                "[broker] {} ({}): flushDiskType {flush}, brokerRole {role}",
                self.addr, self.name
            ),
            Err(e) => format!(
                "[broker] {} ({}): configuration not read: {e}",
                self.addr, self.name
            ),
        }
    }
}

/// The topic's route (created if missing) and its brokers, checked against the expected
/// `flushDiskType`: mqbench cannot change a broker's mode, so it refuses to measure the
/// wrong one.
pub struct Prepared {
    pub route: TopicRouteData,
    pub brokers: Vec<BrokerConf>,
}

pub async fn prepare(common: &Common, queues: i32) -> anyhow::Result<Prepared> {
    let timeout = Duration::from_millis(common.timeout);
    let admin = common.admin_client();
    let route = route_or_create(&admin, &common.namesrv, &common.topic, queues, timeout).await?;
    let mut brokers = Vec::new();
    for bd in &route.broker_datas {
        let Some(addr) = bd.master_addr() else {
            continue;
        };
        let conf = flush_and_role(&admin, addr, timeout)
            .await
            .map_err(|e| format!("{e:#}"));
        brokers.push(BrokerConf {
            name: bd.broker_name.clone(),
            addr: addr.to_string(),
            conf,
        });
    }
    admin.close_all();
    if let Some(want) = common.flush_disk_type {
        for b in &brokers {
            match &b.conf {
                Ok((flush, role)) if !flush.eq_ignore_ascii_case(want.as_str()) => bail!(
                    "broker {} ({}) runs flushDiskType={flush} (brokerRole {role}) but the \
                     workload expects {want}: not running (change the broker's broker.conf \
                     and restart it, or the workload's flush_disk_type)",
                    b.addr,
                    b.name
                ),
                Ok(_) => {}
                Err(e) => bail!(
                    "cannot check that broker {} ({}) runs flushDiskType={want}: {e}",
                    b.addr,
                    b.name
                ),
            }
        }
    }
    Ok(Prepared { route, brokers })
}

async fn flush_and_role(
    client: &RemotingClient,
    addr: &str,
    timeout: Duration,
) -> anyhow::Result<(String, String)> {
    let r = client
        .invoke(
            addr,
            RemotingCommand::request(RequestCode::GET_BROKER_CONFIG),
            timeout,
        )
        .await?
        .ensure_success()?;
    let props = rmq_remoting::config::parse_properties(&String::from_utf8_lossy(&r.body))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let get = |k: &str| {
        props
            .get(k)
            .map(|v| v.trim().to_string())
            .with_context(|| format!("GET_BROKER_CONFIG has no {k}"))
    };
    let flush = get("flushDiskType")?;
    // The canonical spelling, if it is one the broker could run with.
    let flush = flush
        .parse::<FlushDiskType>()
        .map(|f| f.to_string())
        .unwrap_or(flush);
    Ok((flush, get("brokerRole")?))
}

/// The broker's process CPU seconds at the start of a run, to charge per message at its end.
pub struct BrokerCpu {
    addr: String,
    before: f64,
}

/// CPU and memory of the broker over a run.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub us_per_msg: f64,
    /// `rocketmq_process_resident_memory_bytes` at the end, if the broker exports it.
    pub rss_bytes: Option<f64>,
}

impl BrokerCpu {
    /// Reads the counter now, if a metrics address was given (and says why it cannot).
    pub async fn start(addr: Option<&str>) -> anyhow::Result<Option<BrokerCpu>> {
        let Some(addr) = addr else {
            return Ok(None);
        };
        let text = scrape(addr).await?;
        let before = metric(&text, addr, CPU)?;
        Ok(Some(BrokerCpu {
            addr: addr.to_string(),
            before,
        }))
    }

    /// Broker CPU per message over the run, and its resident memory now; prints their lines.
    pub async fn finish(self, messages: u64) -> anyhow::Result<Usage> {
        let text = scrape(&self.addr).await?;
        let used = metric(&text, &self.addr, CPU)? - self.before;
        let rss_bytes = metric(&text, &self.addr, RSS).ok();
        let per = if messages == 0 {
            0.0
        } else {
            used * 1e6 / messages as f64
        };
        println!("[broker] CPU: {used:.2} s for {messages} messages = {per:.1} us/msg");
        if let Some(rss) = rss_bytes {
            println!("[broker] RSS: {:.1} MiB", rss / 1_048_576.0);
        }
        Ok(Usage {
            us_per_msg: per,
            rss_bytes,
        })
    }
}

const CPU: &str = "rocketmq_process_cpu_seconds_total";
const RSS: &str = "rocketmq_process_resident_memory_bytes";

/// A broker's `/metrics` page.
async fn scrape(addr: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the broker's metrics at {addr}"))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: mqbench\r\n\r\n")
        .await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    Ok(text)
}

/// The value of the first sample of `name` (the broker labels all of its samples with its
/// cluster and name) in a Prometheus text page.
fn metric(text: &str, addr: &str, name: &str) -> anyhow::Result<f64> {
    text.lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} at {addr}/metrics"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_takes_the_exact_name() {
        let page = "# HELP x\nrocketmq_process_cpu_seconds_total_x 9\n\
                    rocketmq_process_cpu_seconds_total 1.5\n\
                    rocketmq_process_resident_memory_bytes{cluster=\"c\"} 1048576\n";
        assert_eq!(super::metric(page, "a", super::CPU).unwrap(), 1.5);
        assert_eq!(super::metric(page, "a", super::RSS).unwrap(), 1048576.0);
        let e = super::metric("", "h:1", super::RSS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no rocketmq_process_resident_memory_bytes at h:1/metrics"
        );
    }
}
