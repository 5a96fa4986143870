//! A port's life as a server's NIC: a new port with addresses picked (or
//! requested) from its network's subnets, or a port the user made bound to
//! the server, handed to the caller to write with the server's row that
//! names it; the write that lets it go again; giving addresses back when a
//! write of the port was refused, and picking again when another process
//! took one.

use super::{cidr_contains, random_mac};
use super::{Networks, Port, PortIp, IP_ATTEMPTS};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use std::net::IpAddr;

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
    /// Port `want`, not written yet: the caller writes it with the
    /// server's row that names it. Its addresses are taken in this
    /// process's used-address sets (given back by
    /// [`Networks::forget_port`] when the port is not written, or by
    /// [`Networks::retry_port`] when its write was refused).
    pub fn new_port(&self, want: &NewPort<'_>, now: DateTime<Utc>) -> Result<Port, Fault> {
        let NewPort {
            project_id,
            network_id,
            fixed_ip,
            device_id,
            device_owner,
            ..
        } = *want;
        let mac = random_mac();
        let wants = match fixed_ip {
            Some(want) => {
                let sn = self
                    .subnets_of(network_id)
                    .into_iter()
                    .find(|s| cidr_contains(&s.cidr, want))
                    .ok_or_else(|| {
                        Fault::bad_request(format!(
                            "Fixed IP {want} is not a valid ip address for network {network_id}."
                        ))
                    })?;
                if super::is_auto_address(&sn) {
                    return Err(Fault::bad_request(format!(
                        "Invalid input for operation: {}",
                        super::auto_address_refused(want, &sn.id)
                    )));
                }
                let mut wants = vec![(sn, Some(want))];
                self.with_auto_addresses(network_id, &mut wants);
                wants
            }
            None => self
                .subnets_of(network_id)
                .into_iter()
                .map(|s| (s, None))
                .collect(),
        };
        let fixed_ips = self.reserve_ips_for(&wants, Some(&mac))?;
        Ok(Port {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            network_id: network_id.to_string(),
            project_id: project_id.to_string(),
            mac_address: mac,
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

    /// Port `port_id` bound to `device_id` as `device_owner` (409 when
    /// another device holds it), not written: the caller writes it with
    /// the server's row that names it.
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
                    unbind(p, now);
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

    /// The write that lets a server's port go, not made: deleted when Nova
    /// made it (`created`), else unbound from the server. `None` when the
    /// port is gone already. The caller writes it with the server's row,
    /// then gives a deleted port's addresses back ([`Networks::forget_port`]).
    pub fn released(
        &self,
        port_id: &str,
        created: bool,
        now: DateTime<Utc>,
    ) -> Option<(String, Option<Port>)> {
        let p = self.ports.get(port_id)?;
        if created {
            return Some((port_id.to_string(), None));
        }
        let mut p = (*p).clone();
        unbind(&mut p, now);
        Some((port_id.to_string(), Some(p)))
    }

    /// Deletes a port and frees its addresses; the floating IPs pointing
    /// at it are disassociated in the same transaction.
    pub async fn delete_port(&self, port_id: &str) -> Result<(), Fault> {
        if !self.fips_of_port(port_id).is_empty() {
            if self.ports.get(port_id).is_none() {
                return Ok(());
            }
            let gone = port_id.to_string();
            let w = super::l3::L3Write::default()
                .port(port_id, None)
                .fips(move |v| {
                    Networks::disassociate_in(v, &gone);
                    Ok(())
                });
            return self.commit_l3(w).await;
        }
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

/// Port `p` bound to no device.
fn unbind(p: &mut Port, now: DateTime<Utc>) {
    p.device_id.clear();
    p.device_owner.clear();
    p.status = "DOWN".into();
    p.updated_at = now;
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
