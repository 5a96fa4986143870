//! Runtime configuration: command-line flags with environment overrides and
//! documented defaults. Invalid values fail at start with a clear message.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the control plane needs to know at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
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
    /// `[api]max_limit`.
    pub max_limit: usize,
    /// `[DEFAULT]password_length`.
    pub password_length: usize,
    /// `[api]dhcp_domain`.
    pub dhcp_domain: String,
    /// Quota defaults.
    pub quota: QuotaDefaults,
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
            listen,
            sim_latency_ms: 5,
            token_ttl_secs: 3600,
            reclaim_instance_interval: 0,
            shelved_offload_time: 0,
            instance_build_timeout: 0,
            rescue_timeout: 0,
            periodic_interval_secs: 1,
            resize_confirm_window: 0,
            max_limit: 1000,
            password_length: 12,
            dhcp_domain: "novalocal".into(),
            quota: QuotaDefaults::default(),
        }
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
            self.sim_latency_ms = u64::try_from(v).map_err(|_| "ROVA_SIM_LATENCY_MS must be >= 0")?;
        }
        if let Some(v) = num("ROVA_TOKEN_TTL")? {
            self.token_ttl_secs = v;
        }
        let q = &mut self.quota;
        for (name, slot) in [
            ("ROVA_QUOTA_INSTANCES", &mut q.instances),
            ("ROVA_QUOTA_CORES", &mut q.cores),
            ("ROVA_QUOTA_RAM", &mut q.ram),
            ("ROVA_QUOTA_METADATA_ITEMS", &mut q.metadata_items),
            ("ROVA_QUOTA_KEY_PAIRS", &mut q.key_pairs),
        ] {
            if let Some(v) = num(name)? {
                *slot = v;
            }
        }
        Ok(())
    }
}
