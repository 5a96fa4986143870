//! Command-line entry points: `rova serve` (the embedded all-in-one
//! default: every API, SQLite in a data directory, the simulated driver;
//! `--driver qemu` for real guests).

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rova",
    version,
    about = "An OpenStack Compute (Nova) compatible compute service"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum DbCmd {
    /// Copy every record of one database into another, empty one (e.g.
    /// an embedded SQLite cloud into PostgreSQL). Neither may be served
    /// while it runs.
    Copy {
        /// Source database URL (`sqlite://PATH` or `postgres://…`).
        #[arg(long)]
        from: String,
        /// Destination database URL; it is migrated first and must hold no
        /// records.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum ControlCmd {
    /// Print a one-time token (valid one hour) with which the agent of
    /// host NAME enrolls, and exit. Makes the cloud's CA if there is none.
    Enroll {
        /// Database URL of the cloud (`postgres://…` or `sqlite://PATH`).
        #[arg(long, env = "ROVA_DATABASE_URL")]
        database: String,
        /// The agent's host name.
        #[arg(long)]
        host: String,
    },
}

// Parsed once at start: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Work on a database directly.
    Db {
        #[command(subcommand)]
        cmd: DbCmd,
    },
    /// The control plane's commands.
    Control {
        #[command(subcommand)]
        cmd: ControlCmd,
    },
    /// Run everything in one process: identity, image, network and compute
    /// APIs, storage in SQLite (the data directory) or PostgreSQL, the
    /// simulated driver.
    Serve {
        /// Data directory (database, image bytes, passwords, clouds.yaml).
        #[arg(long, default_value = "./rova-data", env = "ROVA_DATA_DIR")]
        data_dir: PathBuf,
        /// Database URL: `sqlite://PATH` (default: rova.sqlite in the data
        /// directory) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
        #[arg(long, env = "ROVA_DATABASE_URL")]
        database: Option<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8774", env = "ROVA_LISTEN")]
        listen: SocketAddr,
        /// Latency of each simulated driver step, in milliseconds.
        #[arg(long)]
        sim_latency_ms: Option<u64>,
        /// Instance rows kept in memory (0: all of them, the default); the
        /// others are read from the database when needed.
        #[arg(long)]
        instance_cache: Option<usize>,
        /// Nova's reclaim_instance_interval (seconds; > 0 makes delete soft).
        #[arg(long)]
        reclaim_instance_interval: Option<i64>,
        /// Seconds between each service's heartbeats (Nova's
        /// report_interval; default 10).
        #[arg(long)]
        report_interval: Option<u64>,
        /// A service whose last heartbeat is older than this many seconds
        /// is down (Nova's service_down_time; default 60).
        #[arg(long)]
        service_down_time: Option<u64>,
        /// Number of simulated compute hosts (rova-sim-1 … rova-sim-N).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
        sim_hosts: Option<u16>,
        /// vCPUs of each simulated host (cpu_allocation_ratio 4.0 applies).
        #[arg(long)]
        sim_host_vcpus: Option<u32>,
        /// Memory (MB) of each simulated host (ram_allocation_ratio 1.5).
        #[arg(long)]
        sim_host_ram_mb: Option<u64>,
        /// Local disk (GB) of each simulated host.
        #[arg(long)]
        sim_host_disk_gb: Option<u64>,
        /// One host's own inventory, `NAME:vcpus=8,ram_mb=16384,disk_gb=200,
        /// cpu_ratio=4,ram_ratio=1.5,disk_ratio=1,az=zone2,ip=10.1.0.9`
        /// (repeatable).
        #[arg(long = "sim-host-spec")]
        sim_host_spec: Vec<String>,
        /// Virt driver: `fake` (simulated guests, the default) or `qemu`
        /// (real guests, one QEMU process each).
        #[arg(long)]
        driver: Option<String>,
        /// QEMU driver: number of agents (hosts rova-qemu-1 … N) on this
        /// machine.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=16))]
        qemu_hosts: Option<u16>,
        /// QEMU driver: accelerator, `auto` (probe), `kvm` or `tcg`.
        #[arg(long)]
        qemu_accel: Option<String>,
        /// QEMU driver: how guests are networked, `user` (QEMU user
        /// networking, the default) or `bridge` (a Linux bridge per
        /// network, a tap per port, DHCP from dnsmasq; needs root).
        #[arg(long)]
        qemu_network: Option<String>,
        /// QEMU driver with `--qemu-network bridge`: the network namespace
        /// the data path lives in (it must exist); default: Rova's own.
        #[arg(long)]
        qemu_netns: Option<String>,
        /// Directory of the noVNC web client the console proxy serves
        /// (env ROVA_NOVNC_PATH; default /usr/share/novnc, Debian's
        /// `novnc` package).
        #[arg(long)]
        novnc_path: Option<PathBuf>,
    },
}

/// `rova control enroll`: a token for `host`, printed on stdout.
fn control_enroll(url: &str, host: &str) -> ExitCode {
    if !crate::agent_api::pki::valid_host(host) {
        eprintln!(
            "rova: invalid configuration: --host: Invalid host name {host:?}: letters, digits, '-', '_' and '.', 1 to 255 characters."
        );
        return ExitCode::from(2);
    }
    let db = match crate::store::Database::parse(url) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("rova: invalid configuration: --database: {e}");
            return ExitCode::from(2);
        }
    };
    let made = (|| -> Result<String, String> {
        let store = crate::store::Store::connect(&db)?;
        let pki = crate::agent_api::pki::Pki::load(&store)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(pki.new_token(host, chrono::Utc::now()))
            .map_err(|f| f.message)
    })();
    match made {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rova: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.cmd {
        Cmd::Db {
            cmd: DbCmd::Copy { from, to },
        } => db_copy(&from, &to),
        Cmd::Control {
            cmd: ControlCmd::Enroll { database, host },
        } => control_enroll(&database, &host),
        Cmd::Serve {
            data_dir,
            database,
            listen,
            sim_latency_ms,
            instance_cache,
            reclaim_instance_interval,
            report_interval,
            service_down_time,
            sim_hosts,
            sim_host_vcpus,
            sim_host_ram_mb,
            sim_host_disk_gb,
            sim_host_spec,
            driver,
            qemu_hosts,
            qemu_accel,
            qemu_network,
            qemu_netns,
            novnc_path,
        } => {
            let mut cfg = Config::new(data_dir, listen);
            // An empty ROVA_DATABASE_URL means the default, as if unset.
            if let Some(url) = database.filter(|u| !u.trim().is_empty()) {
                match crate::store::Database::parse(&url) {
                    Ok(db) => cfg.database = Some(db),
                    Err(e) => {
                        eprintln!("rova: invalid configuration: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            if let Err(e) = cfg.apply_env() {
                eprintln!("rova: invalid configuration: {e}");
                return ExitCode::from(2);
            }
            if let Some(d) = driver {
                match d.parse() {
                    Ok(d) => cfg.driver = d,
                    Err(e) => {
                        eprintln!("rova: invalid configuration: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            if let Some(n) = qemu_hosts {
                cfg.qemu.hosts = n as usize;
            }
            if let Some(a) = qemu_accel {
                if !matches!(a.as_str(), "auto" | "kvm" | "tcg") {
                    eprintln!(
                        "rova: invalid configuration: --qemu-accel {a}: expected auto, kvm or tcg"
                    );
                    return ExitCode::from(2);
                }
                cfg.qemu.accel = a;
            }
            if let Some(n) = qemu_network {
                match n.parse() {
                    Ok(n) => cfg.qemu.network = n,
                    Err(e) => {
                        eprintln!("rova: invalid configuration: --qemu-network: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            if let Some(ns) = qemu_netns.filter(|s| !s.trim().is_empty()) {
                cfg.qemu.netns = Some(ns);
            }
            if let Some(p) = novnc_path {
                cfg.novnc_path = p;
            }
            if let Some(v) = sim_latency_ms {
                cfg.sim_latency_ms = v;
            }
            if let Some(v) = instance_cache {
                cfg.instance_cache = v;
            }
            if let Some(v) = reclaim_instance_interval {
                cfg.reclaim_instance_interval = v;
            }
            if let Some(v) = report_interval {
                cfg.report_interval = v;
            }
            if let Some(v) = service_down_time {
                cfg.service_down_time = v;
            }
            if let Err(e) = cfg.validate() {
                eprintln!("rova: invalid configuration: {e}");
                return ExitCode::from(2);
            }
            if let Some(n) = sim_hosts {
                cfg.sim_hosts = n as usize;
            }
            if let Some(v) = sim_host_vcpus {
                cfg.sim_host.vcpus = v;
            }
            if let Some(v) = sim_host_ram_mb {
                cfg.sim_host.memory_mb = v;
            }
            if let Some(v) = sim_host_disk_gb {
                cfg.sim_host.disk_gb = v;
            }
            for spec in &sim_host_spec {
                match crate::config::SimHostOverride::parse(spec) {
                    Ok((name, o)) => {
                        cfg.sim_host_overrides.insert(name, o);
                    }
                    Err(e) => {
                        eprintln!("rova: invalid configuration: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
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

/// `rova db copy`: both stores opened (and locked, and the destination
/// migrated), every record copied, the counts printed.
fn db_copy(from: &str, to: &str) -> ExitCode {
    let open = |url: &str| {
        crate::store::Database::parse(url).and_then(|db| {
            if let crate::store::Database::Sqlite(path) = &db {
                if !path.exists() {
                    return Err(format!("{} does not exist", path.display()));
                }
            }
            crate::store::Store::connect(&db)
        })
    };
    let copied = open(from).and_then(|src| {
        let to_db = crate::store::Database::parse(to)?;
        if let crate::store::Database::Sqlite(path) = &to_db {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                crate::store::make_private(dir)?;
            }
        }
        let dst = crate::store::Store::connect(&to_db)?;
        crate::store::copy_all(&src, &dst)
    });
    match copied {
        Ok(counts) => {
            let total: usize = counts.iter().map(|(_, n)| n).sum();
            for (table, n) in counts.iter().filter(|(_, n)| *n > 0) {
                println!("rova: copied {n:>7} {table}");
            }
            println!(
                "rova: copied {total} records from {} to {}",
                redact_url(from),
                redact_url(to)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rova: db copy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn redact_url(url: &str) -> String {
    crate::store::Database::parse(url).map_or_else(|_| url.to_string(), |d| d.redacted())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ROVA_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let json = std::env::var("ROVA_LOG_FORMAT")
        .map(|v| v == "json")
        .unwrap_or(false);
    if json {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .with_writer(std::io::stderr)
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_copy_takes_both_urls() {
        let cli = Cli::try_parse_from([
            "rova",
            "db",
            "copy",
            "--from",
            "sqlite://a",
            "--to",
            "postgres://u@h/d",
        ])
        .expect("parses");
        let Cmd::Db {
            cmd: DbCmd::Copy { from, to },
        } = cli.cmd
        else {
            panic!("not db copy");
        };
        assert_eq!(
            (from.as_str(), to.as_str()),
            ("sqlite://a", "postgres://u@h/d")
        );
        assert!(Cli::try_parse_from(["rova", "db", "copy", "--from", "sqlite://a"]).is_err());
    }

    #[test]
    fn novnc_path_is_a_serve_flag() {
        let cli =
            Cli::try_parse_from(["rova", "serve", "--novnc-path", "/opt/novnc"]).expect("parses");
        let Cmd::Serve { novnc_path, .. } = cli.cmd else {
            panic!("not serve");
        };
        assert_eq!(novnc_path, Some(PathBuf::from("/opt/novnc")));
        let cli = Cli::try_parse_from(["rova", "serve"]).expect("parses");
        let Cmd::Serve { novnc_path, .. } = cli.cmd else {
            panic!("not serve");
        };
        assert_eq!(novnc_path, None, "the default comes from Config");
        assert_eq!(
            Config::new(PathBuf::from("d"), "127.0.0.1:0".parse().expect("addr")).novnc_path,
            PathBuf::from("/usr/share/novnc")
        );
    }
}
