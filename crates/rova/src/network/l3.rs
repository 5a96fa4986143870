//! The L3 subset's records and the writes that keep them and their ports
//! consistent: routers (with an optional external gateway), the ports a
//! router owns (its gateway port on the external network and one port per
//! interface, holding the subnet's gateway address), and floating IPs,
//! each holding its address through a `network:floatingip` port on the
//! external network, so the database's unique `ip_allocations` key guards
//! a floating address as it guards any fixed IP.
//!
//! This module owns the `routers` and `floatingips` tables. Every write
//! that touches a router or floating IP together with ports is one
//! all-or-nothing group, locking ports, then floating IPs, then routers
//! (the order every caller keeps, after instances when those are in the
//! group). Project quotas (Neutron's `router` and `floatingip` defaults)
//! and "one floating IP per fixed address" are counted by the database in
//! the transaction that writes the row.

use super::{Networks, Port, PortIp, Subnet};
use crate::store::{Group, Guard, Table, TxView};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

pub const OWNER_ROUTER_GW: &str = "network:router_gateway";
pub const OWNER_ROUTER_INTF: &str = "network:router_interface";
pub const OWNER_FLOATINGIP: &str = "network:floatingip";
/// Neutron's default `quota_router`.
pub const ROUTER_QUOTA: i64 = 10;
/// Neutron's default `quota_floatingip`.
pub const FLOATINGIP_QUOTA: i64 = 50;
/// The floating IPs table's index by the associated (fixed) port.
pub const FIPS_BY_PORT: &str = "port_id";

/// A router's external gateway: the external network, SNAT, and the port
/// holding its address there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouterGateway {
    pub network_id: String,
    pub enable_snat: bool,
    pub port_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Router {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub description: String,
    pub admin_state_up: bool,
    pub status: String,
    pub gateway: Option<RouterGateway>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub project_id: String,
    pub floating_network_id: String,
    pub floating_ip_address: String,
    /// The `network:floatingip` port holding the floating address.
    pub floating_port_id: String,
    /// The associated (fixed) port.
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    /// `<external network>/<port>/<fixed address>` while associated: a
    /// key column the database counts so a fixed address has one floating
    /// IP per external network.
    pub fixed_key: Option<String>,
    pub status: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a floating IP points: a port's fixed address behind a router.
#[derive(Debug, Clone, PartialEq)]
pub struct Association {
    pub port_id: String,
    pub fixed_ip: String,
    pub router_id: String,
}

impl FloatingIp {
    /// Points the floating IP at `to` (or nowhere).
    pub fn associate(&mut self, to: Option<&Association>) {
        self.port_id = to.map(|a| a.port_id.clone());
        self.fixed_ip_address = to.map(|a| a.fixed_ip.clone());
        self.router_id = to.map(|a| a.router_id.clone());
        self.fixed_key = to.map(|a| fixed_key(&self.floating_network_id, a));
        self.status = if to.is_some() { "ACTIVE" } else { "DOWN" }.into();
    }
}

/// The key counted for "one floating IP per fixed address and external
/// network".
pub fn fixed_key(network_id: &str, a: &Association) -> String {
    format!("{network_id}/{}/{}", a.port_id, a.fixed_ip)
}

/// The database's check that no other floating IP on the same external
/// network points at `key`.
pub fn one_per_fixed_ip(key: &str, message: String) -> Guard {
    Guard::Count {
        column: "fixed_key",
        value: key.to_string(),
        limit: 1,
        message,
    }
}

/// The message of a refused router or floating IP quota guard.
pub fn over_quota(resource: &str) -> String {
    format!("Quota exceeded for resources: ['{resource}'].")
}

/// A project's quota of `limit` rows, counted by the database.
pub fn quota(project_id: &str, resource: &str, limit: i64) -> Guard {
    Guard::Count {
        column: "project_id",
        value: project_id.to_string(),
        limit,
        message: over_quota(resource),
    }
}

type Step<'a, T> = Box<dyn FnOnce(&mut TxView<'_, T>) -> Result<(), Fault> + Send + 'a>;

/// One all-or-nothing L3 write: port rows written (`None` deletes), the
/// addresses newly reserved for them (given back when the write is
/// refused), and the floating IP and router rows' changes.
#[derive(Default)]
pub struct L3Write<'a> {
    pub ports: Vec<(String, Option<Port>)>,
    pub reserved: Vec<PortIp>,
    pub fips: Option<Step<'a, FloatingIp>>,
    pub routers: Option<Step<'a, Router>>,
}

impl<'a> L3Write<'a> {
    pub fn port(mut self, id: &str, p: Option<Port>) -> Self {
        self.ports.push((id.to_string(), p));
        self
    }
    pub fn reserved(mut self, ips: Vec<PortIp>) -> Self {
        self.reserved.extend(ips);
        self
    }
    pub fn fips(
        mut self,
        f: impl FnOnce(&mut TxView<'_, FloatingIp>) -> Result<(), Fault> + Send + 'a,
    ) -> Self {
        self.fips = Some(Box::new(f));
        self
    }
    pub fn routers(
        mut self,
        f: impl FnOnce(&mut TxView<'_, Router>) -> Result<(), Fault> + Send + 'a,
    ) -> Self {
        self.routers = Some(Box::new(f));
        self
    }
}

/// Changes row `id` of a view (`missing` when absent).
pub fn change_row<T: Clone>(
    v: &mut TxView<'_, T>,
    id: &str,
    missing: impl FnOnce() -> Fault,
    guard: Option<Guard>,
    change: impl FnOnce(&mut T) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let mut row = v.get(id).ok_or_else(missing)?;
    change(&mut row)?;
    v.put_shared(id, Arc::new(row), guard);
    Ok(())
}

impl Networks {
    /// Loads the L3 tables.
    pub(super) fn load_l3(
        store: &Arc<crate::store::Store>,
    ) -> Result<(Table<Router>, Table<FloatingIp>), String> {
        let routers = Table::load("router", store)?;
        let fips = Table::load("floatingip", store)?
            .indexed(FIPS_BY_PORT, |f: &FloatingIp| f.port_id.clone());
        Ok((routers, fips))
    }

    /// Reserves exactly `ip` in `subnet`, the subnet's gateway address
    /// included (a router interface holds it).
    pub fn reserve_exact(&self, subnet: &Subnet, ip: IpAddr) -> Result<PortIp, Fault> {
        self.reserve_ip_as(subnet, Some(ip), true).map(|ip| PortIp {
            subnet_id: subnet.id.clone(),
            ip_address: ip.to_string(),
        })
    }

    /// A port the network service owns (a router's or a floating IP's),
    /// not written.
    pub fn service_port(
        &self,
        network_id: &str,
        project_id: &str,
        fixed_ips: Vec<PortIp>,
        device: (&str, &str),
        now: DateTime<Utc>,
    ) -> Port {
        let mut mac = super::random_mac();
        for _ in 0..16 {
            if !self
                .ports_on(network_id)
                .iter()
                .any(|p| p.mac_address == mac)
            {
                break;
            }
            mac = super::random_mac();
        }
        Port {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            network_id: network_id.to_string(),
            project_id: project_id.to_string(),
            mac_address: mac,
            fixed_ips,
            device_id: device.0.to_string(),
            device_owner: device.1.to_string(),
            status: "ACTIVE".into(),
            admin_state_up: true,
            description: String::new(),
            security_groups: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Makes `w` in one transaction: ports, then floating IPs, then
    /// routers. Addresses the written ports no longer hold go back to the
    /// pool; when the write is refused, the reserved ones do (but one
    /// another process turned out to hold).
    pub async fn commit_l3(&self, w: L3Write<'_>) -> Result<(), Fault> {
        let L3Write {
            ports,
            reserved,
            fips,
            routers,
        } = w;
        let mut freed: Vec<PortIp> = Vec::new();
        for (id, next) in &ports {
            if let Some(old) = self.ports.get(id) {
                freed.extend(
                    old.fixed_ips
                        .iter()
                        .filter(|ip| next.as_ref().is_none_or(|n| !n.fixed_ips.contains(ip)))
                        .cloned(),
                );
            }
        }
        let queued = (|| {
            let mut g = Group::new();
            if !ports.is_empty() {
                g.with(&self.ports, |v| {
                    for (id, p) in ports {
                        v.write(&id, p);
                    }
                    Ok(())
                })?;
            }
            if let Some(step) = fips {
                g.with(&self.floatingips, step)?;
            }
            if let Some(step) = routers {
                g.with(&self.routers, step)?;
            }
            g.queue()
        })();
        let res = match queued {
            Ok(q) => q.outcome().await,
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {
                self.release_ips(&freed);
                Ok(())
            }
            Err(e) => {
                if !self.lost_ip(&e, &reserved) {
                    self.release_ips(&reserved);
                }
                Err(e)
            }
        }
    }

    /// The router (with a gateway on `external_network_id`) that connects
    /// `subnet` to that network: one whose interface holds the subnet's
    /// gateway address if any, else the first found.
    pub fn router_for(&self, subnet: &Subnet, external_network_id: &str) -> Option<String> {
        let mut first: Option<String> = None;
        for p in self.ports_in_subnet(&subnet.id) {
            if p.device_owner != OWNER_ROUTER_INTF {
                continue;
            }
            let Some(r) = self.routers.get(&p.device_id) else {
                continue;
            };
            if r.gateway.as_ref().map(|g| g.network_id.as_str()) != Some(external_network_id) {
                continue;
            }
            let at_gw = p.fixed_ips.iter().any(|ip| {
                ip.subnet_id == subnet.id && subnet.gateway_ip.as_deref() == Some(&ip.ip_address)
            });
            if at_gw {
                return Some(r.id.clone());
            }
            first.get_or_insert_with(|| r.id.clone());
        }
        first
    }

    /// A router's interface ports.
    pub fn router_interfaces(&self, router_id: &str) -> Vec<Arc<Port>> {
        self.ports
            .find(super::PORTS_BY_DEVICE, router_id)
            .into_iter()
            .filter(|p| p.device_owner == OWNER_ROUTER_INTF)
            .collect()
    }

    /// Floating IPs associated with port `port_id`.
    pub fn fips_of_port(&self, port_id: &str) -> Vec<Arc<FloatingIp>> {
        self.floatingips.find(FIPS_BY_PORT, port_id)
    }

    /// Floating IPs associated through router `router_id`.
    pub fn fips_via_router(&self, router_id: &str) -> Vec<Arc<FloatingIp>> {
        self.floatingips
            .filter(|f| f.router_id.as_deref() == Some(router_id))
    }

    /// Whether a network-service port's device (its router or floating
    /// IP) still exists: such a port is not deleted through the port API.
    pub fn service_port_in_use(&self, p: &Port) -> bool {
        match p.device_owner.as_str() {
            OWNER_FLOATINGIP => self.floatingips.get(&p.device_id).is_some(),
            OWNER_ROUTER_GW | OWNER_ROUTER_INTF => self.routers.get(&p.device_id).is_some(),
            _ => false,
        }
    }

    /// Points the floating IPs of deleted port `port_id` nowhere (Neutron
    /// disassociates them when their port goes), in `v`.
    pub(super) fn disassociate_in(v: &mut TxView<'_, FloatingIp>, port_id: &str) {
        for id in v.find_ids(FIPS_BY_PORT, port_id) {
            if let Some(mut f) = v.get(&id) {
                f.associate(None);
                v.put(&id, f);
            }
        }
    }

    /// Disassociates the floating IPs pointing at port `port_id` (deleted
    /// with its server's row).
    pub async fn disassociate_port(&self, port_id: &str) -> Result<(), Fault> {
        if self.fips_of_port(port_id).is_empty() {
            return Ok(());
        }
        let gone = port_id.to_string();
        self.commit_l3(L3Write::default().fips(move |v| {
            Networks::disassociate_in(v, &gone);
            Ok(())
        }))
        .await
    }

    /// Disassociates the floating IPs still pointing at ports that no
    /// longer exist (a port deleted with its server's row, or by a
    /// process that stopped half way).
    pub async fn settle_floating_ips(&self) -> Result<usize, Fault> {
        let stale: Vec<String> = self
            .floatingips
            .filter(|f| {
                f.port_id
                    .as_deref()
                    .is_some_and(|p| self.ports.get(p).is_none())
            })
            .iter()
            .filter_map(|f| f.port_id.clone())
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let n = stale.len();
        self.commit_l3(L3Write::default().fips(move |v| {
            for p in &stale {
                Networks::disassociate_in(v, p);
            }
            Ok(())
        }))
        .await?;
        Ok(n)
    }
}
