//! Compute nodes and their inventory: the hosts a process serves (from
//! its configuration, or this machine's resources for real guests) and
//! the `resource_providers` rows that make their inventory the
//! database's, as Placement keeps it. Each process registers the hosts it
//! serves when it starts (a row written only when it differs from what is
//! stored); the fleet is every registered host, so a host another process
//! registered is scheduled onto too, and the capacity guard of a claim
//! reads the node's capacity from its row in the claiming transaction.

use crate::config::Config;
use crate::store::Table;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// One simulated compute host and its node inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostConfig {
    /// 1-based position: the integer service and hypervisor id below 2.53.
    pub index: usize,
    pub name: String,
    pub availability_zone: String,
    pub host_ip: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub reserved_memory_mb: u64,
}

impl HostConfig {
    /// The stable uuid of this host's nova-compute service.
    pub fn service_uuid(&self) -> String {
        stable_uuid(&format!("service:nova-compute:{}", self.name))
    }
    /// The stable uuid of this host's compute node (hypervisor).
    pub fn node_uuid(&self) -> String {
        node_key(&self.name)
    }
}

/// The hosts the configuration asks for.
pub fn hosts_from_config(cfg: &Config) -> Vec<HostConfig> {
    if !cfg.local_hosts {
        return Vec::new();
    }
    let real = cfg.driver == crate::config::DriverKind::Qemu;
    let machine = real.then(machine_inventory);
    (1..=cfg.host_count().max(1))
        .map(|i| {
            let name = if real {
                format!("rova-qemu-{i}")
            } else {
                format!("rova-sim-{i}")
            };
            let mut base = cfg.sim_host.clone();
            if let Some((vcpus, memory_mb, disk_gb)) = machine {
                // Agents on one machine share it; each offers all of it
                // (the allocation ratios still apply).
                base.vcpus = vcpus;
                base.memory_mb = memory_mb;
                base.disk_gb = disk_gb;
                base.reserved_host_memory_mb = 512.min(memory_mb / 4);
            }
            let base = &base;
            let o = cfg
                .sim_host_overrides
                .get(&name)
                .cloned()
                .unwrap_or_default();
            HostConfig {
                index: i,
                availability_zone: o
                    .availability_zone
                    .unwrap_or_else(|| base.availability_zone.clone()),
                host_ip: o
                    .host_ip
                    .unwrap_or_else(|| format!("10.1.{}.{}", i / 250, i % 250 + 1)),
                vcpus: o.vcpus.unwrap_or(base.vcpus),
                memory_mb: o.memory_mb.unwrap_or(base.memory_mb),
                disk_gb: o.disk_gb.unwrap_or(base.disk_gb),
                cpu_allocation_ratio: o.cpu_allocation_ratio.unwrap_or(base.cpu_allocation_ratio),
                ram_allocation_ratio: o.ram_allocation_ratio.unwrap_or(base.ram_allocation_ratio),
                disk_allocation_ratio: o
                    .disk_allocation_ratio
                    .unwrap_or(base.disk_allocation_ratio),
                reserved_memory_mb: base.reserved_host_memory_mb,
                name,
            }
        })
        .collect()
}

/// This machine's CPUs, memory (MB) and free disk (GB) for real hosts.
fn machine_inventory() -> (u32, u64, u64) {
    let vcpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let memory_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(4096);
    (vcpus, memory_mb, 200)
}

/// A uuid derived from a name, so ids stay the same across restarts
/// without being stored.
pub fn stable_uuid(name: &str) -> String {
    let d = sha2::Sha256::digest(format!("rova:{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// What the allocations on a node may add up to: its inventory with the
/// allocation ratios and reserved memory applied (Placement's capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
}

impl HostConfig {
    /// The node's capacity for allocations.
    pub fn capacity(&self) -> Capacity {
        let scaled = |total: f64, ratio: f64| (total * ratio).floor() as i64;
        Capacity {
            vcpus: scaled(f64::from(self.vcpus), self.cpu_allocation_ratio),
            memory_mb: scaled(self.memory_mb as f64, self.ram_allocation_ratio)
                - self.reserved_memory_mb as i64,
            disk_gb: scaled(self.disk_gb as f64, self.disk_allocation_ratio),
        }
    }
}

/// A compute node as its `resource_providers` row keeps it (keyed by the
/// node's uuid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    #[serde(flatten)]
    pub host: HostConfig,
    pub capacity: Capacity,
    /// Its compute service is being deleted: out of the fleet, and with no
    /// capacity, so the capacity guard refuses every claim on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retiring: bool,
}

impl Provider {
    pub fn of(host: &HostConfig) -> Self {
        Provider {
            host: host.clone(),
            capacity: host.capacity(),
            retiring: false,
        }
    }

    /// The row that retires `host`: no capacity, out of the fleet.
    pub fn retiring(host: &HostConfig) -> Self {
        Provider {
            host: host.clone(),
            capacity: Capacity {
                vcpus: 0,
                memory_mb: 0,
                disk_gb: 0,
            },
            retiring: true,
        }
    }
}

/// Registers `hosts`: writes the row of each whose stored row says
/// otherwise (a new host, or an inventory that changed since), queued
/// behind, before anything this process claims on them. With `sole` (this
/// process is the only one on its database) the rows of hosts it does not
/// serve are removed, so a host taken out of the configuration leaves the
/// fleet; where processes share the database they stay, registered by
/// another process.
pub fn register(table: &Table<Provider>, hosts: &[HostConfig], sole: bool) -> Result<(), String> {
    for h in hosts {
        let row = Provider::of(h);
        table
            .write_behind(&h.node_uuid(), Some(row))
            .map_err(|f| format!("registering compute node {}: {}", h.name, f.message))?;
    }
    if sole {
        for stale in table.filter(|p| !hosts.iter().any(|h| h.name == p.host.name)) {
            table
                .write_behind(&stale.host.node_uuid(), None)
                .map_err(|f| f.message)?;
        }
    }
    Ok(())
}

/// The registered hosts that are not being retired, in hypervisor-id
/// order (then by name).
pub fn hosts_of(table: &Table<Provider>) -> Vec<HostConfig> {
    let mut hosts: Vec<HostConfig> = table
        .filter(|p| !p.retiring)
        .iter()
        .map(|p| p.host.clone())
        .collect();
    hosts.sort_by(|a, b| a.index.cmp(&b.index).then_with(|| a.name.cmp(&b.name)));
    hosts
}

/// The row key of host `name`'s compute node (its stable uuid).
pub fn node_key(name: &str) -> String {
    stable_uuid(&format!("node:{name}"))
}
