//! Command-line entry points: `rova serve` (the embedded all-in-one
//! default: every API, SQLite in a data directory, the simulated driver;
//! `--driver qemu` for real guests).

use crate::config::{Config, Settings};
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

#[derive(Subcommand)]
enum Cmd {
    /// Work on a database directly.
    Db {
        #[command(subcommand)]
        cmd: DbCmd,
    },
    /// A control replica: every public API, the scheduler and the
    /// operations engine, with no compute hosts of its own; its hosts are
    /// the agents that enroll and register on `--agent-listen`.
    Control(Box<ControlArgs>),
    /// The agent of one hypervisor host: enrolls with a control replica
    /// (first start), registers its host, runs the guests the control
    /// plane sends it, and sends heartbeats.
    Agent(Box<AgentArgs>),
    /// Run everything in one process: identity, image, network and compute
    /// APIs, storage in SQLite (the data directory) or PostgreSQL, the
    /// simulated driver.
    Serve(Box<ServeArgs>),
}

/// `rova control`: a subcommand, or the flags of a control replica.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ControlArgs {
    #[command(subcommand)]
    cmd: Option<ControlCmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// `rova agent`'s flags.
#[derive(clap::Args)]
struct AgentArgs {
    /// Configuration file (TOML): its `[agent]` table has a key for every
    /// flag (see etc/rova.toml.example); `ROVA_AGENT_X` overrides key `x`
    /// and a flag overrides both.
    #[arg(long, env = "ROVA_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// This hypervisor host's name (the one its enrollment token is for).
    #[arg(long, env = "ROVA_AGENT_HOST")]
    host: Option<String>,
    /// A control replica's agent listener, `IP:PORT` (repeatable; tried
    /// in turn).
    #[arg(long = "control", env = "ROVA_AGENT_CONTROL", value_delimiter = ',')]
    control: Vec<String>,
    /// The one-time token from `rova control enroll` (first start only).
    #[arg(long, env = "ROVA_ENROLL_TOKEN")]
    enroll_token: Option<String>,
    /// Address the agent API listens on; control replicas call it there.
    #[arg(long, env = "ROVA_AGENT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Virt driver: `fake` (simulated guests; the default) or `qemu`
    /// (real guests).
    #[arg(long, env = "ROVA_AGENT_DRIVER")]
    driver: Option<String>,
    /// Where the agent keeps its certificate, key and guest list.
    #[arg(long, env = "ROVA_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Latency of each simulated driver step, in milliseconds (default 5).
    #[arg(long, env = "ROVA_AGENT_SIM_LATENCY_MS")]
    sim_latency_ms: Option<u64>,
    /// vCPUs the host offers (default 16).
    #[arg(long, env = "ROVA_AGENT_VCPUS")]
    vcpus: Option<u32>,
    /// Memory (MB) the host offers (default 65536).
    #[arg(long, env = "ROVA_AGENT_RAM_MB")]
    ram_mb: Option<u64>,
    /// Local disk (GB) the host offers (default 1000).
    #[arg(long, env = "ROVA_AGENT_DISK_GB")]
    disk_gb: Option<u64>,
    /// The availability zone of the host (default: the cloud's).
    #[arg(long, env = "ROVA_AGENT_AVAILABILITY_ZONE")]
    availability_zone: Option<String>,
    /// Seconds between heartbeats (default: the control plane's
    /// report_interval).
    #[arg(long, env = "ROVA_AGENT_REPORT_INTERVAL")]
    report_interval: Option<u64>,
    /// Plain-HTTP address serving `GET /metrics` (Prometheus).
    #[arg(long, env = "ROVA_AGENT_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// QEMU driver: accelerator, `auto` (the default), `kvm` or `tcg`.
    #[arg(long, env = "ROVA_AGENT_QEMU_ACCEL")]
    qemu_accel: Option<String>,
    /// QEMU driver: the system emulator (default qemu-system-x86_64).
    #[arg(long, env = "ROVA_AGENT_QEMU_BINARY")]
    qemu_binary: Option<String>,
    /// QEMU driver: where instance disks live (default
    /// STATE_DIR/instances); agents that share it live-migrate guests on
    /// shared storage.
    #[arg(long, env = "ROVA_AGENT_INSTANCES_PATH")]
    instances_path: Option<PathBuf>,
    /// QEMU driver: MiB/s a live migration's stream may use (Nova's
    /// live_migration_bandwidth; default 0, unlimited).
    #[arg(long, env = "ROVA_AGENT_LIVE_MIGRATION_BANDWIDTH")]
    live_migration_bandwidth: Option<u64>,
}

impl AgentArgs {
    /// The flags (and environment) as `[agent]` settings.
    fn settings(&self) -> crate::config::file::AgentSettings {
        crate::config::file::AgentSettings {
            host: self.host.clone(),
            control: self.control.clone(),
            listen: self.listen,
            driver: self.driver.clone(),
            state_dir: self.state_dir.clone(),
            sim_latency_ms: self.sim_latency_ms,
            vcpus: self.vcpus,
            ram_mb: self.ram_mb,
            disk_gb: self.disk_gb,
            availability_zone: self.availability_zone.clone(),
            report_interval: self.report_interval,
            metrics_listen: self.metrics_listen,
            qemu_accel: self.qemu_accel.clone(),
            qemu_binary: self.qemu_binary.clone(),
            instances_path: self.instances_path.clone(),
            live_migration_bandwidth: self.live_migration_bandwidth,
        }
    }
}

/// `rova serve`'s flags. Each has a key of the same name (`_` for `-`) in
/// the configuration file ([`crate::config::Settings`]); a flag overrides
/// the environment, which overrides the file. No flag has a clap default:
/// the defaults are [`Config`]'s, below the file.
#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML; every flag and `ROVA_*` variable has a
    /// key there, see etc/rova.toml.example).
    #[arg(long, env = "ROVA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, image bytes, passwords, clouds.yaml);
    /// default ./rova-data.
    #[arg(long, env = "ROVA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` (default: rova.sqlite in the data
    /// directory) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    #[arg(long, env = "ROVA_DATABASE_URL")]
    database: Option<String>,
    /// Address to listen on (default 127.0.0.1:8774).
    #[arg(long, env = "ROVA_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address the agent API listens on (mutual TLS); agents on other
    /// hosts enroll and register there.
    #[arg(long)]
    agent_listen: Option<SocketAddr>,
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
    /// Number of simulated compute hosts (rova-sim-1 … rova-sim-N, N from
    /// 1 to 1000).
    #[arg(long)]
    sim_hosts: Option<u64>,
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
    /// QEMU driver: number of agents (hosts rova-qemu-1 … N, N from 1 to
    /// 16) on this machine.
    #[arg(long)]
    qemu_hosts: Option<u64>,
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
}

impl ServeArgs {
    /// The flags as one source of settings (`--config` aside).
    fn settings(self) -> Settings {
        Settings {
            data_dir: self.data_dir,
            database: self.database,
            listen: self.listen,
            agent_listen: self.agent_listen,
            sim_latency_ms: self.sim_latency_ms,
            instance_cache: self.instance_cache,
            reclaim_instance_interval: self.reclaim_instance_interval,
            report_interval: self.report_interval,
            service_down_time: self.service_down_time,
            sim_hosts: self.sim_hosts,
            sim_host_vcpus: self.sim_host_vcpus,
            sim_host_ram_mb: self.sim_host_ram_mb,
            sim_host_disk_gb: self.sim_host_disk_gb,
            sim_host_spec: self.sim_host_spec,
            driver: self.driver,
            qemu_hosts: self.qemu_hosts,
            qemu_accel: self.qemu_accel,
            qemu_network: self.qemu_network,
            qemu_netns: self.qemu_netns,
            novnc_path: self.novnc_path,
            ..Settings::default()
        }
    }
}

/// How an error names the flag of a configuration key; the three flags
/// clap also reads from the environment name their variable too.
fn flag_name(key: &str) -> String {
    let flag = format!("--{}", key.replace('_', "-"));
    match key {
        "data_dir" | "database" | "listen" => {
            format!("{flag} ({})", crate::config::env_name(key))
        }
        _ => flag,
    }
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
        Cmd::Control(args) => match args.cmd {
            Some(ControlCmd::Enroll { database, host }) => control_enroll(&database, &host),
            None => serve_main(args.serve, false),
        },
        Cmd::Agent(args) => agent_main(*args),
        Cmd::Serve(args) => serve_main(*args, true),
    }
}

/// A runtime for one command, or the exit code of its failure.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("rova: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// `rova serve` (`local_hosts`: with its in-process agents) and `rova
/// control` (none: its hosts are agents).
fn serve_main(args: ServeArgs, local_hosts: bool) -> ExitCode {
    // An empty ROVA_CONFIG means no file, as if unset.
    let file = args.config.clone().filter(|p| !p.as_os_str().is_empty());
    let cfg = crate::config::env_settings()
        .and_then(|env| Config::resolve(file.as_deref(), &env, &args.settings(), flag_name));
    let mut cfg = match cfg {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("rova: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    cfg.local_hosts = local_hosts;
    if !local_hosts && cfg.agent_listen.is_none() {
        eprintln!("rova: invalid configuration: --agent-listen: a control replica needs the address its agents reach it at");
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::server::serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rova: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rova agent`.
fn agent_main(a: AgentArgs) -> ExitCode {
    let file = match a.config.as_deref().filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => match crate::config::file::load(path) {
            Ok(s) => s.agent,
            Err(e) => {
                eprintln!("rova agent: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        },
        None => Default::default(),
    };
    let token = a.enroll_token.clone().filter(|t| !t.trim().is_empty());
    let cfg = match crate::agent::AgentConfig::resolve(a.settings().over(file), token) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("rova agent: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::agent::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rova agent: {e}");
            ExitCode::FAILURE
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
        let Cmd::Serve(args) = cli.cmd else {
            panic!("not serve");
        };
        assert_eq!(args.novnc_path, Some(PathBuf::from("/opt/novnc")));
        let cli = Cli::try_parse_from(["rova", "serve"]).expect("parses");
        let Cmd::Serve(args) = cli.cmd else {
            panic!("not serve");
        };
        assert_eq!(args.novnc_path, None, "the default comes from Config");
        assert_eq!(
            Config::new(PathBuf::from("d"), "127.0.0.1:0".parse().expect("addr")).novnc_path,
            PathBuf::from("/usr/share/novnc")
        );
    }

    #[test]
    fn every_serve_flag_has_a_configuration_key() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").expect("serve");
        let keys = crate::config::file::keys();
        let flags: Vec<String> = serve
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| !matches!(id.as_str(), "config" | "help" | "version"))
            .collect();
        assert!(flags.len() >= 19, "{flags:?}");
        for flag in &flags {
            assert!(keys.contains(flag), "--{flag} has no key in the file");
            // And the flag is the key's, with `-` for `_`.
            let long = serve
                .get_arguments()
                .find(|a| a.get_id() == flag.as_str())
                .and_then(|a| a.get_long())
                .unwrap_or_default();
            assert_eq!(long.replace('-', "_"), *flag);
        }
    }

    fn temp_file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("rova-cli-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).expect("writing a temporary file");
        path
    }

    /// `rova serve ARGS` resolved over `file` with the environment `env`.
    fn resolve(file: &str, env: &str, args: &[&str]) -> Result<Config, String> {
        let path = temp_file(file);
        let env = crate::config::file::parse(env)?;
        let argv = ["rova", "serve"].iter().chain(args);
        let Cmd::Serve(args) = Cli::try_parse_from(argv).map_err(|e| e.to_string())?.cmd else {
            return Err("not serve".into());
        };
        let r = Config::resolve(Some(&path), &env, &args.settings(), flag_name);
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let file =
            "sim_latency_ms = 1\nsim_hosts = 2\nreport_interval = 3\nlisten = \"127.0.0.1:9001\"\n";
        let env = "sim_latency_ms = 7\nsim_hosts = 4\n";
        let cfg = resolve(file, env, &["--sim-latency-ms", "9"]).expect("valid");
        assert_eq!(cfg.sim_latency_ms, 9, "flag over environment over file");
        assert_eq!(cfg.sim_hosts, 4, "environment over file");
        assert_eq!(cfg.report_interval, 3, "file over the defaults");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(
            cfg.data_dir,
            PathBuf::from(crate::config::DEFAULT_DATA_DIR),
            "no clap default hides the file's or Config's"
        );
        let cfg =
            resolve("data_dir = \"/srv/r\"\n", "", &["--listen", "127.0.0.1:1"]).expect("valid");
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/r"));
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:1");
        let cfg = resolve("", "", &[]).expect("valid");
        assert_eq!(cfg.listen, crate::config::DEFAULT_LISTEN);
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8774");
    }

    #[test]
    fn errors_name_their_source() {
        let e = resolve("sim_hosts = 0\n", "", &[])
            .err()
            .unwrap_or_default();
        assert!(e.contains(".toml: sim_hosts: 0 is out of range"), "{e}");
        let e = resolve("", "sim_hosts = 0\n", &[])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("ROVA_SIM_HOSTS: 0 is out of range"), "{e}");
        let e = resolve("", "", &["--sim-hosts", "0"])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("--sim-hosts: 0 is out of range"), "{e}");
        let e = resolve("", "", &["--qemu-accel", "foo"])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("--qemu-accel: unknown accelerator"), "{e}");
        let e = resolve("", "", &["--database", "mysql://x"])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("--database (ROVA_DATABASE_URL): "), "{e}");
        // A file whose report_interval is not below service_down_time is
        // wrong on its own...
        let e = resolve("report_interval = 60\n", "", &[])
            .err()
            .unwrap_or_default();
        assert!(
            e.contains(".toml: service_down_time: 60 is not greater"),
            "{e}"
        );
        // ...unless a later source mends it.
        let cfg = resolve("report_interval = 60\n", "", &["--service-down-time", "90"]);
        assert_eq!(cfg.map(|c| c.service_down_time), Ok(90));
        let e = resolve("", "", &["--report-interval", "60"])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("service_down_time: 60 is not greater"), "{e}");
    }
}
