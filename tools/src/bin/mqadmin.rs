//! `mqadmin`: RocketMQ's admin tool (`mqadmin <subcommand> -n host:9876 ...`).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use rmq_tools::admin::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RMQ_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let namesrv_env = std::env::var("NAMESRV_ADDR").ok();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = runtime.block_on(admin::run(&cli.command, namesrv_env.as_deref(), &mut out));
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{} command failed: {e:#}", cli.command.name());
            ExitCode::FAILURE
        }
    }
}
