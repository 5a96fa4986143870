//! The `rova serve` settings as one source gives them: the TOML
//! configuration file (`--config FILE`), and the same shape filled from the
//! `ROVA_*` environment and from the command-line flags. [`Settings`] holds
//! every key of the file, each optional; [`Settings::apply`] is the one place
//! that checks a value and writes it into a [`Config`], whichever source it
//! came from. Loading the file turns each problem into `KEY: REASON`.

use super::{Config, SimHostOverride};
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Simulated compute hosts a process may run (`sim_hosts`).
pub const SIM_HOSTS: RangeInclusive<u64> = 1..=1000;
/// QEMU agents a process may run (`qemu_hosts`).
pub const QEMU_HOSTS: RangeInclusive<u64> = 1..=16;

/// One source's settings. The field names are the file's keys; each serve
/// flag has the key of its name with `_` for `-`, each `ROVA_X` environment
/// variable the key `x` (`ROVA_QUOTA_X`: `x` in `[quota]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub listen: Option<SocketAddr>,
    pub agent_listen: Option<SocketAddr>,
    pub sim_latency_ms: Option<u64>,
    pub instance_cache: Option<usize>,
    pub reclaim_instance_interval: Option<i64>,
    pub report_interval: Option<u64>,
    pub service_down_time: Option<u64>,
    pub sim_hosts: Option<u64>,
    pub sim_host_vcpus: Option<u32>,
    pub sim_host_ram_mb: Option<u64>,
    pub sim_host_disk_gb: Option<u64>,
    /// Per-host inventories, `NAME:key=value,...` each.
    #[serde(default)]
    pub sim_host_spec: Vec<String>,
    pub driver: Option<String>,
    pub qemu_hosts: Option<u64>,
    pub qemu_accel: Option<String>,
    pub qemu_network: Option<String>,
    pub qemu_netns: Option<String>,
    pub novnc_path: Option<PathBuf>,
    pub shelved_offload_time: Option<i64>,
    pub resize_confirm_window: Option<i64>,
    pub instance_build_timeout: Option<i64>,
    pub rescue_timeout: Option<i64>,
    /// Token lifetime in seconds.
    pub token_ttl: Option<i64>,
    pub allow_resize_to_same_host: Option<bool>,
    pub qemu_cpu: Option<String>,
    pub qemu_binary: Option<String>,
    pub guest_kernel: Option<PathBuf>,
    pub guest_initrd: Option<PathBuf>,
    pub shutdown_timeout: Option<u64>,
    pub force_config_drive: Option<bool>,
    pub config_drive_format: Option<String>,
    #[serde(default)]
    pub quota: QuotaSettings,
    /// `rova agent`'s settings (a control replica ignores them).
    #[serde(default)]
    pub agent: AgentSettings,
}

/// The `[agent]` table: `rova agent`'s settings. Each agent flag has the
/// key of its name with `_` for `-`; the `ROVA_AGENT_X` environment
/// variable overrides key `x`, and the flag overrides both.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    pub host: Option<String>,
    /// Control replicas' agent listeners, `IP:PORT`, tried in turn.
    #[serde(default)]
    pub control: Vec<String>,
    pub listen: Option<SocketAddr>,
    pub driver: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub sim_latency_ms: Option<u64>,
    pub vcpus: Option<u32>,
    pub ram_mb: Option<u64>,
    pub disk_gb: Option<u64>,
    pub availability_zone: Option<String>,
    /// Seconds between heartbeats (unset: what the control plane asks).
    pub report_interval: Option<u64>,
    /// Where plain-HTTP `GET /metrics` is served (unset: nowhere).
    pub metrics_listen: Option<SocketAddr>,
    /// The QEMU driver's accelerator: `auto`, `kvm` or `tcg`.
    pub qemu_accel: Option<String>,
    /// The QEMU system emulator.
    pub qemu_binary: Option<String>,
    /// Where instance disks live (shared between agents for live
    /// migration on shared storage).
    pub instances_path: Option<PathBuf>,
    /// MiB/s a live migration's stream may use; 0 is unlimited.
    pub live_migration_bandwidth: Option<u64>,
}

impl AgentSettings {
    /// `self` (flags and environment) over `file`, key by key.
    pub fn over(self, file: AgentSettings) -> AgentSettings {
        AgentSettings {
            host: self.host.or(file.host),
            control: if self.control.is_empty() {
                file.control
            } else {
                self.control
            },
            listen: self.listen.or(file.listen),
            driver: self.driver.or(file.driver),
            state_dir: self.state_dir.or(file.state_dir),
            sim_latency_ms: self.sim_latency_ms.or(file.sim_latency_ms),
            vcpus: self.vcpus.or(file.vcpus),
            ram_mb: self.ram_mb.or(file.ram_mb),
            disk_gb: self.disk_gb.or(file.disk_gb),
            availability_zone: self.availability_zone.or(file.availability_zone),
            report_interval: self.report_interval.or(file.report_interval),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            qemu_accel: self.qemu_accel.or(file.qemu_accel),
            qemu_binary: self.qemu_binary.or(file.qemu_binary),
            instances_path: self.instances_path.or(file.instances_path),
            live_migration_bandwidth: self
                .live_migration_bandwidth
                .or(file.live_migration_bandwidth),
        }
    }
}

/// The `[quota]` table: default quotas (-1 unlimited).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    pub instances: Option<i64>,
    pub cores: Option<i64>,
    pub ram: Option<i64>,
    pub metadata_items: Option<i64>,
    pub key_pairs: Option<i64>,
    pub server_groups: Option<i64>,
    pub server_group_members: Option<i64>,
}

/// A rejected setting: its key (`quota.cores` inside `[quota]`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: &'static str,
    pub reason: String,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl KeyError {
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        KeyError {
            key,
            reason: reason.into(),
        }
    }
}

/// `v` as a count within `range`, or why not.
fn count_in(key: &'static str, v: u64, range: &RangeInclusive<u64>) -> Result<usize, KeyError> {
    usize::try_from(v)
        .ok()
        .filter(|_| range.contains(&v))
        .ok_or_else(|| {
            KeyError::new(
                key,
                format!(
                    "{v} is out of range (between {} and {})",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// Some non-blank string, `None` for a blank one.
fn non_blank(s: &str) -> Option<String> {
    Some(s.to_string()).filter(|s| !s.trim().is_empty())
}

impl Settings {
    /// Writes every value this source sets into `cfg`, checking each on the
    /// way; the first bad one is the error. Blank `database` and
    /// `novnc_path` count as unset; a blank `qemu_netns` or `qemu_cpu`
    /// restores the default.
    pub fn apply(&self, cfg: &mut Config) -> Result<(), KeyError> {
        if let Some(v) = &self.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(url) = self.database.as_deref().and_then(non_blank) {
            let db =
                crate::store::Database::parse(&url).map_err(|e| KeyError::new("database", e))?;
            cfg.database = Some(db);
        }
        if let Some(v) = self.listen {
            cfg.listen = v;
        }
        if let Some(v) = self.agent_listen {
            cfg.agent_listen = Some(v);
        }
        set(&mut cfg.sim_latency_ms, self.sim_latency_ms);
        set(&mut cfg.instance_cache, self.instance_cache);
        set(
            &mut cfg.reclaim_instance_interval,
            self.reclaim_instance_interval,
        );
        set(&mut cfg.report_interval, self.report_interval);
        set(&mut cfg.service_down_time, self.service_down_time);
        if let Some(n) = self.sim_hosts {
            cfg.sim_hosts = count_in("sim_hosts", n, &SIM_HOSTS)?;
        }
        set(&mut cfg.sim_host.vcpus, self.sim_host_vcpus);
        set(&mut cfg.sim_host.memory_mb, self.sim_host_ram_mb);
        set(&mut cfg.sim_host.disk_gb, self.sim_host_disk_gb);
        for spec in &self.sim_host_spec {
            let (name, o) =
                SimHostOverride::parse(spec).map_err(|e| KeyError::new("sim_host_spec", e))?;
            cfg.sim_host_overrides.insert(name, o);
        }
        if let Some(d) = &self.driver {
            cfg.driver = d.parse().map_err(|e| KeyError::new("driver", e))?;
        }
        if let Some(n) = self.qemu_hosts {
            cfg.qemu.hosts = count_in("qemu_hosts", n, &QEMU_HOSTS)?;
        }
        if let Some(a) = &self.qemu_accel {
            if !matches!(a.as_str(), "auto" | "kvm" | "tcg") {
                return Err(KeyError::new(
                    "qemu_accel",
                    format!("unknown accelerator {a:?} (expected auto, kvm or tcg)"),
                ));
            }
            cfg.qemu.accel = a.clone();
        }
        if let Some(n) = &self.qemu_network {
            cfg.qemu.network = n.parse().map_err(|e| KeyError::new("qemu_network", e))?;
        }
        if let Some(ns) = &self.qemu_netns {
            cfg.qemu.netns = non_blank(ns);
        }
        if let Some(p) = self
            .novnc_path
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            cfg.novnc_path = p.clone();
        }
        set(&mut cfg.shelved_offload_time, self.shelved_offload_time);
        set(&mut cfg.resize_confirm_window, self.resize_confirm_window);
        set(&mut cfg.instance_build_timeout, self.instance_build_timeout);
        set(&mut cfg.rescue_timeout, self.rescue_timeout);
        set(&mut cfg.token_ttl_secs, self.token_ttl);
        if let Some(v) = self.allow_resize_to_same_host {
            cfg.allow_resize_to_same_host = Some(v);
        }
        if let Some(c) = &self.qemu_cpu {
            cfg.qemu.cpu_model = non_blank(c);
        }
        if let Some(b) = &self.qemu_binary {
            cfg.qemu.binary =
                non_blank(b).ok_or_else(|| KeyError::new("qemu_binary", "must not be empty"))?;
        }
        if let Some(p) = &self.guest_kernel {
            cfg.qemu.guest_kernel = Some(p.clone());
        }
        if let Some(p) = &self.guest_initrd {
            cfg.qemu.guest_initrd = Some(p.clone());
        }
        set(&mut cfg.qemu.shutdown_timeout_secs, self.shutdown_timeout);
        set(&mut cfg.qemu.force_config_drive, self.force_config_drive);
        if let Some(f) = &self.config_drive_format {
            if !matches!(f.as_str(), "iso9660" | "vfat") {
                return Err(KeyError::new(
                    "config_drive_format",
                    format!("unknown format {f:?} (expected iso9660 or vfat)"),
                ));
            }
            cfg.qemu.config_drive_format = f.clone();
        }
        let (q, d) = (&self.quota, &mut cfg.quota);
        set(&mut d.instances, q.instances);
        set(&mut d.cores, q.cores);
        set(&mut d.ram, q.ram);
        set(&mut d.metadata_items, q.metadata_items);
        set(&mut d.key_pairs, q.key_pairs);
        set(&mut d.server_groups, q.server_groups);
        set(&mut d.server_group_members, q.server_group_members);
        Ok(())
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// Reads and parses the configuration file; errors read
/// `FILE: KEY: REASON` (`FILE: REASON` when no key is to blame).
pub fn load(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the file: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a configuration file's text; errors read `KEY: REASON (line N)`,
/// or `line N, column M: REASON` for TOML syntax.
pub fn parse(text: &str) -> Result<Settings, String> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| {
        let (line, col) = position(text, e.span().map_or(0, |s| s.start));
        format!("line {line}, column {col}: invalid TOML: {}", e.message())
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let reason = if inner.message().starts_with("unknown field") {
            "unknown key".to_string()
        } else {
            inner.message().to_string()
        };
        match inner.span() {
            Some(span) => format!("{key}: {reason} (line {})", position(text, span.start).0),
            None => format!("{key}: {reason}"),
        }
    })
}

/// 1-based line and column of byte `at` of `text`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The keys of a settings struct (its serde field names).
#[cfg(test)]
pub(crate) fn keys() -> Vec<String> {
    let mut keys: Vec<String> = field_names::<Settings>()
        .iter()
        .filter(|k| **k != "quota" && **k != "agent")
        .map(|k| k.to_string())
        .collect();
    keys.extend(
        field_names::<QuotaSettings>()
            .iter()
            .map(|k| format!("quota.{k}")),
    );
    keys.extend(
        field_names::<AgentSettings>()
            .iter()
            .map(|k| format!("agent.{k}")),
    );
    keys
}

/// The field names serde's derive hands a deserializer for `T`.
#[cfg(test)]
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};
    struct Capture<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Capture<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Self::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Config {
        Config::default()
    }

    /// `text` parsed and applied over the defaults.
    fn applied(text: &str) -> Result<Config, String> {
        let s = parse(text)?;
        let mut cfg = defaults();
        s.apply(&mut cfg).map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    fn err(text: &str) -> String {
        match applied(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_good_file_sets_every_kind_of_value() {
        let cfg = applied(
            r#"
data_dir = "/srv/rova"
database = "postgres://rova@db/rova"
listen = "0.0.0.0:9774"
sim_latency_ms = 0
instance_cache = 100
report_interval = 5
service_down_time = 30
sim_hosts = 3
sim_host_vcpus = 8
sim_host_spec = ["rova-sim-2:vcpus=4,az=zone2", "rova-sim-3:ram_mb=2048"]
driver = "qemu"
qemu_hosts = 2
qemu_accel = "tcg"
qemu_network = "bridge"
qemu_netns = "rova-dp"
shelved_offload_time = -1
token_ttl = 600
allow_resize_to_same_host = true
force_config_drive = true
config_drive_format = "vfat"

[quota]
instances = -1
cores = 64
"#,
        )
        .expect("valid");
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/rova"));
        assert!(matches!(
            cfg.database,
            Some(crate::store::Database::Postgres(_))
        ));
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:9774");
        assert_eq!((cfg.sim_latency_ms, cfg.instance_cache), (0, 100));
        assert_eq!((cfg.report_interval, cfg.service_down_time), (5, 30));
        assert_eq!((cfg.sim_hosts, cfg.sim_host.vcpus), (3, 8));
        assert_eq!(cfg.sim_host_overrides.len(), 2);
        assert_eq!(cfg.sim_host_overrides["rova-sim-2"].vcpus, Some(4));
        assert_eq!(cfg.driver, crate::config::DriverKind::Qemu);
        assert_eq!((cfg.qemu.hosts, cfg.qemu.accel.as_str()), (2, "tcg"));
        assert_eq!(cfg.qemu.network, crate::config::GuestNetwork::Bridge);
        assert_eq!(cfg.qemu.netns.as_deref(), Some("rova-dp"));
        assert_eq!((cfg.shelved_offload_time, cfg.token_ttl_secs), (-1, 600));
        assert_eq!(cfg.allow_resize_to_same_host, Some(true));
        assert!(cfg.qemu.force_config_drive);
        assert_eq!(cfg.qemu.config_drive_format, "vfat");
        assert_eq!((cfg.quota.instances, cfg.quota.cores), (-1, 64));
        assert_eq!(cfg.quota.ram, 51200, "unset keys keep their defaults");
        assert_eq!(cfg.rescue_timeout, 0);
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let cfg = applied("").expect("valid");
        assert_eq!(format!("{cfg:?}"), format!("{:?}", defaults()));
    }

    #[test]
    fn unknown_keys_are_named() {
        assert_eq!(
            err("listen = \"127.0.0.1:1\"\nlisten_addr = 3\n"),
            "listen_addr: unknown key (line 2)"
        );
        assert_eq!(
            err("[quota]\nfloating_ips = 3\n"),
            "quota.floating_ips: unknown key (line 2)"
        );
        assert_eq!(err("[qemu]\nhosts = 2\n"), "qemu: unknown key (line 1)");
    }

    #[test]
    fn wrong_types_are_named() {
        let e = err("sim_latency_ms = \"fast\"\n");
        assert!(
            e.starts_with("sim_latency_ms: invalid type: string \"fast\""),
            "{e}"
        );
        assert!(e.ends_with("(line 1)"), "{e}");
        let e = err("\n\n[quota]\ncores = 1.5\n");
        assert!(
            e.starts_with("quota.cores: invalid type: floating point"),
            "{e}"
        );
        assert!(e.ends_with("(line 4)"), "{e}");
        let e = err("sim_host_spec = \"rova-sim-1:vcpus=2\"\n");
        assert!(e.starts_with("sim_host_spec: invalid type: string"), "{e}");
        let e = err("report_interval = -5\n");
        assert!(e.starts_with("report_interval: "), "{e}");
        let e = err("listen = \"localhost\"\n");
        assert!(e.starts_with("listen: "), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key, reason) in [
            ("driver = \"xen\"", "driver", "unknown driver \"xen\""),
            (
                "qemu_accel = \"foo\"",
                "qemu_accel",
                "expected auto, kvm or tcg",
            ),
            (
                "qemu_network = \"ovs\"",
                "qemu_network",
                "expected \"user\" or \"bridge\"",
            ),
            ("sim_hosts = 0", "sim_hosts", "between 1 and 1000"),
            ("sim_hosts = 1001", "sim_hosts", "between 1 and 1000"),
            ("qemu_hosts = 17", "qemu_hosts", "between 1 and 16"),
            (
                "sim_host_spec = [\"nocolon\"]",
                "sim_host_spec",
                "NAME:key=value",
            ),
            ("database = \"mysql://x\"", "database", "mysql"),
            (
                "config_drive_format = \"udf\"",
                "config_drive_format",
                "iso9660 or vfat",
            ),
            ("qemu_binary = \"\"", "qemu_binary", "must not be empty"),
        ] {
            let e = err(text);
            assert!(e.starts_with(&format!("{key}: ")), "{text}: {e}");
            assert!(e.contains(reason), "{text}: {e}");
        }
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e = err("sim_hosts = 2\nlisten = \"127.0.0.1:1\n");
        assert!(e.starts_with("line 2, column "), "{e}");
        assert!(e.contains("invalid TOML"), "{e}");
        let e = err("sim_hosts = 2\nsim_hosts = 3\n");
        assert!(e.starts_with("line 2, "), "{e}");
    }

    #[test]
    fn the_agent_table_is_read_and_checked() {
        let s = parse(
            "listen = \"127.0.0.1:9\"\n[agent]\nhost = \"node-1\"\ncontrol = [\"10.0.0.1:8775\"]\nreport_interval = 5\n",
        )
        .expect("parses");
        assert_eq!(s.agent.host.as_deref(), Some("node-1"));
        assert_eq!(s.agent.control, vec!["10.0.0.1:8775".to_string()]);
        assert_eq!(s.agent.report_interval, Some(5));
        let e = parse("[agent]\nhost = \"n\"\nhostname = \"n\"\n").err();
        assert_eq!(e.as_deref(), Some("agent.hostname: unknown key (line 3)"));
        let e = parse("[agent]\nvcpus = \"many\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("agent.vcpus: invalid type"), "{e}");
        // Flags and environment win over the file, key by key.
        let flags = AgentSettings {
            report_interval: Some(2),
            ..Default::default()
        };
        let merged = flags.over(s.agent);
        assert_eq!(merged.report_interval, Some(2));
        assert_eq!(merged.host.as_deref(), Some("node-1"));
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let path = std::env::temp_dir().join(format!("rova-no-such-{}.toml", uuid::Uuid::new_v4()));
        let e = load(&path).err().unwrap_or_default();
        assert!(
            e.starts_with(&format!("{}: cannot read the file: ", path.display())),
            "{e}"
        );
    }

    #[test]
    fn the_example_file_lists_every_key_with_its_default() {
        let example = include_str!("../../../../etc/rova.toml.example");
        // Every `# key = value` line, uncommented.
        let text: String = example
            .lines()
            .map(|l| {
                let t = l.trim_start_matches("# ");
                let is_setting = t.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                if is_setting {
                    t
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let doc: toml::Table = text.parse().expect("the example is TOML");
        let mut listed: Vec<String> = Vec::new();
        for (k, v) in &doc {
            match v.as_table() {
                Some(t) => listed.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
                None => listed.push(k.clone()),
            }
        }
        let mut all = keys();
        all.sort();
        listed.sort();
        assert_eq!(listed, all, "etc/rova.toml.example lists every key once");
        let mut cfg = applied(&text).expect("the example's values are valid");
        assert!(cfg.validate().is_ok());
        // Keys without a default show an example value instead.
        cfg.database = None;
        cfg.agent_listen = None;
        cfg.qemu.netns = None;
        cfg.qemu.cpu_model = None;
        cfg.qemu.guest_kernel = None;
        cfg.qemu.guest_initrd = None;
        cfg.allow_resize_to_same_host = None;
        cfg.sim_host_overrides.clear();
        assert_eq!(
            format!("{cfg:?}"),
            format!("{:?}", defaults()),
            "the example's values are the defaults"
        );
    }
}
