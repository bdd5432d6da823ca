//! `mqnamesrv`: start a name server, as RocketMQ's script of the same name.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rmq_nameserver::{NameServer, NamesrvConfig};
use rmq_remoting::config::{parse_properties, JavaConfig};
use rmq_remoting::tls::TlsConfig;

/// mimalloc: per-request allocations are a tenth of the CPU per message under glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// RocketMQ-compatible name server.
#[derive(Parser, Debug)]
#[command(name = "mqnamesrv", version, about)]
struct Args {
    /// Name server config properties file.
    #[arg(short = 'c', long = "configFile")]
    config_file: Option<PathBuf>,
    /// Print all config items and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
    /// Accepted for compatibility with RocketMQ's common options; unused by the name server.
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv_addr: Option<String>,
}

fn load_config(args: &Args) -> anyhow::Result<(NamesrvConfig, TlsConfig)> {
    let mut config = NamesrvConfig::default();
    let mut tls = TlsConfig::default();
    if let Some(path) = &args.config_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let props = parse_properties(&text)?;
        let bad = |e| anyhow::anyhow!("config file {}: {e}", path.display());
        let unknown = config.apply(&props).map_err(bad)?;
        let rest = unknown
            .into_iter()
            .filter_map(|k| props.get_key_value(&k).map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        for key in tls.apply(&rest).map_err(bad)? {
            tracing::warn!(key, "unknown config key ignored");
        }
        tracing::info!(path = %path.display(), "load config properties file OK");
    }
    Ok((config, tls))
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
    let (config, tls) = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mqnamesrv: {e:#}");
            return ExitCode::from(255);
        }
    };
    if args.print_config {
        print!("{}", config.to_properties_text());
        print!("{}", tls.to_properties_text());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqnamesrv: cannot start runtime: {e}");
            return ExitCode::from(255);
        }
    };
    runtime.block_on(async move {
        let server = match NameServer::start_with_tls(config, tls).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mqnamesrv: {e:#}");
                return ExitCode::from(255);
            }
        };
        println!(
            "The Name Server boot success. serializeType=JSON, address {}",
            server.local_addr()
        );
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
