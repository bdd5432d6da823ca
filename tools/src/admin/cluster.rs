//! `clusterList`: every broker of every cluster, with what GET_BROKER_RUNTIME_INFO says.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Result;
use rmq_remoting::protocol::route::ClusterInfo;
use rmq_remoting::util::now_millis;

use super::cli::ClusterListArgs;
use super::{Admin, Out};

pub async fn cluster_list(admin: &Admin, args: &ClusterListArgs, out: Out<'_>) -> Result<()> {
    let mut round = 0u64;
    loop {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(args.interval.unwrap_or(1))).await;
        }
        round += 1;
        let info = admin.cluster_info().await?;
        let clusters: BTreeSet<String> = match &args.cluster {
            Some(c) if !c.trim().is_empty() => [c.trim().to_string()].into(),
            _ => info.cluster_addr_table.keys().cloned().collect(),
        };
        if args.more_stats {
            print_more_stats(admin, &info, &clusters, out).await?;
        } else {
            print_base_info(admin, &info, &clusters, out).await?;
        }
        out.flush()?;
        if args.interval.is_none() {
            return Ok(());
        }
    }
}

/// `(cluster, broker name, broker id, address)` of every broker of `clusters`, sorted.
fn brokers<'a>(
    info: &'a ClusterInfo,
    clusters: &'a BTreeSet<String>,
) -> Vec<(&'a str, &'a str, i64, &'a str)> {
    let mut rows = Vec::new();
    for cluster in clusters {
        let names: BTreeSet<&String> = info
            .cluster_addr_table
            .get(cluster)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        for name in names {
            if let Some(bd) = info.broker_addr_table.get(name) {
                for (id, addr) in &bd.broker_addrs {
                    rows.push((cluster.as_str(), name.as_str(), *id, addr.as_str()));
                }
            }
        }
    }
    rows
}

/// Runtime stats of a broker; an empty table (and a note on stderr) when it does not answer.
async fn runtime(admin: &Admin, addr: &str) -> Option<HashMap<String, String>> {
    match admin.broker_runtime(addr).await {
        Ok(kv) => Some(kv.table),
        Err(e) => {
            eprintln!("GET_BROKER_RUNTIME_INFO from {addr} failed: {e:#}");
            None
        }
    }
}

/// The first word of a TPS value such as `"12.5 13.1 12.9"`.
fn first_number(v: Option<&String>) -> f64 {
    v.and_then(|s| s.split(' ').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn print_base_info(
    admin: &Admin,
    info: &ClusterInfo,
    clusters: &BTreeSet<String>,
    out: Out<'_>,
) -> Result<()> {
    writeln!(
        out,
        "{:<22}  {:<22}  {:<4}  {:<22} {:<16}  {:>16}  {:>30}  {:<22}  {:<11}  {:<12}  {:<8}  {:<10}",
        "#Cluster Name",
        "#Broker Name",
        "#BID",
        "#Addr",
        "#Version",
        "#InTPS(LOAD)",
        "#OutTPS(LOAD)",
        "#Timer(Progress)",
        "#PCWait(ms)",
        "#Hour",
        "#SPACE",
        "#ACTIVATED"
    )?;
    for (cluster, name, id, addr) in brokers(info, clusters) {
        let row = base_row(runtime(admin, addr).await.as_ref(), now_millis());
        writeln!(
            out,
            "{:<22}  {:<22}  {:<4}  {:<22} {:<16}  {:>16}  {:>30}  {:<22}  {:>11}  {:<12}  {:<8}  {:>10}",
            cluster,
            name,
            id,
            addr,
            row.version,
            row.in_tps,
            row.out_tps,
            row.timer,
            row.page_cache_lock,
            row.hour,
            row.space,
            row.active
        )?;
    }
    Ok(())
}

/// The runtime columns of one broker, as Java's `printClusterBaseInfo` fills them: a key the
/// broker did not send prints as `null` (Java's `String.valueOf(null)`), and a broker that did
/// not answer gets empty values.
struct BaseRow {
    version: String,
    in_tps: String,
    out_tps: String,
    timer: String,
    page_cache_lock: String,
    hour: String,
    space: String,
    active: bool,
}

fn base_row(table: Option<&HashMap<String, String>>, now: i64) -> BaseRow {
    let empty = HashMap::new();
    let answered = table.is_some();
    let t = table.unwrap_or(&empty);
    let get = |k: &str| match t.get(k) {
        Some(v) => v.clone(),
        None if answered => "null".to_string(),
        None => String::new(),
    };
    let get_or_n = |k: &str| match t.get(k) {
        Some(v) => v.clone(),
        None if answered => "N".to_string(),
        None => String::new(),
    };
    let in_tps = first_number(t.get("putTps"));
    let out_tps = first_number(t.get("getTransferredTps").or(t.get("getTransferedTps")));
    let int = |k: &str| t.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let float = |k: &str| t.get(k).and_then(|v| v.trim().parse::<f32>().ok());
    // Java reads the five timer values in one try block: all or nothing.
    let timer = match (
        int("timerReadBehind"),
        int("timerOffsetBehind"),
        int("timerCongestNum"),
        float("timerEnqueueTps"),
        float("timerDequeueTps"),
    ) {
        (Some(a), Some(b), Some(c), Some(d), Some(e)) => (a, b, c, d, e),
        (a, b, c, _, _) => (a.unwrap_or(0), b.unwrap_or(0), c.unwrap_or(0), 0.0, 0.0),
    };
    let hour = t
        .get("earliestMessageTimeStamp")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|ts| (now - ts) as f64 / 1000.0 / 60.0 / 60.0)
        .unwrap_or(0.0);
    let space = t
        .get("commitLogDiskRatio")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    BaseRow {
        version: get("brokerVersionDesc"),
        in_tps: format!(
            "{in_tps:9.2}({},{}ms)",
            get("sendThreadPoolQueueSize"),
            get("sendThreadPoolQueueHeadWaitTimeMills")
        ),
        out_tps: format!(
            "{out_tps:9.2}({},{}ms|{},{}ms)",
            get("pullThreadPoolQueueSize"),
            get("pullThreadPoolQueueHeadWaitTimeMills"),
            get_or_n("ackThreadPoolQueueSize"),
            get_or_n("ackThreadPoolQueueHeadWaitTimeMills")
        ),
        timer: format!(
            "{}-{}({:.1}w, {:.1}, {:.1})",
            timer.0,
            timer.1,
            timer.2 as f32 / 10000.0,
            timer.3,
            timer.4
        ),
        page_cache_lock: get("pageCacheLockTimeMills"),
        hour: format!("{hour:2.2}"),
        space: format!("{space:.4}"),
        active: t
            .get("brokerActive")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
    }
}

async fn print_more_stats(
    admin: &Admin,
    info: &ClusterInfo,
    clusters: &BTreeSet<String>,
    out: Out<'_>,
) -> Result<()> {
    writeln!(
        out,
        "{:<16}  {:<32} {:>14} {:>14} {:>14} {:>14}",
        "#Cluster Name",
        "#Broker Name",
        "#InTotalYest",
        "#OutTotalYest",
        "#InTotalToday",
        "#OutTotalToday"
    )?;
    for (cluster, name, _, addr) in brokers(info, clusters) {
        let totals = runtime(admin, addr)
            .await
            .and_then(|t| {
                let n = |k: &str| t.get(k).and_then(|v| v.trim().parse::<i64>().ok());
                Some((
                    n("msgPutTotalTodayMorning")? - n("msgPutTotalYesterdayMorning")?,
                    n("msgGetTotalTodayMorning")? - n("msgGetTotalYesterdayMorning")?,
                    n("msgPutTotalTodayNow")? - n("msgPutTotalTodayMorning")?,
                    n("msgGetTotalTodayNow")? - n("msgGetTotalTodayMorning")?,
                ))
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{:<16}  {:<32} {:>14} {:>14} {:>14} {:>14}",
            cluster, name, totals.0, totals.1, totals.2, totals.3
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_runtime_info() {
        let mut t = HashMap::new();
        for (k, v) in [
            ("brokerVersionDesc", "V5_3_3"),
            ("putTps", "12.5 11.0 10.0"),
            ("getTransferredTps", "3.25 1 1"),
            ("sendThreadPoolQueueSize", "0"),
            ("sendThreadPoolQueueHeadWaitTimeMills", "0"),
            ("pullThreadPoolQueueSize", "1"),
            ("pullThreadPoolQueueHeadWaitTimeMills", "2"),
            ("pageCacheLockTimeMills", "0"),
            ("earliestMessageTimeStamp", "0"),
            ("commitLogDiskRatio", "0.25"),
            ("brokerActive", "true"),
        ] {
            t.insert(k.to_string(), v.to_string());
        }
        let row = base_row(Some(&t), 7_200_000);
        assert_eq!(row.version, "V5_3_3");
        assert_eq!(row.in_tps, "    12.50(0,0ms)");
        assert_eq!(row.out_tps, "     3.25(1,2ms|N,Nms)");
        assert_eq!(row.timer, "0-0(0.0w, 0.0, 0.0)");
        assert_eq!(row.hour, "2.00");
        assert_eq!(row.space, "0.2500");
        assert!(row.active);

        let silent = base_row(None, 0);
        assert_eq!(silent.in_tps, "     0.00(,ms)");
        assert_eq!(silent.version, "");
        assert!(!silent.active);

        let sparse = base_row(Some(&HashMap::new()), 0);
        assert_eq!(sparse.in_tps, "     0.00(null,nullms)");
    }
}
