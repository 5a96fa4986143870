//! Networking (a Neutron v2 subset): networks, subnets and ports, with
//! fixed-IP allocation from a subnet's allocation pools and MAC generation,
//! and security groups (`secgroups`). Compute asks this module for ports
//! when it builds a server and frees them when the server goes. This module
//! owns networks, subnets, ports and security groups; `l3` owns routers
//! and floating IPs.

pub mod api;
pub mod l3;
mod port_alloc;
pub use port_alloc::NewPort;
pub mod secgroups;

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
    /// Ids of the security groups on the port.
    #[serde(default)]
    pub security_groups: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The network service.
pub struct Networks {
    pub networks: Table<Network>,
    pub subnets: Table<Subnet>,
    pub ports: Table<Port>,
    /// Security groups, each with its rules.
    pub security_groups: secgroups::store::SecurityGroups,
    /// Routers (`l3`).
    pub routers: Table<l3::Router>,
    /// Floating IPs (`l3`), indexed by the port each points at.
    pub floatingips: Table<l3::FloatingIp>,
    /// Addresses in use per subnet: rebuilt from ports at start-up, kept
    /// by this process's allocations and by the other processes' port
    /// changes (the ports table's watcher). A hint for choosing an address:
    /// the database's unique `ip_allocations` key decides.
    used: Arc<Mutex<UsedIps>>,
    /// Serialises the API's topology changes (new or re-addressed ports
    /// against subnet and network deletion) so a subnet cannot vanish under
    /// an allocation the API is making.
    topology: tokio::sync::Mutex<()>,
    /// Last address handed out per allocation pool.
    cursors: Mutex<HashMap<String, u128>>,
}

/// Addresses in use, per subnet.
type UsedIps = HashMap<String, HashSet<IpAddr>>;

/// Marks `ips` used (`add`) or free in `used`.
fn mark(used: &mut UsedIps, ips: &[PortIp], add: bool) {
    for ip in ips {
        let Ok(a) = ip.ip_address.parse::<IpAddr>() else {
            continue;
        };
        if add {
            used.entry(ip.subnet_id.clone()).or_default().insert(a);
        } else if let Some(set) = used.get_mut(&ip.subnet_id) {
            set.remove(&a);
        }
    }
}

/// How many addresses a port allocation tries before giving up when each
/// one it picks turns out to be another process's.
const IP_ATTEMPTS: usize = 64;

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
    let mask = if net.is_ipv4() {
        mask & 0xffff_ffff
    } else {
        mask
    };
    (to_u128(net) & mask) == (to_u128(ip) & mask)
}

/// Default allocation pool: from network+2 (after the gateway at +1) to the
/// last address before broadcast (v4), capped for v6.
pub fn default_pool(cidr: &str) -> Option<AllocationPool> {
    let (net, len) = parse_cidr(cidr)?;
    let bits: u32 = if net.is_ipv4() { 32 } else { 128 };
    let size: u128 = if bits - len as u32 >= 127 {
        u128::MAX
    } else {
        1u128 << (bits - len as u32)
    };
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

/// Whether the guests of `subnet` configure their own addresses from the
/// router advertisements (SLAAC, also with stateless DHCPv6), as
/// Neutron's `is_auto_address_subnet` decides: by the address mode, or by
/// the RA mode when no address mode is set.
pub fn is_auto_address(subnet: &Subnet) -> bool {
    const AUTO: [&str; 2] = ["slaac", "dhcpv6-stateless"];
    subnet.ip_version == 6
        && match &subnet.ipv6_address_mode {
            Some(m) => AUTO.contains(&m.as_str()),
            None => subnet
                .ipv6_ra_mode
                .as_deref()
                .is_some_and(|m| AUTO.contains(&m)),
        }
}

/// Neutron's refusal of address `ip` asked for on auto-address subnet
/// `subnet_id` (the text after "Invalid input for operation: ").
pub fn auto_address_refused(ip: IpAddr, subnet_id: &str) -> String {
    format!(
        "IPv6 address {ip} can not be directly assigned to a port on subnet {subnet_id} since \
         the subnet is configured for automatic addresses."
    )
}

/// The address a guest with `mac` gives itself by SLAAC on the IPv6
/// prefix `cidr` (RFC 4291's modified EUI-64: the MAC split by `ff:fe`,
/// the universal/local bit flipped); `None` for a prefix longer than 64
/// bits or a MAC that does not parse.
pub fn eui64(cidr: &str, mac: &str) -> Option<IpAddr> {
    let (IpAddr::V6(net), len) = parse_cidr(cidr)? else {
        return None;
    };
    if len > 64 {
        return None;
    }
    let b: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let [m0, m1, m2, m3, m4, m5] = b[..] else {
        return None;
    };
    let iid = u64::from_be_bytes([m0 ^ 0x02, m1, m2, 0xff, 0xfe, m3, m4, m5]);
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    let prefix = u128::from(net) & mask;
    Some(IpAddr::V6((prefix | u128::from(iid)).into()))
}

/// A random MAC in OpenStack's `fa:16:3e` prefix.
pub fn random_mac() -> String {
    let b: [u8; 3] = rand::random();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The ports table's index by `device_id` (a server's ports).
pub const PORTS_BY_DEVICE: &str = "device_id";
/// The ports table's index by `network_id`.
pub const PORTS_BY_NETWORK: &str = "network_id";

impl Networks {
    pub fn load(store: &Arc<Store>) -> Result<Self, String> {
        let ports: Table<Port> = Table::load("port", store)?
            .indexed(PORTS_BY_DEVICE, |p: &Port| Some(p.device_id.clone()))
            .indexed(PORTS_BY_NETWORK, |p: &Port| Some(p.network_id.clone()));
        let mut used = UsedIps::new();
        for p in ports.all() {
            mark(&mut used, &p.fixed_ips, true);
        }
        let used = Arc::new(Mutex::new(used));
        let follow = used.clone();
        ports.watch(Box::new(
            move |before: Option<&Port>, after: Option<&Port>| {
                let mut used = follow.lock();
                if let Some(b) = before {
                    mark(&mut used, &b.fixed_ips, false);
                }
                if let Some(a) = after {
                    mark(&mut used, &a.fixed_ips, true);
                }
            },
        ));
        let (routers, floatingips) = Self::load_l3(store)?;
        Ok(Networks {
            routers,
            floatingips,
            networks: Table::load("network", store)?,
            subnets: Table::load("subnet", store)?,
            ports,
            security_groups: secgroups::store::SecurityGroups::load(store)?,
            used,
            cursors: Mutex::new(HashMap::new()),
            topology: tokio::sync::Mutex::new(()),
        })
    }

    /// A network the project may use (own or shared; admins see all).
    pub fn visible_network(
        &self,
        id: &str,
        project_id: &str,
        is_admin: bool,
    ) -> Option<Arc<Network>> {
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
        v.sort_by(|a, b| {
            a.ip_version
                .cmp(&b.ip_version)
                .then(a.created_at.cmp(&b.created_at))
        });
        v
    }

    /// Reserves one address in a subnet: `wanted` if free and in range, or the
    /// first free address of the pools.
    pub fn reserve_ip(&self, subnet: &Subnet, wanted: Option<IpAddr>) -> Result<IpAddr, Fault> {
        self.reserve_ip_as(subnet, wanted, false)
    }

    /// [`Networks::reserve_ip`] for a port whose MAC is `mac`: on an
    /// auto-address subnet ([`is_auto_address`]) with no address wanted,
    /// the port's address is the one its guest configures itself, the
    /// subnet's prefix and the MAC's EUI-64 ([`eui64`]), as Neutron's IPAM
    /// gives it.
    pub fn reserve_ip_for(
        &self,
        subnet: &Subnet,
        wanted: Option<IpAddr>,
        mac: Option<&str>,
    ) -> Result<IpAddr, Fault> {
        let auto = wanted
            .is_none()
            .then(|| mac.filter(|_| is_auto_address(subnet)))
            .flatten()
            .and_then(|m| eui64(&subnet.cidr, m));
        self.reserve_ip_as(subnet, auto.or(wanted), false)
    }

    /// [`Networks::reserve_ip`]; `gateway_ok` lets a wanted address be the
    /// subnet's gateway (a router interface's).
    fn reserve_ip_as(
        &self,
        subnet: &Subnet,
        wanted: Option<IpAddr>,
        gateway_ok: bool,
    ) -> Result<IpAddr, Fault> {
        let mut used = self.used.lock();
        let set = used.entry(subnet.id.clone()).or_default();
        if let Some(ip) = wanted {
            if !cidr_contains(&subnet.cidr, ip) {
                return Err(Fault::bad_request(format!(
                    "IP address {ip} is not a valid IP for the specified subnet."
                )));
            }
            let is_gateway = subnet.gateway_ip.as_deref() == Some(&ip.to_string());
            if set.contains(&ip) || (is_gateway && !gateway_ok) {
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
            let (Ok(start), Ok(end)) = (pool.start.parse::<IpAddr>(), pool.end.parse::<IpAddr>())
            else {
                continue;
            };
            let (s, e) = (to_u128(start), to_u128(end));
            // Start after the last address handed out in this pool (a
            // cursor, so allocation does not rescan the used set), then wrap.
            let key = format!("{}/{s}", subnet.id);
            let mut cursors = self.cursors.lock();
            let mut cand = match cursors.get(&key) {
                Some(c) if *c >= s && *c < e => *c + 1,
                _ => s,
            };
            let mut tried: u128 = 0;
            let span = e - s + 1;
            while tried < span {
                let ip = from_u128(cand, v6);
                if !set.contains(&ip) {
                    set.insert(ip);
                    cursors.insert(key, cand);
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
        mark(&mut self.used.lock(), ips, false);
    }

    /// After a port write was refused because another process's port holds
    /// one of its addresses: that one stays marked used, the others go
    /// back. Whether the refusal was that.
    fn lost_ip(&self, f: &Fault, ips: &[PortIp]) -> bool {
        let Some((subnet, ip)) = crate::store::taken_ip(f) else {
            return false;
        };
        let others: Vec<PortIp> = ips
            .iter()
            .filter(|p| !(p.subnet_id == subnet && p.ip_address == ip))
            .cloned()
            .collect();
        self.release_ips(&others);
        if let Ok(a) = ip.parse::<IpAddr>() {
            self.used.lock().entry(subnet).or_default().insert(a);
        }
        true
    }
}

/// Neutron's default allocation pools for a subnet: every host address of
/// the CIDR except the gateway (v4 excludes the network and broadcast
/// addresses; v6 is capped like [`default_pool`]). With the gateway at the
/// first host this is exactly [`default_pool`].
pub fn pools_around_gateway(cidr: &str, gateway: Option<IpAddr>) -> Vec<AllocationPool> {
    let Some((net, _)) = parse_cidr(cidr) else {
        return vec![];
    };
    let Some(dp) = default_pool(cidr) else {
        return vec![];
    };
    let v6 = net.is_ipv6();
    let Ok(end) = dp.end.parse::<IpAddr>() else {
        return vec![];
    };
    let (first, last) = (to_u128(net) + 1, to_u128(end));
    let mut out = Vec::new();
    let mut push = |a: u128, b: u128| {
        if a <= b {
            out.push(AllocationPool {
                start: from_u128(a, v6).to_string(),
                end: from_u128(b, v6).to_string(),
            });
        }
    };
    match gateway.map(to_u128) {
        Some(g) if g >= first && g <= last => {
            if g > first {
                push(first, g - 1);
            }
            if g < last {
                push(g + 1, last);
            }
        }
        _ => push(first, last),
    }
    out
}

/// True when the two CIDRs share any address.
pub fn cidrs_overlap(a: &str, b: &str) -> bool {
    match (parse_cidr(a), parse_cidr(b)) {
        (Some((na, la)), Some((nb, lb))) if na.is_ipv4() == nb.is_ipv4() => {
            // The shorter prefix contains the other's network address.
            if la <= lb {
                cidr_contains(a, nb)
            } else {
                cidr_contains(b, na)
            }
        }
        _ => false,
    }
}

/// The network address of a CIDR (`10.0.0.5/24` -> `10.0.0.0`).
pub fn cidr_network(cidr: &str) -> Option<IpAddr> {
    let (ip, len) = parse_cidr(cidr)?;
    let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let shift = bits - len as u32;
    let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
    Some(from_u128(to_u128(ip) & mask, ip.is_ipv6()))
}

/// `ip + n` within the same family (wrapping at the top, which callers
/// avoid).
pub fn ip_offset(ip: IpAddr, n: u128) -> IpAddr {
    from_u128(to_u128(ip).wrapping_add(n), ip.is_ipv6())
}

/// Numeric order of two addresses of the same family.
pub fn ip_cmp(a: IpAddr, b: IpAddr) -> std::cmp::Ordering {
    to_u128(a).cmp(&to_u128(b))
}

/// Addresses a new or updated port asks for: one entry per wanted address,
/// each a subnet and optionally the exact address.
pub type IpWants = Vec<(Arc<Subnet>, Option<IpAddr>)>;

impl Networks {
    /// Taken by the API around changes that allocate addresses or remove
    /// subnets and networks.
    pub async fn topology_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.topology.lock().await
    }

    /// Reserves every wanted address, all or nothing.
    pub fn reserve_ips(
        &self,
        wants: &[(Arc<Subnet>, Option<IpAddr>)],
    ) -> Result<Vec<PortIp>, Fault> {
        self.reserve_ips_for(wants, None)
    }

    /// Adds to a port's `wants` every auto-address (SLAAC) subnet of
    /// `network_id` they do not name: Neutron's IPAM gives a port an
    /// address on each.
    pub fn with_auto_addresses(
        &self,
        network_id: &str,
        wants: &mut Vec<(Arc<Subnet>, Option<IpAddr>)>,
    ) {
        for sn in self.subnets_of(network_id) {
            if is_auto_address(&sn) && !wants.iter().any(|(w, _)| w.id == sn.id) {
                wants.push((sn, None));
            }
        }
    }

    /// [`Networks::reserve_ips`] for a port whose MAC is `mac`
    /// ([`Networks::reserve_ip_for`]).
    pub fn reserve_ips_for(
        &self,
        wants: &[(Arc<Subnet>, Option<IpAddr>)],
        mac: Option<&str>,
    ) -> Result<Vec<PortIp>, Fault> {
        let mut got: Vec<PortIp> = Vec::new();
        for (subnet, want) in wants {
            match self.reserve_ip_for(subnet, *want, mac) {
                Ok(ip) => got.push(PortIp {
                    subnet_id: subnet.id.clone(),
                    ip_address: ip.to_string(),
                }),
                Err(e) => {
                    self.release_ips(&got);
                    return Err(e);
                }
            }
        }
        Ok(got)
    }

    /// Stores a new port whose addresses were reserved with
    /// [`Networks::reserve_ips`]; frees them again if the write fails.
    pub async fn insert_port(&self, port: Port) -> Result<Arc<Port>, Fault> {
        let ips = port.fixed_ips.clone();
        let id = port.id.clone();
        let dup = Fault::conflict(format!("Port {id} already exists."));
        match self.ports.insert_new(&id, port, dup).await {
            Ok(p) => Ok(p),
            Err(e) => {
                if !self.lost_ip(&e, &ips) {
                    self.release_ips(&ips);
                }
                Err(e)
            }
        }
    }

    /// Changes a port. `reserved` are addresses newly reserved for it (freed
    /// again if the change is refused); addresses the port no longer holds
    /// afterwards are returned to the pool.
    pub async fn update_port(
        &self,
        id: &str,
        reserved: &[PortIp],
        change: impl FnOnce(&mut Port) -> Result<(), Fault>,
    ) -> Result<Arc<Port>, Fault> {
        let res = self
            .ports
            .update(
                id,
                || Fault::not_found(format!("Port {id} could not be found.")),
                |p| {
                    let before = p.fixed_ips.clone();
                    change(p)?;
                    Ok(before)
                },
            )
            .await;
        match res {
            Ok((p, before)) => {
                let dropped: Vec<PortIp> = before
                    .into_iter()
                    .filter(|ip| !p.fixed_ips.contains(ip))
                    .collect();
                self.release_ips(&dropped);
                Ok(p)
            }
            Err(e) => {
                if !self.lost_ip(&e, reserved) {
                    self.release_ips(reserved);
                }
                Err(e)
            }
        }
    }

    /// Ports attached to a network.
    pub fn ports_on(&self, network_id: &str) -> Vec<Arc<Port>> {
        self.ports.find(PORTS_BY_NETWORK, network_id)
    }

    /// Ports holding an address from a subnet.
    pub fn ports_in_subnet(&self, subnet_id: &str) -> Vec<Arc<Port>> {
        self.ports
            .filter(|p| p.fixed_ips.iter().any(|ip| ip.subnet_id == subnet_id))
    }

    /// Removes a subnet and forgets its address bookkeeping (the caller has
    /// checked that no port holds an address from it).
    pub async fn remove_subnet(&self, subnet_id: &str) -> Result<(), Fault> {
        self.subnets.remove(subnet_id).await?;
        self.used.lock().remove(subnet_id);
        Ok(())
    }

    /// Removes a network with its subnets (the caller has checked that no
    /// port remains on it).
    pub async fn remove_network(&self, network_id: &str) -> Result<(), Fault> {
        for sn in self.subnets_of(network_id) {
            self.remove_subnet(&sn.id).await?;
        }
        self.networks.remove(network_id).await?;
        Ok(())
    }

    /// Number of addresses reserved in a subnet.
    pub fn used_count(&self, subnet_id: &str) -> usize {
        self.used.lock().get(subnet_id).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaac_addresses_are_the_prefix_and_the_macs_eui64() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        // The universal/local bit of the first octet flipped, ff:fe in the
        // middle (Neutron's and the guest kernel's address alike).
        assert_eq!(
            eui64("fd00:0:0:1::/64", "fa:16:3e:38:83:71"),
            ip("fd00:0:0:1:f816:3eff:fe38:8371")
        );
        assert_eq!(
            eui64("2001:db8::/48", "00:00:5e:00:53:01"),
            ip("2001:db8::200:5eff:fe00:5301")
        );
        // Host bits given in the prefix are not kept.
        assert_eq!(
            eui64("2001:db8:0:7::9/64", "00:00:5e:00:53:01"),
            ip("2001:db8:0:7:200:5eff:fe00:5301")
        );
        assert_eq!(eui64("2001:db8::/80", "00:00:5e:00:53:01"), None);
        assert_eq!(eui64("10.0.0.0/24", "00:00:5e:00:53:01"), None);
        assert_eq!(eui64("fd00::/64", "00:00:5e:00:53"), None);
        assert_eq!(eui64("fd00::/64", "zz:00:5e:00:53:01"), None);
    }

    #[test]
    fn cidr_math() {
        assert!(cidr_contains("10.0.0.0/24", "10.0.0.7".parse().unwrap()));
        assert!(!cidr_contains("10.0.0.0/24", "10.0.1.7".parse().unwrap()));
        assert!(cidr_contains("fd00::/64", "fd00::5".parse().unwrap()));
        let p = default_pool("10.0.0.0/24").unwrap();
        assert_eq!(
            (p.start.as_str(), p.end.as_str()),
            ("10.0.0.2", "10.0.0.254")
        );
        assert!(parse_cidr("10.0.0.0/33").is_none());
    }

    #[test]
    fn pools_and_overlap() {
        let p = pools_around_gateway("10.0.0.0/24", "10.0.0.1".parse().ok());
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].start.as_str(), p[0].end.as_str()),
            ("10.0.0.2", "10.0.0.254")
        );
        let p = pools_around_gateway("10.0.0.0/24", "10.0.0.254".parse().ok());
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].start.as_str(), p[0].end.as_str()),
            ("10.0.0.1", "10.0.0.253")
        );
        let p = pools_around_gateway("10.0.0.0/24", "10.0.0.100".parse().ok());
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].start, "10.0.0.101");
        let p = pools_around_gateway("10.0.0.0/24", None);
        assert_eq!(
            (p[0].start.as_str(), p[0].end.as_str()),
            ("10.0.0.1", "10.0.0.254")
        );
        assert!(cidrs_overlap("10.0.0.0/16", "10.0.5.0/24"));
        assert!(cidrs_overlap("10.0.5.0/24", "10.0.0.0/16"));
        assert!(!cidrs_overlap("10.1.0.0/16", "10.0.5.0/24"));
        assert!(!cidrs_overlap("10.0.0.0/8", "fd00::/64"));
        assert_eq!(cidr_network("10.0.0.5/24"), "10.0.0.0".parse().ok());
        assert_eq!(
            ip_offset("10.0.0.0".parse().unwrap(), 1).to_string(),
            "10.0.0.1"
        );
    }
}
