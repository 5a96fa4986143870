//! `network_data.json`: links, networks and services built from the
//! instance's VIFs and the subnets the caller supplies, as Nova's
//! `get_network_metadata` does.

use super::{GuestFacts, NetFact, PortFact, SubnetFact};
use crate::model::{FixedIp, Instance, Vif};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// VIF types exposed as themselves; anything else is `phy`.
const LEGACY_EXPOSED_VIF_TYPES: &[&str] = &[
    "bridge",
    "dvs",
    "hw_veb",
    "hyperv",
    "ovs",
    "tap",
    "vhostuser",
    "vif",
];

/// Parse `addr/prefix`.
pub(crate) fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = cidr.split_once('/')?;
    let addr: IpAddr = a.trim().parse().ok()?;
    let prefix: u8 = p.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

fn mask_bits(prefix: u8, width: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        (u128::MAX << (width - u32::from(prefix))) & (u128::MAX >> (128 - width))
    }
}

/// The netmask of a prefix, as text (`255.255.255.0`, `ffff:ffff::`).
pub(crate) fn netmask(v4: bool, prefix: u8) -> String {
    if v4 {
        Ipv4Addr::from(mask_bits(prefix, 32) as u32).to_string()
    } else {
        Ipv6Addr::from(mask_bits(prefix, 128)).to_string()
    }
}

/// The network address of a cidr.
fn network_addr(addr: IpAddr, prefix: u8) -> String {
    match addr {
        IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) & mask_bits(prefix, 32) as u32).to_string(),
        IpAddr::V6(a) => Ipv6Addr::from(u128::from(a) & mask_bits(prefix, 128)).to_string(),
    }
}

fn cidr_contains(cidr: &str, ip: &str) -> bool {
    let (Some((net, prefix)), Ok(ip)) = (parse_cidr(cidr), ip.parse::<IpAddr>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let m = mask_bits(prefix, 32) as u32;
            u32::from(n) & m == u32::from(i) & m
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let m = mask_bits(prefix, 128);
            u128::from(n) & m == u128::from(i) & m
        }
        _ => false,
    }
}

fn ip_on_subnet(ip: &FixedIp, subnet: &SubnetFact) -> bool {
    if !ip.subnet_id.is_empty() && !subnet.id.is_empty() {
        return ip.subnet_id == subnet.id;
    }
    ip.version == subnet.ip_version && cidr_contains(&subnet.cidr, &ip.address)
}

/// The tap device name Nova derives for a port: `("tap" + port_id)[..14]`.
pub fn default_devname(port_id: &str) -> String {
    format!("tap{port_id}").chars().take(14).collect()
}

fn link(vif: &Vif, port: &PortFact, net: &NetFact, ifc_num: usize) -> Value {
    let id = port
        .devname
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| {
            if vif.port_id.is_empty() {
                format!("interface{ifc_num}")
            } else {
                default_devname(&vif.port_id)
            }
        });
    let vif_type = port.vif_type.as_deref().unwrap_or("ovs");
    let ty = if LEGACY_EXPOSED_VIF_TYPES.contains(&vif_type) {
        vif_type
    } else {
        "phy"
    };
    let mtu = if net.subnets.iter().any(|s| s.dhcp) {
        Value::Null
    } else {
        json!(net.mtu)
    };
    json!({
        "id": id,
        "vif_id": vif.port_id,
        "type": ty,
        "mtu": mtu,
        "ethernet_mac_address": vif.mac,
    })
}

fn dns_services(subnet: &SubnetFact) -> Vec<Value> {
    subnet
        .dns
        .iter()
        .map(|a| json!({"type": "dns", "address": a}))
        .collect()
}

fn net_entry(
    vif: &Vif,
    subnet: &SubnetFact,
    ip: &FixedIp,
    net_num: usize,
    link_id: &Value,
) -> Value {
    let version = subnet.ip_version;
    let id = format!("network{net_num}");
    let suffix = match &subnet.ipv6_address_mode {
        Some(mode) => format!("_{mode}"),
        None if subnet.dhcp => {
            return json!({
                "id": id,
                "type": format!("ipv{version}_dhcp"),
                "link": link_id,
                "network_id": vif.network_id,
            });
        }
        None => String::new(),
    };
    let v4 = version == 4;
    let prefix = parse_cidr(&subnet.cidr).map_or(if v4 { 32 } else { 128 }, |(_, p)| p);
    let mut routes = Vec::new();
    if let Some(gw) = subnet.gateway.as_ref().filter(|g| !g.is_empty()) {
        let any = if v4 { "0.0.0.0" } else { "::" };
        routes.push(json!({"network": any, "netmask": any, "gateway": gw}));
    }
    for (cidr, gw) in &subnet.routes {
        if let Some((addr, p)) = parse_cidr(cidr) {
            routes.push(json!({
                "network": network_addr(addr, p),
                "netmask": netmask(addr.is_ipv4(), p),
                "gateway": gw,
            }));
        }
    }
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("type".into(), json!(format!("ipv{version}{suffix}")));
    m.insert("link".into(), link_id.clone());
    m.insert("ip_address".into(), json!(ip.address));
    m.insert("netmask".into(), json!(netmask(v4, prefix)));
    m.insert("routes".into(), Value::Array(routes));
    m.insert("network_id".into(), json!(vif.network_id));
    m.insert("services".into(), Value::Array(dns_services(subnet)));
    Value::Object(m)
}

/// `network_data.json`. VIFs whose network is unknown (or has no subnets)
/// are skipped; with no usable VIF at all the document is `{}`.
pub fn network_data(inst: &Instance, facts: &GuestFacts) -> Value {
    let mut links = Vec::new();
    let mut nets = Vec::new();
    let mut services: Vec<Value> = Vec::new();
    let mut ifc_num = 0usize;
    let mut net_num = 0usize;
    if inst.vifs.is_empty() {
        return json!({});
    }
    for vif in &inst.vifs {
        let Some(net) = facts
            .networks
            .iter()
            .find(|n| n.network_id == vif.network_id)
            .filter(|n| !n.subnets.is_empty())
        else {
            continue;
        };
        let this_ifc = ifc_num;
        ifc_num += 1;
        let port = facts.ports.get(&vif.port_id).cloned().unwrap_or_default();
        let v4 = net.subnets.iter().find(|s| s.ip_version == 4);
        let v6 = net.subnets.iter().find(|s| s.ip_version == 6);
        if v4.is_none() && v6.is_none() {
            continue;
        }
        let l = link(vif, &port, net, this_ifc);
        let link_id = l["id"].clone();
        links.push(l);
        for subnet in [v4, v6].into_iter().flatten() {
            let Some(ip) = vif.fixed_ips.iter().find(|ip| ip_on_subnet(ip, subnet)) else {
                continue;
            };
            nets.push(net_entry(vif, subnet, ip, net_num, &link_id));
            net_num += 1;
            for s in dns_services(subnet) {
                if !services.contains(&s) {
                    services.push(s);
                }
            }
        }
    }
    json!({"links": links, "networks": nets, "services": services})
}

/// The first fixed IPv4 address over all VIFs (EC2 `local-ipv4`).
pub(crate) fn first_fixed_ipv4(inst: &Instance) -> Option<String> {
    inst.vifs
        .iter()
        .flat_map(|v| v.fixed_ips.iter())
        .find(|ip| ip.version == 4)
        .map(|ip| ip.address.clone())
}
