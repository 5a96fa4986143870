//! Command-line entry points: `rova serve` (the embedded all-in-one
//! default: every API, SQLite in a data directory, the simulated driver).

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "rova", version, about = "An OpenStack Compute (Nova) compatible compute service")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run everything in one process: identity, image, network and compute
    /// APIs, SQLite storage in the data directory, the simulated driver.
    Serve {
        /// Data directory (database, image bytes, passwords, clouds.yaml).
        #[arg(long, default_value = "./rova-data", env = "ROVA_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8774", env = "ROVA_LISTEN")]
        listen: SocketAddr,
        /// Latency of each simulated driver step, in milliseconds.
        #[arg(long)]
        sim_latency_ms: Option<u64>,
        /// Nova's reclaim_instance_interval (seconds; > 0 makes delete soft).
        #[arg(long)]
        reclaim_instance_interval: Option<i64>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.cmd {
        Cmd::Serve {
            data_dir,
            listen,
            sim_latency_ms,
            reclaim_instance_interval,
        } => {
            let mut cfg = Config::new(data_dir, listen);
            if let Err(e) = cfg.apply_env() {
                eprintln!("rova: invalid configuration: {e}");
                return ExitCode::from(2);
            }
            if let Some(v) = sim_latency_ms {
                cfg.sim_latency_ms = v;
            }
            if let Some(v) = reclaim_instance_interval {
                cfg.reclaim_instance_interval = v;
            }
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rova: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(crate::server::serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rova: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ROVA_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let json = std::env::var("ROVA_LOG_FORMAT").map(|v| v == "json").unwrap_or(false);
    if json {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).json().with_writer(std::io::stderr).try_init();
    } else {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
}
