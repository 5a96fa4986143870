//! Neutron's JSON renderings of networks, subnets and ports.

use super::*;

pub(super) fn network_json(app: &App, n: &Network) -> Value {
    let subnets: Vec<String> = app
        .networks
        .subnets_of(&n.id)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    json!({
        "id": n.id,
        "name": n.name,
        "tenant_id": n.project_id,
        "project_id": n.project_id,
        "admin_state_up": n.admin_state_up,
        "status": n.status,
        "subnets": subnets,
        "shared": n.shared,
        "mtu": n.mtu,
        "router:external": n.router_external,
        "description": n.description,
        "created_at": iso_z(&n.created_at),
        "updated_at": iso_z(&n.updated_at),
        "revision_number": 1,
        "tags": [],
        "availability_zones": [],
        "availability_zone_hints": [],
        "port_security_enabled": true,
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "l2_adjacency": true,
        "is_default": false,
    })
}

pub(super) fn subnet_json(s: &Subnet) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "network_id": s.network_id,
        "tenant_id": s.project_id,
        "project_id": s.project_id,
        "cidr": s.cidr,
        "ip_version": s.ip_version,
        "gateway_ip": s.gateway_ip,
        "allocation_pools": s.allocation_pools.iter()
            .map(|p| json!({"start": p.start, "end": p.end})).collect::<Vec<_>>(),
        "enable_dhcp": s.enable_dhcp,
        "dns_nameservers": s.dns_nameservers,
        "host_routes": [],
        "ipv6_address_mode": s.ipv6_address_mode,
        "ipv6_ra_mode": s.ipv6_ra_mode,
        "subnetpool_id": null,
        "service_types": [],
        "description": s.description,
        "tags": [],
        "created_at": iso_z(&s.created_at),
        "updated_at": iso_z(&s.updated_at),
        "revision_number": 1,
    })
}

pub(super) fn port_json(p: &Port) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "network_id": p.network_id,
        "tenant_id": p.project_id,
        "project_id": p.project_id,
        "mac_address": p.mac_address,
        "fixed_ips": p.fixed_ips.iter()
            .map(|ip| json!({"subnet_id": ip.subnet_id, "ip_address": ip.ip_address})).collect::<Vec<_>>(),
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "status": p.status,
        "admin_state_up": p.admin_state_up,
        "description": p.description,
        "security_groups": p.security_groups,
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "binding:vnic_type": "normal",
        "port_security_enabled": true,
        "tags": [],
        "created_at": iso_z(&p.created_at),
        "updated_at": iso_z(&p.updated_at),
        "revision_number": 1,
    })
}
