//! Runtime configuration: command-line flags with environment overrides and
//! documented defaults. Invalid values fail at start with a clear message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the control plane needs to know at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Where the tables are kept: `None` is the embedded default
    /// (`sqlite://<data_dir>/rova.sqlite`); `--database URL` /
    /// `ROVA_DATABASE_URL` name another SQLite file or a PostgreSQL database.
    pub database: Option<crate::store::Database>,
    pub listen: SocketAddr,
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
        if self.report_interval < 1 {
            return Err("report_interval must be at least 1 second".into());
        }
        if self.service_down_time <= self.report_interval {
            return Err(format!(
                "service_down_time ({}) must be greater than report_interval ({}), \
                 or every service would look down between its reports",
                self.service_down_time, self.report_interval
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

    /// Applies `ROVA_*` environment overrides for the numeric knobs.
    pub fn apply_env(&mut self) -> Result<(), String> {
        fn num(name: &str) -> Result<Option<i64>, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| format!("{name}={v} is not an integer")),
                Err(_) => Ok(None),
            }
        }
        if let Some(v) = num("ROVA_RECLAIM_INSTANCE_INTERVAL")? {
            self.reclaim_instance_interval = v;
        }
        if let Some(v) = num("ROVA_SHELVED_OFFLOAD_TIME")? {
            self.shelved_offload_time = v;
        }
        if let Some(v) = num("ROVA_RESIZE_CONFIRM_WINDOW")? {
            self.resize_confirm_window = v;
        }
        if let Some(v) = num("ROVA_INSTANCE_BUILD_TIMEOUT")? {
            self.instance_build_timeout = v;
        }
        if let Some(v) = num("ROVA_RESCUE_TIMEOUT")? {
            self.rescue_timeout = v;
        }
        if let Some(v) = num("ROVA_SIM_LATENCY_MS")? {
            self.sim_latency_ms =
                u64::try_from(v).map_err(|_| "ROVA_SIM_LATENCY_MS must be >= 0")?;
        }
        if let Some(v) = num("ROVA_INSTANCE_CACHE")? {
            self.instance_cache =
                usize::try_from(v).map_err(|_| "ROVA_INSTANCE_CACHE must be >= 0")?;
        }
        if let Some(v) = num("ROVA_TOKEN_TTL")? {
            self.token_ttl_secs = v;
        }
        if let Some(v) = num("ROVA_REPORT_INTERVAL")? {
            self.report_interval =
                u64::try_from(v).map_err(|_| "ROVA_REPORT_INTERVAL must be >= 1")?;
        }
        if let Some(v) = num("ROVA_SERVICE_DOWN_TIME")? {
            self.service_down_time =
                u64::try_from(v).map_err(|_| "ROVA_SERVICE_DOWN_TIME must be >= 1")?;
        }
        if let Some(v) = num("ROVA_SIM_HOSTS")? {
            self.sim_hosts = usize::try_from(v)
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or("ROVA_SIM_HOSTS must be between 1 and 1000")?;
        }
        if let Some(v) = num("ROVA_SIM_HOST_VCPUS")? {
            self.sim_host.vcpus =
                u32::try_from(v).map_err(|_| "ROVA_SIM_HOST_VCPUS must be >= 0")?;
        }
        if let Some(v) = num("ROVA_SIM_HOST_RAM_MB")? {
            self.sim_host.memory_mb =
                u64::try_from(v).map_err(|_| "ROVA_SIM_HOST_RAM_MB must be >= 0")?;
        }
        if let Some(v) = num("ROVA_SIM_HOST_DISK_GB")? {
            self.sim_host.disk_gb =
                u64::try_from(v).map_err(|_| "ROVA_SIM_HOST_DISK_GB must be >= 0")?;
        }
        if let Ok(specs) = std::env::var("ROVA_SIM_HOST_SPECS") {
            for spec in specs.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, o) = SimHostOverride::parse(spec)?;
                self.sim_host_overrides.insert(name, o);
            }
        }
        if let Ok(v) = std::env::var("ROVA_ALLOW_RESIZE_TO_SAME_HOST") {
            self.allow_resize_to_same_host =
                Some(matches!(v.trim(), "1" | "true" | "True" | "yes"));
        }
        if let Ok(v) = std::env::var("ROVA_DRIVER") {
            self.driver = v.parse()?;
        }
        if let Some(v) = num("ROVA_QEMU_HOSTS")? {
            self.qemu.hosts = usize::try_from(v)
                .ok()
                .filter(|n| (1..=16).contains(n))
                .ok_or("ROVA_QEMU_HOSTS must be between 1 and 16")?;
        }
        if let Ok(v) = std::env::var("ROVA_QEMU_ACCEL") {
            self.qemu.accel = v;
        }
        if let Ok(v) = std::env::var("ROVA_QEMU_NETWORK") {
            self.qemu.network = v.parse().map_err(|e| format!("ROVA_QEMU_NETWORK: {e}"))?;
        }
        if let Ok(v) = std::env::var("ROVA_QEMU_NETNS") {
            self.qemu.netns = Some(v).filter(|s| !s.trim().is_empty());
        }
        if let Ok(v) = std::env::var("ROVA_QEMU_CPU") {
            self.qemu.cpu_model = Some(v).filter(|s| !s.is_empty());
        }
        if let Ok(v) = std::env::var("ROVA_QEMU_BINARY") {
            self.qemu.binary = v;
        }
        if let Ok(v) = std::env::var("ROVA_GUEST_KERNEL") {
            self.qemu.guest_kernel = Some(PathBuf::from(v));
        }
        if let Ok(v) = std::env::var("ROVA_GUEST_INITRD") {
            self.qemu.guest_initrd = Some(PathBuf::from(v));
        }
        if let Some(v) = num("ROVA_SHUTDOWN_TIMEOUT")? {
            self.qemu.shutdown_timeout_secs =
                u64::try_from(v).map_err(|_| "ROVA_SHUTDOWN_TIMEOUT must be >= 0")?;
        }
        if let Ok(v) = std::env::var("ROVA_FORCE_CONFIG_DRIVE") {
            self.qemu.force_config_drive = matches!(v.trim(), "1" | "true" | "True" | "yes");
        }
        if let Ok(v) = std::env::var("ROVA_CONFIG_DRIVE_FORMAT") {
            if !matches!(v.as_str(), "iso9660" | "vfat") {
                return Err(format!(
                    "ROVA_CONFIG_DRIVE_FORMAT={v}: expected iso9660 or vfat"
                ));
            }
            self.qemu.config_drive_format = v;
        }
        if let Ok(v) = std::env::var("ROVA_NOVNC_PATH") {
            if !v.trim().is_empty() {
                self.novnc_path = PathBuf::from(v);
            }
        }
        let q = &mut self.quota;
        for (name, slot) in [
            ("ROVA_QUOTA_INSTANCES", &mut q.instances),
            ("ROVA_QUOTA_CORES", &mut q.cores),
            ("ROVA_QUOTA_RAM", &mut q.ram),
            ("ROVA_QUOTA_METADATA_ITEMS", &mut q.metadata_items),
            ("ROVA_QUOTA_KEY_PAIRS", &mut q.key_pairs),
            ("ROVA_QUOTA_SERVER_GROUPS", &mut q.server_groups),
            (
                "ROVA_QUOTA_SERVER_GROUP_MEMBERS",
                &mut q.server_group_members,
            ),
        ] {
            if let Some(v) = num(name)? {
                *slot = v;
            }
        }
        Ok(())
    }
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
