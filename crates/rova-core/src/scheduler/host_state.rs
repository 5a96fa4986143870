//! What the scheduler knows about a compute host and what an instance asks
//! of it: [`Resources`], [`HostState`] and Placement's inventory check
//! (allocation ratios, reserved memory, `max_unit`).

use serde_json::Value;
use std::collections::BTreeSet;

/// What one instance asks of a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

impl Resources {
    /// The disk an instance takes on its host: root (unless volume-backed),
    /// ephemeral, and swap (MB, rounded up to GB) as Nova's
    /// `resources_from_flavor` does.
    pub fn from_flavor(
        vcpus: u32,
        ram: u64,
        root_gb: u64,
        ephemeral_gb: u64,
        swap_mb: u64,
        volume_backed: bool,
    ) -> Self {
        let root = if volume_backed { 0 } else { root_gb };
        Resources {
            vcpus,
            memory_mb: ram,
            disk_gb: root + ephemeral_gb + swap_mb.div_ceil(1024),
        }
    }
}

/// The state of one compute host (service + node) as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// Service host name (also the node's hypervisor_hostname).
    pub host: String,
    pub availability_zone: String,
    pub host_ip: String,
    pub hypervisor_type: String,
    /// The service heartbeat is current and the service is not forced down.
    pub service_up: bool,
    /// The service is disabled (no new instances).
    pub service_disabled: bool,
    pub vcpus: u32,
    pub vcpus_used: u64,
    pub cpu_allocation_ratio: f64,
    /// Physical memory, including `reserved_memory_mb`.
    pub memory_mb: u64,
    /// Used by instances (the reserved memory is added on top by
    /// [`HostState::memory_mb_used`]).
    pub instance_memory_mb: u64,
    pub reserved_memory_mb: u64,
    pub ram_allocation_ratio: f64,
    pub local_gb: u64,
    pub local_gb_used: u64,
    pub disk_allocation_ratio: f64,
    /// Uuids of the instances holding resources here (shared: the fleet
    /// keeps one set per host up to date and hands out cheap copies).
    pub instances: std::sync::Arc<BTreeSet<String>>,
}

impl HostState {
    /// `memory_mb_used` as Nova reports it: reserved plus instances.
    pub fn memory_mb_used(&self) -> u64 {
        self.reserved_memory_mb + self.instance_memory_mb
    }
    /// `free_ram_mb` (physical; negative when overcommitted).
    pub fn free_ram_mb(&self) -> i64 {
        self.memory_mb as i64 - self.memory_mb_used() as i64
    }
    /// `free_disk_mb` (physical; negative when overcommitted).
    pub fn free_disk_mb(&self) -> i64 {
        (self.local_gb as i64 - self.local_gb_used as i64) * 1024
    }
    /// Placement's check for one inventory: `used + want <= (total -
    /// reserved) * ratio` and `want <= max_unit` (the physical total).
    fn inventory_fits(total: u64, reserved: u64, ratio: f64, used: u64, want: u64) -> bool {
        if want == 0 {
            return true;
        }
        let capacity = (total.saturating_sub(reserved) as f64 * ratio).floor() as u64;
        want <= total && used + want <= capacity
    }
    /// Whether the host's inventory can take `r` on top of what it holds.
    pub fn fits(&self, r: &Resources) -> bool {
        Self::inventory_fits(
            self.vcpus as u64,
            0,
            self.cpu_allocation_ratio,
            self.vcpus_used,
            r.vcpus as u64,
        ) && Self::inventory_fits(
            self.memory_mb,
            self.reserved_memory_mb,
            self.ram_allocation_ratio,
            self.instance_memory_mb,
            r.memory_mb,
        ) && Self::inventory_fits(
            self.local_gb,
            0,
            self.disk_allocation_ratio,
            self.local_gb_used,
            r.disk_gb,
        )
    }
    /// Adds an instance's usage (a claim).
    pub fn consume(&mut self, instance_uuid: &str, r: &Resources) {
        self.vcpus_used += r.vcpus as u64;
        self.instance_memory_mb += r.memory_mb;
        self.local_gb_used += r.disk_gb;
        std::sync::Arc::make_mut(&mut self.instances).insert(instance_uuid.to_string());
    }
    /// A host attribute for JsonFilter's `$name` lookups.
    pub(super) fn attribute(&self, name: &str) -> Option<Value> {
        Some(match name {
            "host" | "nodename" | "hypervisor_hostname" => Value::from(self.host.clone()),
            "host_ip" => Value::from(self.host_ip.clone()),
            "hypervisor_type" => Value::from(self.hypervisor_type.clone()),
            "free_ram_mb" => Value::from(self.free_ram_mb()),
            "free_disk_mb" => Value::from(self.free_disk_mb()),
            "total_usable_ram_mb" => Value::from(self.memory_mb),
            "total_usable_disk_gb" => Value::from(self.local_gb),
            "disk_mb_used" => Value::from(self.local_gb_used * 1024),
            "vcpus_total" => Value::from(self.vcpus),
            "vcpus_used" => Value::from(self.vcpus_used),
            "num_instances" => Value::from(self.instances.len()),
            "ram_allocation_ratio" => Value::from(self.ram_allocation_ratio),
            "cpu_allocation_ratio" => Value::from(self.cpu_allocation_ratio),
            "disk_allocation_ratio" => Value::from(self.disk_allocation_ratio),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::*;

    #[test]
    fn resources_from_flavor() {
        assert_eq!(
            Resources::from_flavor(2, 4096, 40, 5, 1536, false).disk_gb,
            47
        );
        assert_eq!(Resources::from_flavor(2, 4096, 40, 0, 0, true).disk_gb, 0);
    }

    #[test]
    fn capacity_with_ratios_reserved_and_max_unit() {
        let h = host("h1");
        // 16 vcpus x 4.0 = 64, but a single instance may not exceed 16.
        assert!(h.fits(&Resources {
            vcpus: 16,
            memory_mb: 1,
            disk_gb: 1
        }));
        assert!(!h.fits(&Resources {
            vcpus: 17,
            memory_mb: 1,
            disk_gb: 1
        }));
        let mut busy = host("h1");
        busy.vcpus_used = 63;
        assert!(busy.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 0
        }));
        busy.vcpus_used = 64;
        assert!(!busy.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 0
        }));
        // RAM: (65536 - 512) * 1.5 = 97536.
        let mut m = host("h1");
        m.instance_memory_mb = 97536 - 1024;
        assert!(m.fits(&Resources {
            vcpus: 1,
            memory_mb: 1024,
            disk_gb: 0
        }));
        assert!(!m.fits(&Resources {
            vcpus: 1,
            memory_mb: 1025,
            disk_gb: 0
        }));
        // Disk ratio 1.0: 1000 GB.
        let mut d = host("h1");
        d.local_gb_used = 990;
        assert!(d.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 10
        }));
        assert!(!d.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 11
        }));
        assert_eq!(host("h1").memory_mb_used(), 512);
        assert_eq!(host("h1").free_ram_mb(), 65024);
    }
}
