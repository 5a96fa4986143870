//! Networking (a Neutron v2 subset): networks, subnets and ports, with
//! fixed-IP allocation from a subnet's allocation pools and MAC generation.
//! Compute asks this module for ports when it builds a server and frees
//! them when the server goes. This module owns networks, subnets and ports.

pub mod api;

use crate::store::{Store, Table};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub shared: bool,
    pub admin_state_up: bool,
    pub status: String,
    pub mtu: u32,
    pub router_external: bool,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllocationPool {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub cidr: String,
    pub ip_version: u8,
    pub gateway_ip: Option<String>,
    pub allocation_pools: Vec<AllocationPool>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<String>,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PortIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<PortIp>,
    pub device_id: String,
    pub device_owner: String,
    pub status: String,
    pub admin_state_up: bool,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The network service.
pub struct Networks {
    pub networks: Table<Network>,
    pub subnets: Table<Subnet>,
    pub ports: Table<Port>,
    /// Addresses in use per subnet (rebuilt from ports at start-up).
    used: Mutex<HashMap<String, HashSet<IpAddr>>>,
}

/// Parses `a.b.c.d/n` or `x::/n`.
pub fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

/// True when `ip` lies inside `cidr`.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, len)) = parse_cidr(cidr) else {
        return false;
    };
    if net.is_ipv4() != ip.is_ipv4() {
        return false;
    }
    let bits = if net.is_ipv4() { 32 } else { 128 };
    let shift = bits - len as u32;
    let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
    let mask = if net.is_ipv4() { mask & 0xffff_ffff } else { mask };
    (to_u128(net) & mask) == (to_u128(ip) & mask)
}

/// Default allocation pool: from network+2 (after the gateway at +1) to the
/// last address before broadcast (v4), capped for v6.
pub fn default_pool(cidr: &str) -> Option<AllocationPool> {
    let (net, len) = parse_cidr(cidr)?;
    let bits: u32 = if net.is_ipv4() { 32 } else { 128 };
    let size: u128 = if bits - len as u32 >= 127 { u128::MAX } else { 1u128 << (bits - len as u32) };
    if size < 4 {
        return None;
    }
    let base = to_u128(net);
    let last = if net.is_ipv6() {
        base + size.min(1 << 24) - 1
    } else {
        base + size - 2
    };
    Some(AllocationPool {
        start: from_u128(base + 2, net.is_ipv6()).to_string(),
        end: from_u128(last, net.is_ipv6()).to_string(),
    })
}

/// A random MAC in OpenStack's `fa:16:3e` prefix.
pub fn random_mac() -> String {
    let b: [u8; 3] = rand::random();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

impl Networks {
    pub fn load(store: &Arc<Store>) -> Result<Self, String> {
        let ports: Table<Port> = Table::load("port", store)?;
        let mut used: HashMap<String, HashSet<IpAddr>> = HashMap::new();
        for p in ports.all() {
            for ip in &p.fixed_ips {
                if let Ok(a) = ip.ip_address.parse() {
                    used.entry(ip.subnet_id.clone()).or_default().insert(a);
                }
            }
        }
        Ok(Networks {
            networks: Table::load("network", store)?,
            subnets: Table::load("subnet", store)?,
            ports,
            used: Mutex::new(used),
        })
    }

    /// A network the project may use (own or shared; admins see all).
    pub fn visible_network(&self, id: &str, project_id: &str, is_admin: bool) -> Option<Arc<Network>> {
        self.networks
            .get(id)
            .filter(|n| is_admin || n.shared || n.project_id == project_id)
    }

    /// Networks available to a project for a server (own plus shared).
    pub fn networks_for(&self, project_id: &str) -> Vec<Arc<Network>> {
        let mut v = self
            .networks
            .filter(|n| (n.shared || n.project_id == project_id) && !n.router_external);
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    pub fn subnets_of(&self, network_id: &str) -> Vec<Arc<Subnet>> {
        let mut v = self.subnets.filter(|s| s.network_id == network_id);
        v.sort_by(|a, b| a.ip_version.cmp(&b.ip_version).then(a.created_at.cmp(&b.created_at)));
        v
    }

    /// Reserves one address in a subnet: `wanted` if free and in range, or the
    /// first free address of the pools.
    pub fn reserve_ip(&self, subnet: &Subnet, wanted: Option<IpAddr>) -> Result<IpAddr, Fault> {
        let mut used = self.used.lock();
        let set = used.entry(subnet.id.clone()).or_default();
        if let Some(ip) = wanted {
            if !cidr_contains(&subnet.cidr, ip) {
                return Err(Fault::bad_request(format!(
                    "IP address {ip} is not a valid IP for the specified subnet."
                )));
            }
            if set.contains(&ip) || subnet.gateway_ip.as_deref() == Some(&ip.to_string()) {
                return Err(Fault::conflict(format!(
                    "IP address {ip} already allocated in subnet {}",
                    subnet.id
                )));
            }
            set.insert(ip);
            return Ok(ip);
        }
        let v6 = subnet.ip_version == 6;
        for pool in &subnet.allocation_pools {
            let (Ok(start), Ok(end)) = (pool.start.parse::<IpAddr>(), pool.end.parse::<IpAddr>()) else {
                continue;
            };
            let (s, e) = (to_u128(start), to_u128(end));
            // Start after the highest used address in range for speed, then wrap.
            let mut cand = s;
            let hi = set
                .iter()
                .map(|a| to_u128(*a))
                .filter(|a| *a >= s && *a <= e)
                .max();
            if let Some(h) = hi {
                if h < e {
                    cand = h + 1;
                }
            }
            let mut tried: u128 = 0;
            let span = e - s + 1;
            while tried < span {
                let ip = from_u128(cand, v6);
                if !set.contains(&ip) {
                    set.insert(ip);
                    return Ok(ip);
                }
                cand = if cand >= e { s } else { cand + 1 };
                tried += 1;
            }
        }
        Err(Fault::conflict(format!(
            "No more IP addresses available on network {}.",
            subnet.network_id
        )))
    }

    /// Returns addresses to the free pool.
    pub fn release_ips(&self, ips: &[PortIp]) {
        let mut used = self.used.lock();
        for ip in ips {
            if let (Some(set), Ok(a)) = (used.get_mut(&ip.subnet_id), ip.ip_address.parse::<IpAddr>()) {
                set.remove(&a);
            }
        }
    }

    /// Creates a port on a network with one address from each of its
    /// subnets (or exactly `fixed_ip` when given).
    pub async fn create_port(
        &self,
        project_id: &str,
        network_id: &str,
        fixed_ip: Option<IpAddr>,
        device_id: &str,
        device_owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Port>, Fault> {
        let mut fixed_ips = Vec::new();
        let subnets = self.subnets_of(network_id);
        let result = (|| {
            if let Some(want) = fixed_ip {
                let sn = subnets
                    .iter()
                    .find(|s| cidr_contains(&s.cidr, want))
                    .ok_or_else(|| {
                        Fault::bad_request(format!("Fixed IP {want} is not a valid ip address for network {network_id}."))
                    })?;
                let ip = self.reserve_ip(sn, Some(want))?;
                fixed_ips.push(PortIp { subnet_id: sn.id.clone(), ip_address: ip.to_string() });
            } else {
                for sn in &subnets {
                    let ip = self.reserve_ip(sn, None)?;
                    fixed_ips.push(PortIp { subnet_id: sn.id.clone(), ip_address: ip.to_string() });
                }
            }
            Ok::<(), Fault>(())
        })();
        if let Err(e) = result {
            self.release_ips(&fixed_ips);
            return Err(e);
        }
        let port = Port {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            network_id: network_id.to_string(),
            project_id: project_id.to_string(),
            mac_address: random_mac(),
            fixed_ips,
            device_id: device_id.to_string(),
            device_owner: device_owner.to_string(),
            status: if device_id.is_empty() { "DOWN".into() } else { "ACTIVE".into() },
            admin_state_up: true,
            description: String::new(),
            created_at: now,
            updated_at: now,
        };
        let id = port.id.clone();
        match self.ports.put(&id, port).await {
            Ok(p) => Ok(p),
            Err(e) => Err(e),
        }
    }

    /// Binds an existing port to a device; 409 if it is already in use.
    pub async fn bind_port(
        &self,
        port_id: &str,
        device_id: &str,
        device_owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Port>, Fault> {
        let (p, _) = self
            .ports
            .update(
                port_id,
                || Fault::bad_request(format!("Port id {port_id} could not be found.")),
                |p| {
                    if !p.device_id.is_empty() && p.device_id != device_id {
                        return Err(Fault::conflict(format!(
                            "Port {port_id} is still in use."
                        )));
                    }
                    p.device_id = device_id.to_string();
                    p.device_owner = device_owner.to_string();
                    p.status = "ACTIVE".into();
                    p.updated_at = now;
                    Ok(())
                },
            )
            .await?;
        Ok(p)
    }

    /// Detaches a port from its device (a port the user brought is kept).
    pub async fn unbind_port(&self, port_id: &str, now: DateTime<Utc>) -> Result<(), Fault> {
        match self
            .ports
            .update(port_id, || Fault::not_found("port"), |p| {
                p.device_id.clear();
                p.device_owner.clear();
                p.status = "DOWN".into();
                p.updated_at = now;
                Ok(())
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes a port and frees its addresses.
    pub async fn delete_port(&self, port_id: &str) -> Result<(), Fault> {
        if let Some(p) = self.ports.remove(port_id).await? {
            self.release_ips(&p.fixed_ips);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        assert!(cidr_contains("10.0.0.0/24", "10.0.0.7".parse().unwrap()));
        assert!(!cidr_contains("10.0.0.0/24", "10.0.1.7".parse().unwrap()));
        assert!(cidr_contains("fd00::/64", "fd00::5".parse().unwrap()));
        let p = default_pool("10.0.0.0/24").unwrap();
        assert_eq!((p.start.as_str(), p.end.as_str()), ("10.0.0.2", "10.0.0.254"));
        assert!(parse_cidr("10.0.0.0/33").is_none());
    }
}
