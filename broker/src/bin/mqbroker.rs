//! `mqbroker`: start a broker, as RocketMQ's script of the same name.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rmq_broker::{Broker, BrokerSettings};
use rmq_remoting::config::{parse_properties, properties_to_text};

/// mimalloc: per-request allocations are a tenth of the CPU per message under glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// RocketMQ-compatible broker.
#[derive(Parser, Debug)]
#[command(name = "mqbroker", version, about)]
struct Args {
    /// Broker config file (Java properties, RocketMQ's broker.conf keys).
    #[arg(short = 'c', long = "configFile")]
    config_file: Option<PathBuf>,
    /// Name server address list, e.g. "192.168.0.1:9876;192.168.0.2:9876".
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv_addr: Option<String>,
    /// Print all config items and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
    /// Print the important config items and exit.
    #[arg(short = 'm', long = "printImportantConfig")]
    print_important: bool,
}

const IMPORTANT: &[&str] = &[
    "brokerClusterName",
    "brokerName",
    "brokerId",
    "brokerRole",
    "flushDiskType",
    "namesrvAddr",
    "listenPort",
    "brokerIP1",
    "storePathRootDir",
    "storePathCommitLog",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "mappedFileSizeCommitLog",
    "deleteWhen",
    "fileReservedTime",
    "maxMessageSize",
];

fn load(args: &Args) -> anyhow::Result<BrokerSettings> {
    let mut settings = BrokerSettings::default();
    if let Some(path) = &args.config_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let props = parse_properties(&text)?;
        let unknown = settings
            .apply(&props)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        for key in unknown {
            tracing::warn!(key, "unknown config key ignored");
        }
    }
    if let Some(n) = &args.namesrv_addr {
        settings.broker.namesrv_addr = n.clone();
    }
    settings
        .broker
        .resolve_addresses()
        .map_err(|e| anyhow::anyhow!(e))?;
    for addr in settings.broker.name_servers() {
        if !addr.contains(':') {
            anyhow::bail!(
                "Please set the namesrvAddr correctly, e.g. 127.0.0.1:9876 (got `{addr}`)"
            );
        }
    }
    Ok(settings)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let settings = match load(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mqbroker: {e:#}");
            return ExitCode::from(253);
        }
    };
    if args.print_config || args.print_important {
        let mut props = settings.properties();
        if args.print_important {
            props.retain(|k, _| IMPORTANT.contains(&k.as_str()));
        }
        print!("{}", properties_to_text(&props));
        return ExitCode::SUCCESS;
    }
    let workers = match settings.broker.server_worker_threads {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get() / 2)
            .clamp(1, 8),
        n => n,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqbroker: cannot start runtime: {e}");
            return ExitCode::from(255);
        }
    };
    runtime.block_on(async move {
        let broker = match Broker::start(settings).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("mqbroker: {e:#}");
                return ExitCode::from(255);
            }
        };
        println!(
            "The broker[{}, {}] boot success. serializeType=JSON and name server is {}",
            broker.inner().broker_name(),
            broker.inner().broker_addr,
            broker.inner().settings.broker(|b| b.namesrv_addr.clone())
        );
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
