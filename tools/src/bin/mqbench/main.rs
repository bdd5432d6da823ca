//! `mqbench`: producer and consumer load against a RocketMQ cluster, like RocketMQ's
//! benchmark tools. Prints TPS, MB/s and latency percentiles every second and a summary.
//!
//! ```text
//! mqbench producer -n 127.0.0.1:9876 -t BenchmarkTopic -w 64 -s 1024 --seconds 10
//! mqbench consumer -n 127.0.0.1:9876 -t BenchmarkTopic -g benchmark_consumer --seconds 10
//! ```

mod consumer;
mod producer;
mod route;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "mqbench", about = "RocketMQ producer/consumer benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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
}

/// The broker's process CPU seconds at the start of a run, to charge per message at its end.
pub struct BrokerCpu {
    addr: String,
    before: f64,
}

impl BrokerCpu {
    /// Reads the counter now, if `--brokerMetrics` was given (and says why it cannot).
    pub async fn start(common: &Common) -> anyhow::Result<Option<BrokerCpu>> {
        let Some(addr) = common.broker_metrics.clone() else {
            return Ok(None);
        };
        let before = cpu_seconds(&addr).await?;
        Ok(Some(BrokerCpu { addr, before }))
    }

    /// The summary line: broker CPU per message over the run.
    pub async fn finish(self, messages: u64) -> anyhow::Result<String> {
        let used = cpu_seconds(&self.addr).await? - self.before;
        let per = if messages == 0 {
            0.0
        } else {
            used * 1e6 / messages as f64
        };
        Ok(format!(
            "[broker] CPU: {used:.2} s for {messages} messages = {per:.1} us/msg"
        ))
    }
}

/// `rocketmq_process_cpu_seconds_total` from a broker's `/metrics`.
async fn cpu_seconds(addr: &str) -> anyhow::Result<f64> {
    use anyhow::Context;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the broker's metrics at {addr}"))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: mqbench\r\n\r\n")
        .await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    text.lines()
        .find(|l| l.starts_with("rocketmq_process_cpu_seconds_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no rocketmq_process_cpu_seconds_total at {addr}/metrics"))
}

impl Common {
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
    Producer {
        #[command(flatten)]
        common: Common,
        /// Concurrent senders (RocketMQ's `-w` threads).
        #[arg(short = 'w', long, default_value_t = 64)]
        threads: usize,
        /// Message body size in bytes.
        #[arg(short = 's', long, default_value_t = 128)]
        size: usize,
        #[arg(long, value_enum, default_value = "sync")]
        mode: SendMode,
        /// Requests in flight per sender in async mode.
        #[arg(long, default_value_t = 8)]
        inflight: usize,
        /// Messages per send (SEND_BATCH_MESSAGE when > 1).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Give every message a key (indexed by the broker).
        #[arg(short = 'k', long)]
        keys: bool,
        /// Number of distinct tags to cycle through (0: none).
        #[arg(short = 'c', long, default_value_t = 0)]
        tags: usize,
        /// Queues per broker if the topic has to be created.
        #[arg(long, default_value_t = 8)]
        queues: i32,
    },
    /// Consume messages (pull with long polling, as push consumers do).
    Consumer {
        #[command(flatten)]
        common: Common,
        /// Consumer group.
        #[arg(short = 'g', long, default_value = "benchmark_consumer")]
        group: String,
        /// Start from the first message still stored instead of the end of each queue.
        #[arg(long)]
        from_first: bool,
        /// Messages per pull.
        #[arg(long, default_value_t = 32)]
        pull_batch: i32,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqbench: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Producer {
                common,
                threads,
                size,
                mode,
                inflight,
                batch,
                keys,
                tags,
                queues,
            } => {
                producer::run(producer::Options {
                    common,
                    threads,
                    size,
                    mode,
                    inflight,
                    batch,
                    keys,
                    tags,
                    queues,
                })
                .await
            }
            Cmd::Consumer {
                common,
                group,
                from_first,
                pull_batch,
            } => {
                consumer::run(consumer::Options {
                    common,
                    group,
                    from_first,
                    pull_batch,
                })
                .await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqbench: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
