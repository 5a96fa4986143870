//! The compute service's side of the driver seam: [`ComputeGuestEnv`]
//! implements [`GuestEnv`] over the application's tables (images,
//! instances, keypairs, networks), its configuration and its clock, so that
//! the QEMU driver and its metadata service never see the `App`. It holds
//! only a `Weak<App>`: the driver belongs to the application, and a dropped
//! application answers [`Unavailable`].

use crate::app::App;
use crate::compute::driver::BoxFut;
use crate::virt::env::{
    DhcpPort, FilterRule, GuestEnv, GuestEvent, ImageInfo, PasswordPost, PortSecurity, RouterLeg,
    RouterPlan, Unavailable,
};
use chrono::{DateTime, Utc};
use rand::RngCore;
use rova_core::metadata::{password_request, GuestFacts, NetFact, PasswordOutcome, SubnetFact};
use rova_core::model::Instance;
use rova_core::states::{PowerState, VmState};
use rova_core::Fault;
use serde_json::Value;
use std::sync::{Arc, Weak};

/// Bytes of fresh randomness in `random_seed`.
const RANDOM_SEED_LEN: usize = 512;

/// [`GuestEnv`] over a (weakly held) application.
pub struct ComputeGuestEnv {
    app: Weak<App>,
}

impl ComputeGuestEnv {
    /// The environment of `app`'s guests, as the driver takes it.
    pub fn of(app: &Arc<App>) -> Arc<dyn GuestEnv> {
        Arc::new(ComputeGuestEnv {
            app: Arc::downgrade(app),
        })
    }

    fn app(&self) -> Result<Arc<App>, Unavailable> {
        self.app.upgrade().ok_or(Unavailable)
    }
}

impl GuestEnv for ComputeGuestEnv {
    fn image<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, Unavailable>> {
        Box::pin(async move {
            let app = self.app()?;
            let Some(img) = app.images.get(id) else {
                return Ok(None);
            };
            let prop = |k: &str| {
                img.properties
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            Ok(Some(ImageInfo {
                file: app.images.file_path(id),
                active: img.status == "active",
                disk_format: img.disk_format.clone(),
                kernel_id: prop("kernel_id"),
                ramdisk_id: prop("ramdisk_id"),
                command_line: prop("os_command_line"),
            }))
        })
    }

    fn guest_facts<'a>(
        &'a self,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<GuestFacts, Unavailable>> {
        Box::pin(async move {
            let app = self.app()?;
            Ok(facts_for(&app, inst))
        })
    }

    fn instance<'a>(
        &'a self,
        uuid: &'a str,
    ) -> BoxFut<'a, Result<Option<Arc<Instance>>, Unavailable>> {
        Box::pin(async move {
            Ok(self
                .app()?
                .compute
                .instances
                .get(uuid)
                .filter(|i| !i.deleted))
        })
    }

    fn instances(&self) -> BoxFut<'_, Vec<Arc<Instance>>> {
        Box::pin(async move {
            self.app()
                .map(|app| {
                    app.compute
                        .instances_where(
                            "deleted = ?1",
                            vec![crate::store::schema::Cell::Bool(false)],
                            |i| !i.deleted,
                        )
                        .unwrap_or_default()
                })
                .unwrap_or_default()
        })
    }

    fn post_password(&self, uuid: &str, body: Vec<u8>) -> BoxFut<'_, PasswordPost> {
        let uuid = uuid.to_string();
        Box::pin(async move {
            let Ok(app) = self.app() else {
                return PasswordPost::Unavailable;
            };
            store_password(&app, &uuid, &body).await
        })
    }

    fn save_image(
        &self,
        image_id: &str,
        bytes: Vec<u8>,
        virtual_size: Option<u64>,
    ) -> BoxFut<'_, Result<(), String>> {
        let image_id = image_id.to_string();
        Box::pin(async move {
            let app = self.app().map_err(|e| e.to_string())?;
            let Some(cur) = app.images.get(&image_id) else {
                return Err(format!("image {image_id} was deleted during the upload"));
            };
            let mut img = (*cur).clone();
            img.disk_format = Some("qcow2".into());
            img.container_format = Some("bare".into());
            app.images
                .write_bytes(&mut img, &bytes)
                .map_err(|e| e.message)?;
            if virtual_size.is_some() {
                img.virtual_size = virtual_size;
            }
            app.images
                .fill(&image_id, &img)
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        })
    }

    fn network<'a>(
        &'a self,
        network_id: &'a str,
    ) -> BoxFut<'a, Result<Option<NetFact>, Unavailable>> {
        Box::pin(async move {
            let app = self.app()?;
            Ok(net_fact(&app, network_id))
        })
    }

    fn dhcp_port<'a>(
        &'a self,
        network_id: &'a str,
        datapath: &'a str,
    ) -> BoxFut<'a, Result<DhcpPort, String>> {
        Box::pin(async move {
            let app = self.app().map_err(|e| e.to_string())?;
            let port = ensure_dhcp_port(&app, network_id, datapath)
                .await
                .map_err(|f| f.message)?;
            Ok(DhcpPort {
                port_id: port.id.clone(),
                mac: port.mac_address.clone(),
                fixed_ips: port
                    .fixed_ips
                    .iter()
                    .map(|f| (f.subnet_id.clone(), f.ip_address.clone()))
                    .collect(),
            })
        })
    }

    fn instance_at<'a>(
        &'a self,
        network_id: &'a str,
        ip: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, Unavailable>> {
        Box::pin(async move {
            let app = self.app()?;
            Ok(app
                .networks
                .ports_on(network_id)
                .into_iter()
                .find(|p| {
                    p.device_owner.starts_with("compute:")
                        && p.fixed_ips.iter().any(|f| f.ip_address == ip)
                })
                .map(|p| p.device_id.clone())
                .filter(|id| !id.is_empty()))
        })
    }

    fn port_security<'a>(
        &'a self,
        port_ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<PortSecurity>, Unavailable>> {
        Box::pin(async move {
            let app = self.app()?;
            Ok(port_ids
                .iter()
                .filter_map(|id| app.networks.ports.get(id))
                .map(|p| port_security_of(&app, &p))
                .collect())
        })
    }

    fn routers(&self) -> BoxFut<'_, Result<Vec<RouterPlan>, Unavailable>> {
        Box::pin(async move {
            let app = self.app()?;
            let mut plans: Vec<RouterPlan> = app
                .networks
                .routers
                .filter(|r| r.admin_state_up)
                .iter()
                .map(|r| router_plan(&app, r))
                .collect();
            plans.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(plans)
        })
    }

    fn now(&self) -> DateTime<Utc> {
        match self.app() {
            Ok(app) => app.clock.now(),
            // Nothing is recorded once the service is gone.
            Err(Unavailable) => Utc::now(),
        }
    }

    fn report(&self, event: GuestEvent) -> BoxFut<'_, bool> {
        Box::pin(async move {
            let Ok(app) = self.app() else { return false };
            match event {
                GuestEvent::PoweredOff {
                    uuid,
                    host,
                    was,
                    seen_at,
                } => app
                    .compute
                    .update_instance(&uuid, seen_at, |i| {
                        if i.deleted
                            || i.task_state.is_some()
                            || i.vm_state != was
                            || i.host.as_deref() != Some(host.as_str())
                        {
                            return Err(Fault::conflict("changed"));
                        }
                        i.vm_state = VmState::Stopped;
                        i.power_state = PowerState::Shutdown;
                        Ok(())
                    })
                    .await
                    .is_ok(),
            }
        })
    }
}

/// IP protocol numbers of the names Neutron accepts.
fn protocol_number(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse::<u8>() {
        return Some(n);
    }
    Some(match name {
        "icmp" => 1,
        "igmp" => 2,
        "ipip" => 4,
        "tcp" => 6,
        "egp" => 8,
        "udp" => 17,
        "dccp" => 33,
        "ipv6-encap" => 41,
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "ospf" => 89,
        "vrrp" => 112,
        "pgm" => 113,
        "sctp" => 132,
        "udplite" => 136,
        _ => return None,
    })
}

/// A port's addresses and the rules of its groups, a remote group
/// resolved to the fixed IPs of the ports that carry it.
fn port_security_of(app: &App, port: &crate::network::Port) -> PortSecurity {
    let mut rules = Vec::new();
    for sg_id in &port.security_groups {
        let Some(sg) = app.networks.security_groups.get(sg_id) else {
            continue;
        };
        for r in &sg.rules {
            let ip_version = if r.ethertype == "IPv6" { 6 } else { 4 };
            let protocol = match r.protocol.as_deref() {
                None | Some("any") => None,
                Some(p) => match protocol_number(p) {
                    Some(n) => Some(n),
                    // A protocol the data path cannot name: no rule.
                    None => continue,
                },
            };
            let remote = if let Some(g) = &r.remote_group_id {
                let family_ok = |ip: &str| {
                    ip.parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.is_ipv6() == (ip_version == 6))
                };
                let mut ips: Vec<String> = app
                    .networks
                    .ports_with_group(g)
                    .iter()
                    .flat_map(|m| m.fixed_ips.iter().map(|f| f.ip_address.clone()))
                    .filter(|ip| family_ok(ip))
                    .collect();
                ips.sort();
                ips.dedup();
                Some(ips)
            } else {
                r.remote_ip_prefix.clone().map(|c| vec![c])
            };
            rules.push(FilterRule {
                ingress: r.direction == "ingress",
                ip_version,
                protocol,
                port_min: r.port_range_min,
                port_max: r.port_range_max,
                remote,
            });
        }
    }
    PortSecurity {
        port_id: port.id.clone(),
        mac: port.mac_address.clone(),
        fixed_ips: port
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.clone())
            .collect(),
        rules,
    }
}

/// A port's IPv4 leg: its address with its subnet's prefix length, and
/// the subnet's gateway as next hop when asked.
fn leg_of(app: &App, port: &crate::network::Port, next_hop: bool) -> Option<RouterLeg> {
    port.fixed_ips.iter().find_map(|f| {
        let sn = app.networks.subnets.get(&f.subnet_id)?;
        if sn.ip_version != 4 {
            return None;
        }
        let len = sn.cidr.split_once('/')?.1;
        Some(RouterLeg {
            port_id: port.id.clone(),
            network_id: port.network_id.clone(),
            mac: port.mac_address.clone(),
            cidr: format!("{}/{len}", f.ip_address),
            next_hop: if next_hop {
                sn.gateway_ip.clone().filter(|g| !g.is_empty())
            } else {
                None
            },
        })
    })
}

/// What the data path builds for router `r`.
fn router_plan(app: &App, r: &crate::network::l3::Router) -> RouterPlan {
    let gateway = r
        .gateway
        .as_ref()
        .and_then(|g| app.networks.ports.get(&g.port_id))
        .and_then(|p| leg_of(app, &p, true));
    let mut interfaces: Vec<RouterLeg> = app
        .networks
        .router_interfaces(&r.id)
        .iter()
        .filter_map(|p| leg_of(app, p, false))
        .collect();
    interfaces.sort_by(|a, b| a.port_id.cmp(&b.port_id));
    let mut floating: Vec<(String, String)> = app
        .networks
        .fips_via_router(&r.id)
        .iter()
        .filter_map(|f| {
            f.port_id.as_ref()?;
            Some((f.floating_ip_address.clone(), f.fixed_ip_address.clone()?))
        })
        .collect();
    floating.sort();
    RouterPlan {
        id: r.id.clone(),
        gateway,
        interfaces,
        snat: r.gateway.as_ref().is_some_and(|g| g.enable_snat),
        floating,
    }
}

/// The id of the DHCP port of `network_id` on data path `datapath`: the
/// same on every process, so the database's key keeps it unique.
fn dhcp_port_id(network_id: &str, datapath: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("rova-dhcp-port:{datapath}:{network_id}").as_bytes());
    let h = hex::encode(&d[..16]);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The DHCP port of `network_id` on data path `datapath` (Neutron's
/// `network:dhcp` port, owned by the network's project), written when it
/// does not exist yet. Two processes racing to make it write one row:
/// the loser reads the winner's.
async fn ensure_dhcp_port(
    app: &App,
    network_id: &str,
    datapath: &str,
) -> Result<Arc<crate::network::Port>, Fault> {
    let id = dhcp_port_id(network_id, datapath);
    let device_id = format!("dhcp{}-{network_id}", &id[..8]);
    for attempt in 1..=8 {
        if let Some(p) = app.networks.ports.get(&id) {
            return Ok(p);
        }
        let net =
            app.networks.networks.get(network_id).ok_or_else(|| {
                Fault::not_found(format!("Network {network_id} could not be found."))
            })?;
        let want = crate::network::NewPort {
            project_id: &net.project_id,
            network_id,
            fixed_ip: None,
            device_id: &device_id,
            device_owner: "network:dhcp",
            security_groups: Vec::new(),
        };
        let mut port = app.networks.new_port(&want, app.clock.now())?;
        port.id = id.clone();
        port.name = String::new();
        let ips = port.fixed_ips.clone();
        match app.networks.insert_port(port).await {
            Ok(p) => return Ok(p),
            Err(e) => {
                // Made by another process meanwhile, or an address another
                // port took (insert_port settled the addresses): again.
                let again = app.networks.ports.get(&id).is_some()
                    || (app.networks.holds_taken(&e, &ips) && attempt < 8);
                if !again {
                    return Err(e);
                }
            }
        }
    }
    app.networks.ports.get(&id).ok_or_else(|| {
        Fault::internal(format!(
            "the DHCP port of network {network_id} could not be made"
        ))
    })
}

/// The facts the instance record lacks, from the live application.
fn facts_for(app: &App, inst: &Instance) -> GuestFacts {
    let mut seed = vec![0u8; RANDOM_SEED_LEN];
    rand::thread_rng().fill_bytes(&mut seed);
    let mut facts = GuestFacts::new(app.clock.now().date_naive(), seed);
    facts.dhcp_domain = app.cfg.dhcp_domain.clone();
    for vif in &inst.vifs {
        if facts
            .networks
            .iter()
            .any(|n| n.network_id == vif.network_id)
        {
            continue;
        }
        if let Some(net) = net_fact(app, &vif.network_id) {
            facts.networks.push(net);
        }
    }
    if let Some(name) = &inst.key_name {
        let key = crate::compute::Keypair::key(&inst.user_id, name);
        if let Some(kp) = app.compute.keypairs.get(&key) {
            if !kp.key_type.is_empty() {
                facts.key_type = kp.key_type.clone();
            }
        }
    }
    facts.floating_ips = crate::compute::floating::floating_addresses(app, inst);
    facts
}

/// One network with its subnets in creation order (Neutron's order).
fn net_fact(app: &App, network_id: &str) -> Option<NetFact> {
    let net = app.networks.networks.get(network_id)?;
    let mut subnets = app.networks.subnets.filter(|s| s.network_id == network_id);
    subnets.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Some(NetFact {
        network_id: net.id.clone(),
        mtu: Some(net.mtu),
        subnets: subnets
            .iter()
            .map(|s| SubnetFact {
                id: s.id.clone(),
                cidr: s.cidr.clone(),
                ip_version: s.ip_version,
                gateway: s.gateway_ip.clone().filter(|g| !g.is_empty()),
                dhcp: s.enable_dhcp,
                ipv6_address_mode: s.ipv6_address_mode.clone(),
                dns: s.dns_nameservers.clone(),
                routes: Vec::new(),
            })
            .collect(),
    })
}

/// A guest's POST to the password path, checked and stored atomically
/// against the current row.
async fn store_password(app: &App, uuid: &str, body: &[u8]) -> PasswordPost {
    let mut refused: Option<PasswordOutcome> = None;
    let now = app.clock.now();
    let res = app
        .compute
        .update_instance(uuid, now, |i| {
            if i.deleted {
                return Err(Fault::instance_not_found(uuid));
            }
            match password_request(i, "POST", body) {
                PasswordOutcome::Store(chunks) => {
                    i.system_metadata.extend(chunks);
                    Ok(())
                }
                other => {
                    refused = Some(other);
                    Err(Fault::conflict("password not stored"))
                }
            }
        })
        .await;
    match (res, refused) {
        (Ok(_), _) => PasswordPost::Stored,
        (Err(_), Some(PasswordOutcome::Conflict)) => PasswordPost::Conflict,
        (Err(_), Some(PasswordOutcome::BadRequest(msg))) => {
            PasswordPost::BadRequest(msg.to_string())
        }
        (Err(f), _) if f.code == 404 => PasswordPost::NotFound,
        (Err(f), _) => PasswordPost::Failed(f.message),
    }
}
