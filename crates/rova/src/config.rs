//! Runtime configuration: documented defaults, overridden by a TOML file
//! (`--config FILE`), the `ROVA_*` environment and command-line flags, in
//! that order. Invalid values fail at start with a clear message.

pub mod file;

pub use file::{KeyError, Settings};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

/// Where `rova serve` keeps its data unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "./rova-data";
/// Where `rova serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 8774));

/// Everything the control plane needs to know at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Where the tables are kept: `None` is the embedded default
    /// (`sqlite://<data_dir>/rova.sqlite`); `--database URL` /
    /// `ROVA_DATABASE_URL` name another SQLite file or a PostgreSQL database.
    pub database: Option<crate::store::Database>,
    pub listen: SocketAddr,
    /// Where the agent API listens (mutual TLS; `None`: no agent API, only
    /// in-process agents).
    pub agent_listen: Option<SocketAddr>,
    /// Whether this process runs its own compute hosts (`rova serve`'s
    /// in-process agents); `rova control` runs none, its hosts are the
    /// agents that register through the agent API.
    pub local_hosts: bool,
    /// Latency of each simulated driver step (builds, actions).
    pub sim_latency_ms: u64,
    /// Token lifetime in seconds.
    pub token_ttl_secs: i64,
    /// `[DEFAULT]reclaim_instance_interval`: > 0 makes DELETE a soft delete.
    pub reclaim_instance_interval: i64,
    /// `[DEFAULT]shelved_offload_time`: 0 offloads at once, N > 0 after N
    /// seconds, negative never.
    pub shelved_offload_time: i64,
    /// `[DEFAULT]resize_confirm_window`: > 0 auto-confirms after N seconds.
    pub resize_confirm_window: i64,
    /// `[DEFAULT]instance_build_timeout`: > 0 puts builds older than N
    /// seconds into ERROR.
    pub instance_build_timeout: i64,
    /// `[DEFAULT]rescue_timeout`: > 0 unrescues after N seconds.
    pub rescue_timeout: i64,
    /// Real seconds between periodic-task passes.
    pub periodic_interval_secs: u64,
    /// `[DEFAULT]report_interval`: real seconds between a service's
    /// heartbeats.
    pub report_interval: u64,
    /// `[DEFAULT]service_down_time`: a service whose last heartbeat is
    /// older than this many seconds is down.
    pub service_down_time: u64,
    /// `[api]max_limit`.
    pub max_limit: usize,
    /// How many instance rows (and as many action logs) a process keeps in
    /// memory: 0 keeps every row (the default, fastest while the fleet
    /// fits); N > 0 keeps the N used last and reads the others from the
    /// database, so memory no longer grows with the fleet.
    pub instance_cache: usize,
    /// `[DEFAULT]password_length`.
    pub password_length: usize,
    /// `[api]dhcp_domain`.
    pub dhcp_domain: String,
    /// Quota defaults.
    pub quota: QuotaDefaults,
    /// Number of simulated compute hosts, `rova-sim-1` … `rova-sim-N`.
    pub sim_hosts: usize,
    /// Capacity of every simulated host unless overridden per host.
    pub sim_host: SimHostSpec,
    /// Per-host overrides of [`Config::sim_host`], by host name.
    pub sim_host_overrides: BTreeMap<String, SimHostOverride>,
    /// `[DEFAULT]allow_resize_to_same_host`. Unset means true with a single
    /// host (as devstack configures one-node clouds) and false otherwise.
    pub allow_resize_to_same_host: Option<bool>,
    /// Which virt driver runs the guests.
    pub driver: DriverKind,
    /// Settings of the QEMU driver (used with [`DriverKind::Qemu`]).
    pub qemu: QemuConfig,
    /// The installed noVNC web client the console proxy serves (Debian's
    /// `novnc` package puts it in `/usr/share/novnc`), as Nova's
    /// `[vnc]novncproxy` serves its `[DEFAULT]web` directory.
    pub novnc_path: PathBuf,
}

/// The virt driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// Simulated guests (the default): a faithful control plane with no VMs.
    Fake,
    /// Real guests, one QEMU process each.
    Qemu,
}

impl std::str::FromStr for DriverKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "fake" | "sim" | "simulated" => Ok(DriverKind::Fake),
            "qemu" | "libvirt" => Ok(DriverKind::Qemu),
            other => Err(format!(
                "unknown driver {other:?} (expected \"fake\" or \"qemu\")"
            )),
        }
    }
}

/// The QEMU driver's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QemuConfig {
    /// Agents (compute hosts) on this machine, `rova-qemu-1` … `rova-qemu-N`;
    /// each keeps its runtime state in its own directory, instance disks
    /// live in one shared directory (as with Nova on shared storage).
    pub hosts: usize,
    /// `auto` (probe: KVM only when a guest really runs under it), `kvm`
    /// or `tcg`.
    pub accel: String,
    /// `-cpu` model; default `host` under KVM, QEMU's default under TCG.
    pub cpu_model: Option<String>,
    /// The QEMU system emulator.
    pub binary: String,
    /// Kernel and initramfs of the test guest image registered at
    /// bootstrap (default `~/.cache/rova/guest/`).
    pub guest_kernel: Option<PathBuf>,
    pub guest_initrd: Option<PathBuf>,
    /// `[DEFAULT]shutdown_timeout`: seconds a guest gets to power off
    /// after the ACPI power button before it is stopped hard.
    pub shutdown_timeout_secs: u64,
    /// `[DEFAULT]force_config_drive`.
    pub force_config_drive: bool,
    /// `[DEFAULT]config_drive_format`: `iso9660` or `vfat`.
    pub config_drive_format: String,
    /// Seconds between power-state sync passes (Nova's
    /// `sync_power_state_interval`).
    pub sync_interval_secs: u64,
    /// How guests are networked: QEMU user networking (the default, no
    /// privileges needed) or the Linux-bridge data path (root).
    pub network: GuestNetwork,
    /// The network namespace the bridge data path lives in (bridges,
    /// taps, dnsmasq, the metadata listener, the QEMU processes); `None`
    /// is the namespace Rova runs in.
    pub netns: Option<String>,
    /// MiB/s a live migration's stream may use (Nova's
    /// `[libvirt]live_migration_bandwidth`); 0 is unlimited.
    pub live_migration_bandwidth_mib: u64,
}

/// How the QEMU driver connects guests to their networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestNetwork {
    /// QEMU user networking (slirp): the guest gets slirp's address, the
    /// metadata service is forwarded per guest. No privileges needed.
    #[default]
    User,
    /// A Linux bridge per network and a tap per port, DHCP from dnsmasq
    /// with the ports' fixed IPs, the metadata service on the bridge at
    /// 169.254.169.254 (needs root).
    Bridge,
}

impl std::str::FromStr for GuestNetwork {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "user" => Ok(GuestNetwork::User),
            "bridge" => Ok(GuestNetwork::Bridge),
            other => Err(format!(
                "unknown guest network {other:?} (expected \"user\" or \"bridge\")"
            )),
        }
    }
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            hosts: 1,
            accel: "auto".into(),
            cpu_model: None,
            binary: "qemu-system-x86_64".into(),
            guest_kernel: None,
            guest_initrd: None,
            shutdown_timeout_secs: 20,
            force_config_drive: false,
            config_drive_format: "iso9660".into(),
            sync_interval_secs: 2,
            network: GuestNetwork::User,
            netns: None,
            live_migration_bandwidth_mib: 0,
        }
    }
}

/// The inventory of one simulated compute host (Nova's compute node plus
/// its allocation ratios and `reserved_host_memory_mb`).
#[derive(Debug, Clone, PartialEq)]
pub struct SimHostSpec {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub reserved_host_memory_mb: u64,
    pub availability_zone: String,
}

impl Default for SimHostSpec {
    fn default() -> Self {
        SimHostSpec {
            vcpus: 16,
            memory_mb: 65536,
            disk_gb: 1000,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            reserved_host_memory_mb: 512,
            availability_zone: "nova".into(),
        }
    }
}

/// What one host changes of the common [`SimHostSpec`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimHostOverride {
    pub vcpus: Option<u32>,
    pub memory_mb: Option<u64>,
    pub disk_gb: Option<u64>,
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_allocation_ratio: Option<f64>,
    pub availability_zone: Option<String>,
    pub host_ip: Option<String>,
}

impl SimHostOverride {
    /// Parses `NAME:key=value,key=value` (keys `vcpus`, `ram_mb`,
    /// `disk_gb`, `cpu_ratio`, `ram_ratio`, `disk_ratio`, `az`, `ip`).
    pub fn parse(spec: &str) -> Result<(String, SimHostOverride), String> {
        let (name, rest) = spec
            .split_once(':')
            .ok_or_else(|| format!("host spec {spec:?} must look like NAME:key=value,..."))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("host spec {spec:?} has no host name"));
        }
        let mut o = SimHostOverride::default();
        for kv in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("host spec {spec:?}: {kv:?} is not key=value"))?;
            let bad = || format!("host spec {spec:?}: invalid value for {k}: {v:?}");
            let pos_f = |v: &str| v.parse::<f64>().ok().filter(|f| *f > 0.0).ok_or_else(bad);
            match k.trim() {
                "vcpus" => o.vcpus = Some(v.parse().map_err(|_| bad())?),
                "ram_mb" => o.memory_mb = Some(v.parse().map_err(|_| bad())?),
                "disk_gb" => o.disk_gb = Some(v.parse().map_err(|_| bad())?),
                "cpu_ratio" => o.cpu_allocation_ratio = Some(pos_f(v)?),
                "ram_ratio" => o.ram_allocation_ratio = Some(pos_f(v)?),
                "disk_ratio" => o.disk_allocation_ratio = Some(pos_f(v)?),
                "az" if !v.trim().is_empty() => o.availability_zone = Some(v.trim().to_string()),
                "ip" if v.trim().parse::<std::net::IpAddr>().is_ok() => {
                    o.host_ip = Some(v.trim().to_string())
                }
                other => {
                    return Err(format!(
                        "host spec {spec:?}: unknown or invalid key {other:?}"
                    ))
                }
            }
        }
        Ok((name.to_string(), o))
    }
}

/// Nova's default quotas (`[quota]`).
#[derive(Debug, Clone)]
pub struct QuotaDefaults {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
    pub metadata_items: i64,
    pub injected_files: i64,
    pub injected_file_content_bytes: i64,
    pub injected_file_path_length: i64,
    pub key_pairs: i64,
    pub server_groups: i64,
    pub server_group_members: i64,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        QuotaDefaults {
            instances: 10,
            cores: 20,
            ram: 51200,
            metadata_items: 128,
            injected_files: 5,
            injected_file_content_bytes: 10240,
            injected_file_path_length: 255,
            key_pairs: 100,
            server_groups: 10,
            server_group_members: 10,
        }
    }
}

impl Config {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Config {
            data_dir,
            database: None,
            listen,
            agent_listen: None,
            local_hosts: true,
            sim_latency_ms: 5,
            token_ttl_secs: 3600,
            reclaim_instance_interval: 0,
            shelved_offload_time: 0,
            instance_build_timeout: 0,
            rescue_timeout: 0,
            periodic_interval_secs: 1,
            report_interval: 10,
            service_down_time: 60,
            resize_confirm_window: 0,
            max_limit: 1000,
            instance_cache: 0,
            password_length: 12,
            dhcp_domain: "novalocal".into(),
            quota: QuotaDefaults::default(),
            sim_hosts: 1,
            sim_host: SimHostSpec::default(),
            sim_host_overrides: BTreeMap::new(),
            allow_resize_to_same_host: None,
            driver: DriverKind::Fake,
            qemu: QemuConfig::default(),
            novnc_path: PathBuf::from("/usr/share/novnc"),
        }
    }

    /// Checks the settings that depend on each other: a service must
    /// report at least once within `service_down_time`.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_keys().map_err(|e| e.to_string())
    }

    /// [`Config::validate`], naming the key to blame.
    pub fn validate_keys(&self) -> Result<(), KeyError> {
        if self.report_interval < 1 {
            return Err(KeyError::new(
                "report_interval",
                "must be at least 1 second",
            ));
        }
        if self.service_down_time <= self.report_interval {
            return Err(KeyError::new(
                "service_down_time",
                format!(
                    "{} is not greater than report_interval ({}): every service \
                     would look down between its reports",
                    self.service_down_time, self.report_interval
                ),
            ));
        }
        Ok(())
    }

    /// How many compute hosts this configuration runs.
    pub fn host_count(&self) -> usize {
        match self.driver {
            DriverKind::Fake => self.sim_hosts,
            DriverKind::Qemu => self.qemu.hosts,
        }
    }

    /// The effective `allow_resize_to_same_host`.
    pub fn resize_to_same_host(&self) -> bool {
        self.allow_resize_to_same_host
            .unwrap_or(self.host_count() <= 1)
    }

    /// Applies the `ROVA_*` environment (each `ROVA_X` sets key `x` of
    /// the configuration file, see [`env_settings`]).
    pub fn apply_env(&mut self) -> Result<(), String> {
        env_settings()?
            .apply(self)
            .map_err(|e| format!("{}: {}", env_name(e.key), e.reason))
    }

    /// The configuration of `rova serve`: the defaults, then the file,
    /// then the environment's settings, then the flags'. Errors name their
    /// source: `FILE: KEY: REASON`, `ROVA_X: REASON`, `FLAG: REASON`
    /// (`flag` names a key's flag). The settings that depend on each other
    /// are checked on the result; the file is blamed when it is wrong on its
    /// own.
    pub fn resolve(
        file: Option<&Path>,
        env: &Settings,
        flags: &Settings,
        flag: impl Fn(&str) -> String,
    ) -> Result<Config, String> {
        let mut cfg = Config::default();
        let mut file_only = None;
        if let Some(path) = file {
            file::load(path)?
                .apply(&mut cfg)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file_only = Some(cfg.clone());
        }
        env.apply(&mut cfg)
            .map_err(|e| format!("{}: {}", env_name(e.key), e.reason))?;
        flags
            .apply(&mut cfg)
            .map_err(|e| format!("{}: {}", flag(e.key), e.reason))?;
        if let Err(e) = cfg.validate_keys() {
            return Err(match (file, file_only.map(|c| c.validate_keys())) {
                (Some(path), Some(Err(e))) => format!("{}: {e}", path.display()),
                _ => e.to_string(),
            });
        }
        Ok(cfg)
    }
}

impl Default for Config {
    /// Every default: [`DEFAULT_DATA_DIR`], [`DEFAULT_LISTEN`] and the rest.
    fn default() -> Self {
        Config::new(PathBuf::from(DEFAULT_DATA_DIR), DEFAULT_LISTEN)
    }
}

/// The environment variable of a configuration key: `ROVA_` and the key in
/// capitals (`quota.cores`: `ROVA_QUOTA_CORES`), `ROVA_SIM_HOST_SPECS` for
/// `sim_host_spec` (`;`-separated).
pub fn env_name(key: &str) -> String {
    match key {
        "sim_host_spec" => "ROVA_SIM_HOST_SPECS".into(),
        "database" => "ROVA_DATABASE_URL".into(),
        k => format!("ROVA_{}", k.replace('.', "_").to_uppercase()),
    }
}

/// The settings the `ROVA_*` environment gives, but for `ROVA_DATA_DIR`,
/// `ROVA_DATABASE_URL` and `ROVA_LISTEN`, which the command line reads as
/// its flags' values. Booleans are true for `1`, `true`, `True`, `yes`.
pub fn env_settings() -> Result<Settings, String> {
    fn var(key: &str) -> Option<String> {
        std::env::var(env_name(key)).ok()
    }
    fn num<T: TryFrom<i64>>(key: &str) -> Result<Option<T>, String> {
        let Some(v) = var(key) else { return Ok(None) };
        let name = env_name(key);
        let n = v
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{name}: {v:?} is not an integer"))?;
        T::try_from(n)
            .map(Some)
            .map_err(|_| format!("{name}: {v:?} is out of range"))
    }
    fn flag(key: &str) -> Option<bool> {
        var(key).map(|v| matches!(v.trim(), "1" | "true" | "True" | "yes"))
    }
    let path = |key: &str| var(key).map(PathBuf::from);
    Ok(Settings {
        data_dir: None,
        database: None,
        listen: None,
        agent_listen: var("agent_listen")
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| format!("{}: {v:?} is not an address", env_name("agent_listen")))
            })
            .transpose()?,
        sim_latency_ms: num("sim_latency_ms")?,
        instance_cache: num("instance_cache")?,
        reclaim_instance_interval: num("reclaim_instance_interval")?,
        report_interval: num("report_interval")?,
        service_down_time: num("service_down_time")?,
        sim_hosts: num("sim_hosts")?,
        sim_host_vcpus: num("sim_host_vcpus")?,
        sim_host_ram_mb: num("sim_host_ram_mb")?,
        sim_host_disk_gb: num("sim_host_disk_gb")?,
        sim_host_spec: var("sim_host_spec")
            .map(|v| {
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        driver: var("driver"),
        qemu_hosts: num("qemu_hosts")?,
        qemu_accel: var("qemu_accel"),
        qemu_network: var("qemu_network"),
        qemu_netns: var("qemu_netns"),
        novnc_path: path("novnc_path"),
        shelved_offload_time: num("shelved_offload_time")?,
        resize_confirm_window: num("resize_confirm_window")?,
        instance_build_timeout: num("instance_build_timeout")?,
        rescue_timeout: num("rescue_timeout")?,
        token_ttl: num("token_ttl")?,
        allow_resize_to_same_host: flag("allow_resize_to_same_host"),
        qemu_cpu: var("qemu_cpu"),
        qemu_binary: var("qemu_binary"),
        guest_kernel: path("guest_kernel"),
        guest_initrd: path("guest_initrd"),
        shutdown_timeout: num("shutdown_timeout")?,
        force_config_drive: flag("force_config_drive"),
        config_drive_format: var("config_drive_format"),
        quota: file::QuotaSettings {
            instances: num("quota.instances")?,
            cores: num("quota.cores")?,
            ram: num("quota.ram")?,
            metadata_items: num("quota.metadata_items")?,
            key_pairs: num("quota.key_pairs")?,
            server_groups: num("quota.server_groups")?,
            server_group_members: num("quota.server_group_members")?,
        },
        // `rova agent` reads ROVA_AGENT_* through its flags.
        agent: file::AgentSettings::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn novnc_path_comes_from_the_environment() {
        let mut cfg = Config::new(PathBuf::from("d"), "127.0.0.1:0".parse().expect("addr"));
        std::env::set_var("ROVA_NOVNC_PATH", "/srv/novnc");
        let r = cfg.apply_env();
        std::env::remove_var("ROVA_NOVNC_PATH");
        assert_eq!(r, Ok(()));
        assert_eq!(cfg.novnc_path, PathBuf::from("/srv/novnc"));
    }
}
