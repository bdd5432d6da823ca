//! `mqbench`: producer and consumer load against a RocketMQ cluster, like RocketMQ's
//! benchmark tools. Prints TPS, MB/s and latency percentiles every second and a summary.
//!
//! ```text
//! mqbench producer -n 127.0.0.1:9876 -t BenchmarkTopic -w 64 -s 1024 --seconds 10
//! mqbench consumer -n 127.0.0.1:9876 -t BenchmarkTopic -g benchmark_consumer --seconds 10
//! mqbench producer --workload tools/workloads/send-1k-64.toml -n A:9876 --compare B:9876
//! mqbench topics -n 127.0.0.1:9876 --count 10000 --queues 8
//! ```

mod broker;
mod consumer;
mod producer;
mod report;
mod route;
mod stats;
mod topics;
mod workload;

use std::future::Future;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use rmq_remoting::protocol::route::TopicRouteData;
use rmq_remoting::role::FlushDiskType;

#[derive(Parser)]
#[command(name = "mqbench", about = "RocketMQ producer/consumer benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// One request in flight per sender, each waiting for its answer.
    Sync,
    /// Up to `--inflight` requests in flight per sender.
    Async,
    /// Fire and forget (no answers, no latency).
    Oneway,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Name server address list, `host:port;host:port` (or NAMESRV_ADDR).
    #[arg(
        short = 'n',
        long = "namesrvAddr",
        env = "NAMESRV_ADDR",
        default_value = "127.0.0.1:9876"
    )]
    pub namesrv: String,
    /// Topic.
    #[arg(short = 't', long, default_value = "BenchmarkTest")]
    pub topic: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Stop after this many messages (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout: u64,
    /// Sign requests with this ACL access key (with --secretKey). Without it, sends and pulls
    /// go unsigned and the topic is created with the local cluster's admin credential
    /// (~/.rocketmq/admin-credential.yml), if present.
    #[arg(long = "accessKey", requires = "secret_key")]
    pub access_key: Option<String>,
    #[arg(long = "secretKey", requires = "access_key")]
    pub secret_key: Option<String>,
    /// Connect over TLS, with the tls.client.* keys of --tlsConfigFile or
    /// /etc/rocketmq/tls.properties.
    #[arg(long = "tls")]
    pub tls: bool,
    /// A properties file of RocketMQ's tls.* keys; implies --tls.
    #[arg(long = "tlsConfigFile")]
    pub tls_config_file: Option<std::path::PathBuf>,
    /// The broker's metrics endpoint (`host:port`, its `metricsPort`): its process CPU time is
    /// read before and after the run and printed per message.
    #[arg(long = "brokerMetrics")]
    pub broker_metrics: Option<String>,
    /// A TOML workload file (see tools/workloads/): its settings apply where no flag is given
    /// on the command line (flag, then file, then default).
    #[arg(long = "workload", value_name = "FILE")]
    pub workload: Option<std::path::PathBuf>,
    /// The `flushDiskType` (ASYNC_FLUSH or SYNC_FLUSH) the brokers must run with: checked
    /// with GET_BROKER_CONFIG before the run, which is refused on a mismatch.
    #[arg(long = "flushDiskType")]
    pub flush_disk_type: Option<FlushDiskType>,
    /// Run the same workload again against this name server afterwards (not at the same
    /// time) and print both result rows.
    #[arg(long = "compare", value_name = "NAMESRV")]
    pub compare: Option<String>,
    /// The metrics endpoint of the --compare cluster's broker.
    #[arg(long = "compareBrokerMetrics", requires = "compare")]
    pub compare_broker_metrics: Option<String>,
    /// The first run's label in the result table (default: its name server address).
    #[arg(long = "label")]
    pub label: Option<String>,
    /// The --compare run's label (default: its name server address).
    #[arg(long = "compareLabel", requires = "compare")]
    pub compare_label: Option<String>,
}

impl Common {
    /// The runs to make, in order, with their labels: this one, then --compare's.
    fn runs(&self) -> anyhow::Result<Vec<(String, Common)>> {
        let first = (
            self.label.clone().unwrap_or_else(|| self.namesrv.clone()),
            self.clone(),
        );
        let Some(other) = &self.compare else {
            return Ok(vec![first]);
        };
        anyhow::ensure!(
            self.broker_metrics.is_none() || self.compare_broker_metrics.is_some(),
            "--brokerMetrics with --compare needs --compareBrokerMetrics too (the metrics \
             endpoint of the broker behind {other})"
        );
        let mut second = self.clone();
        second.namesrv = other.clone();
        second.broker_metrics = self.compare_broker_metrics.clone();
        let label = self.compare_label.clone().unwrap_or_else(|| other.clone());
        Ok(vec![first, (label, second)])
    }

    /// The client for the measured sends and pulls: signed only with --accessKey/--secretKey,
    /// as an application's client would be (signing costs an HMAC per request on both sides).
    pub fn client(&self) -> rmq_remoting::RemotingClient {
        self.client_with(self.keys())
    }

    /// The client that looks up and, if needed, creates the topic: the ACL keys, else the
    /// local cluster's admin credential (creating a topic is the control plane).
    pub fn admin_client(&self) -> rmq_remoting::RemotingClient {
        let credentials = self
            .keys()
            .or_else(|| rmq_acl::credential::load(&rmq_acl::credential::default_path()).ok());
        self.client_with(credentials)
    }

    fn keys(&self) -> Option<rmq_remoting::Credentials> {
        match (&self.access_key, &self.secret_key) {
            (Some(ak), Some(sk)) => Some(rmq_remoting::Credentials::new(ak, sk)),
            _ => None,
        }
    }

    fn client_with(
        &self,
        credentials: Option<rmq_remoting::Credentials>,
    ) -> rmq_remoting::RemotingClient {
        let tls = rmq_remoting::tls::ClientTls::for_tool(self.tls, self.tls_config_file.as_deref())
            .unwrap_or_else(|e| {
                eprintln!("mqbench: {e}");
                std::process::exit(255)
            });
        rmq_remoting::RemotingClient::default()
            .with_credentials(credentials)
            .with_tls(tls)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Send messages.
    Producer(producer::Options),
    /// Consume messages (pull with long polling, as push consumers do).
    Consumer(consumer::Options),
    /// Create many topics, then time their registration, route lookups, the topic list and
    /// the cluster info.
    Topics(topics::Options),
}

/// Whether argument `id` was given on the command line (not defaulted, not from the
/// environment): such a flag wins over the workload file.
fn given(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(ValueSource::CommandLine)
}

fn load(common: &Common) -> anyhow::Result<Option<workload::Loaded>> {
    common
        .workload
        .as_deref()
        .map(workload::Loaded::load)
        .transpose()
}

async fn bench(cmd: Cmd, m: &ArgMatches) -> anyhow::Result<()> {
    let explicit = |id: &str| given(m, id);
    match cmd {
        Cmd::Producer(mut o) => {
            let w = load(&o.common)?;
            if let Some(w) = &w {
                w.apply_producer(&mut o, &explicit)?;
            }
            let common = o.common.clone();
            run_all(&common, w.as_ref(), o.queues, |c, route| {
                producer::run(
                    producer::Options {
                        common: c,
                        ..o.clone()
                    },
                    route,
                )
            })
            .await
        }
        Cmd::Consumer(mut o) => {
            let w = load(&o.common)?;
            if let Some(w) = &w {
                w.apply_consumer(&mut o, &explicit)?;
            }
            let common = o.common.clone();
            run_all(&common, w.as_ref(), 8, |c, route| {
                consumer::run(
                    consumer::Options {
                        common: c,
                        ..o.clone()
                    },
                    route,
                )
            })
            .await
        }
        Cmd::Topics(o) => topics::run(o).await,
    }
}

/// Checks every cluster first (route, flush mode), then runs one after the other and prints
/// the result table.
async fn run_all<F, Fut>(
    common: &Common,
    w: Option<&workload::Loaded>,
    queues: i32,
    run: F,
) -> anyhow::Result<()>
where
    F: Fn(Common, TopicRouteData) -> Fut,
    Fut: Future<Output = anyhow::Result<report::Outcome>>,
{
    let runs = common.runs()?;
    let many = runs.len() > 1;
    let mut prepared = Vec::new();
    for (label, c) in &runs {
        let p = broker::prepare(c, queues).await;
        prepared.push(if many {
            p.with_context(|| format!("[{label}]"))?
        } else {
            p?
        });
    }
    let name = w.map(|w| w.name()).unwrap_or_else(|| "-".into());
    if let Some(w) = w {
        println!(
            "workload: {name} ({}){}",
            w.path.display(),
            w.workload
                .description
                .as_deref()
                .map(|d| format!(": {}", d.trim()))
                .unwrap_or_default()
        );
    }
    let mut rows = Vec::new();
    for ((label, c), p) in runs.into_iter().zip(prepared) {
        if many {
            println!("== {label} (name server {})", c.namesrv);
        }
        let outcome = run(c, p.route).await?;
        for b in &p.brokers {
            println!("{}", b.line());
        }
        rows.push(report::Row {
            label,
            workload: name.clone(),
            outcome,
            brokers: p.brokers,
        });
    }
    print!("{}", report::table(&rows));
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqbench: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    match rt.block_on(bench(cli.cmd, &sub)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqbench: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
