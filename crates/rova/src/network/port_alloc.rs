//! A port's life as a server's NIC: a new port with addresses picked (or
//! requested) from its network's subnets, written alone or handed to the
//! caller to write with its other rows; binding a port the user made to a
//! device and letting it go; giving addresses back when a write of the
//! port was refused, and picking again when another process took one.

use super::{cidr_contains, random_mac};
use super::{Networks, Port, PortIp, IP_ATTEMPTS};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use std::net::IpAddr;
use std::sync::Arc;

/// What a new port of a server is: on `network_id`, owned by
/// `project_id`, with exactly `fixed_ip` when given (else one address
/// from each of the network's subnets), bound to `device_id` as
/// `device_owner`, carrying `security_groups` (checked by the caller).
pub struct NewPort<'a> {
    pub project_id: &'a str,
    pub network_id: &'a str,
    pub fixed_ip: Option<IpAddr>,
    pub device_id: &'a str,
    pub device_owner: &'a str,
    pub security_groups: Vec<String>,
}

impl Networks {
    /// Creates port `want` (written alone).
    pub async fn create_port(
        &self,
        want: NewPort<'_>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Port>, Fault> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = self.new_port(&want, now)?;
            let fixed_ips = port.fixed_ips.clone();
            match self.ports.put(&port.id.clone(), port).await {
                Ok(p) => return Ok(p),
                // Another process took an address meanwhile: pick again
                // (a requested address is simply refused).
                Err(e) if self.retry_port(&e, &fixed_ips, want.fixed_ip.is_none(), attempt) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Port `want` as [`Networks::create_port`] writes it, not written
    /// yet: its addresses are taken in this process's used-address sets
    /// (given back by [`Networks::forget_port`] when the port is not
    /// written).
    pub fn new_port(&self, want: &NewPort<'_>, now: DateTime<Utc>) -> Result<Port, Fault> {
        let NewPort {
            project_id,
            network_id,
            fixed_ip,
            device_id,
            device_owner,
            ..
        } = *want;
        let subnets = self.subnets_of(network_id);
        let mut fixed_ips = Vec::new();
        let result = (|| {
            if let Some(want) = fixed_ip {
                let sn = subnets
                    .iter()
                    .find(|s| cidr_contains(&s.cidr, want))
                    .ok_or_else(|| {
                        Fault::bad_request(format!(
                            "Fixed IP {want} is not a valid ip address for network {network_id}."
                        ))
                    })?;
                let ip = self.reserve_ip(sn, Some(want))?;
                fixed_ips.push(PortIp {
                    subnet_id: sn.id.clone(),
                    ip_address: ip.to_string(),
                });
            } else {
                for sn in &subnets {
                    let ip = self.reserve_ip(sn, None)?;
                    fixed_ips.push(PortIp {
                        subnet_id: sn.id.clone(),
                        ip_address: ip.to_string(),
                    });
                }
            }
            Ok::<(), Fault>(())
        })();
        if let Err(e) = result {
            self.release_ips(&fixed_ips);
            return Err(e);
        }
        Ok(Port {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            network_id: network_id.to_string(),
            project_id: project_id.to_string(),
            mac_address: random_mac(),
            fixed_ips,
            device_id: device_id.to_string(),
            device_owner: device_owner.to_string(),
            status: if device_id.is_empty() {
                "DOWN".into()
            } else {
                "ACTIVE".into()
            },
            admin_state_up: true,
            description: String::new(),
            security_groups: want.security_groups.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    /// After a port write holding `fixed_ips` was refused with `e`:
    /// whether to pick new addresses and write again (another process
    /// took one of them, the addresses were picked, not requested, and
    /// attempt `attempt` was not the last). Either way the addresses are
    /// settled: the taken one marked used, the others given back.
    pub fn retry_port(
        &self,
        e: &Fault,
        fixed_ips: &[PortIp],
        picked: bool,
        attempt: usize,
    ) -> bool {
        if self.lost_ip(e, fixed_ips) {
            return picked && attempt < IP_ATTEMPTS;
        }
        self.release_ips(fixed_ips);
        false
    }

    /// Whether refusal `e` is of an address among `fixed_ips` that
    /// another port holds.
    pub fn holds_taken(&self, e: &Fault, fixed_ips: &[PortIp]) -> bool {
        crate::store::taken_ip(e).is_some_and(|(subnet, ip)| {
            fixed_ips
                .iter()
                .any(|p| p.subnet_id == subnet && p.ip_address == ip)
        })
    }

    /// Gives back the addresses of a port [`Networks::new_port`] made
    /// and that was not written.
    pub fn forget_port(&self, port: &Port) {
        self.release_ips(&port.fixed_ips);
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
                || port_missing(port_id),
                |p| bind(p, device_id, device_owner, now),
            )
            .await?;
        Ok(p)
    }

    /// Port `port_id` as [`Networks::bind_port`] would write it, not
    /// written: the caller writes it with its other rows.
    pub fn bound_port(
        &self,
        port_id: &str,
        device_id: &str,
        device_owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Port, Fault> {
        let mut p = (*self
            .ports
            .get(port_id)
            .ok_or_else(|| port_missing(port_id))?)
        .clone();
        bind(&mut p, device_id, device_owner, now)?;
        Ok(p)
    }

    /// Detaches a port from its device (a port the user brought is kept).
    pub async fn unbind_port(&self, port_id: &str, now: DateTime<Utc>) -> Result<(), Fault> {
        match self
            .ports
            .update(
                port_id,
                || Fault::not_found("port"),
                |p| {
                    p.device_id.clear();
                    p.device_owner.clear();
                    p.status = "DOWN".into();
                    p.updated_at = now;
                    Ok(())
                },
            )
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

/// The refusal of a port id that names no port.
fn port_missing(port_id: &str) -> Fault {
    Fault::bad_request(format!("Port id {port_id} could not be found."))
}

/// Port `p` bound to `device_id` (409 when another device holds it).
fn bind(
    p: &mut Port,
    device_id: &str,
    device_owner: &str,
    now: DateTime<Utc>,
) -> Result<(), Fault> {
    if !p.device_id.is_empty() && p.device_id != device_id {
        return Err(Fault::conflict(format!("Port {} is still in use.", p.id)));
    }
    p.device_id = device_id.to_string();
    p.device_owner = device_owner.to_string();
    p.status = "ACTIVE".into();
    p.updated_at = now;
    Ok(())
}
