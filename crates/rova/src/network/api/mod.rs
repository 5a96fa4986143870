//! Neutron v2.0 HTTP routes under `/network`: the versions and resources
//! documents, extensions, networks, subnets and ports (list with Neutron's
//! filters, `fields`, sorting and marker paging; show; create; update;
//! delete). Security groups and their rules are in the `secgroups` child
//! module, routers in `routers` and floating IPs in `floatingips`, which
//! share this module's helpers.
//!
//! This module owns the router, the resource attribute tables, Neutron's
//! error type and the visibility rules. The children hold the rest:
//! `versions` (discovery documents), `views` (JSON renderings), `list`
//! (query parsing, filtering, sorting, paging), `body` (request-body
//! helpers), and one module per resource: `networks`, `subnets`, `ports`,
//! `secgroups`, `routers`, `floatingips`.
//!
//! The caller is authenticated by the image API's `Caller` extractor
//! (keystonemiddleware's JSON 401). Every other error is Neutron's
//! `{"NeutronError": {"type", "message", "detail"}}`.
//!
//! Visibility follows Neutron's default policy: a project sees its own
//! resources, shared and external networks, the subnets of shared networks
//! and the ports on networks it owns; admins see everything; anything else
//! is 404.

use super::{
    cidr_contains, cidr_network, cidrs_overlap, ip_cmp, ip_offset, parse_cidr,
    pools_around_gateway, random_mac, AllocationPool, IpWants, Network, Port, PortIp, Subnet,
};
use crate::app::App;
use crate::http::{host_url, Ctx};
use crate::image::api::Caller;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use rova_core::model::iso_z;
use rova_core::Fault;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;

mod body;
mod floatingips;
mod list;
mod networks;
mod ports;
mod router_interfaces;
mod routers;
mod secgroups;
mod subnets;
#[cfg(test)]
mod tests;
mod versions;
mod views;

use body::{check_port_extras, get_bool, get_str, get_uint, only_value, owner_from, resource_body};
use list::{
    created, list_body, list_response, one, parse_bool, parse_params, project_fields, select,
    ListParams,
};
use networks::{
    create_network, delete_network, list_networks, may_change_network, show_network, update_network,
};
use ports::{create_port, delete_port, list_ports, show_port, update_port};
use subnets::{create_subnet, delete_subnet, list_subnets, parse_ip, show_subnet, update_subnet};
use versions::{extension, extensions, resources, versions};
use views::{network_json, port_json, subnet_json};

/// Largest MTU a network may ask for (the VXLAN MTU devstack uses).
const MAX_MTU: u64 = 1450;
/// Neutron's `max_dns_nameservers`.
const MAX_DNS: usize = 5;
const IPV6_MODES: &[&str] = &["dhcpv6-stateful", "dhcpv6-stateless", "slaac"];

/// Attributes rendered for each resource (and so accepted as filters and
/// sort keys).
const NETWORK_ATTRS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "admin_state_up",
    "status",
    "subnets",
    "shared",
    "mtu",
    "router:external",
    "description",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
    "availability_zones",
    "availability_zone_hints",
    "port_security_enabled",
    "ipv4_address_scope",
    "ipv6_address_scope",
    "l2_adjacency",
    "is_default",
];
const SUBNET_ATTRS: &[&str] = &[
    "id",
    "name",
    "network_id",
    "tenant_id",
    "project_id",
    "cidr",
    "ip_version",
    "gateway_ip",
    "allocation_pools",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
    "ipv6_address_mode",
    "ipv6_ra_mode",
    "subnetpool_id",
    "description",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "service_types",
];
const PORT_ATTRS: &[&str] = &[
    "id",
    "name",
    "network_id",
    "tenant_id",
    "project_id",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "status",
    "admin_state_up",
    "description",
    "security_groups",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "binding:vnic_type",
    "port_security_enabled",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];

const NETWORK_CREATE: &[&str] = &[
    "name",
    "admin_state_up",
    "shared",
    "tenant_id",
    "project_id",
    "mtu",
    "router:external",
    "description",
    "port_security_enabled",
    "availability_zone_hints",
];
const NETWORK_UPDATE: &[&str] = &[
    "name",
    "admin_state_up",
    "shared",
    "mtu",
    "router:external",
    "description",
    "port_security_enabled",
];
const SUBNET_CREATE: &[&str] = &[
    "name",
    "network_id",
    "tenant_id",
    "project_id",
    "ip_version",
    "cidr",
    "gateway_ip",
    "allocation_pools",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
    "ipv6_address_mode",
    "ipv6_ra_mode",
    "description",
    "subnetpool_id",
    "use_default_subnetpool",
];
const SUBNET_UPDATE: &[&str] = &[
    "name",
    "description",
    "enable_dhcp",
    "dns_nameservers",
    "gateway_ip",
    "allocation_pools",
    "host_routes",
];
const PORT_CREATE: &[&str] = &[
    "network_id",
    "name",
    "description",
    "admin_state_up",
    "fixed_ips",
    "mac_address",
    "device_id",
    "device_owner",
    "tenant_id",
    "project_id",
    "security_groups",
    "port_security_enabled",
    "binding:vnic_type",
    "allowed_address_pairs",
    "extra_dhcp_opts",
];
const PORT_UPDATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "fixed_ips",
    "mac_address",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "binding:vnic_type",
    "allowed_address_pairs",
    "extra_dhcp_opts",
];

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/network", get(versions))
        .route("/network/", get(versions))
        .route("/network/v2.0", get(resources))
        .route("/network/v2.0/", get(resources))
        .route("/network/v2.0/extensions", get(extensions))
        .route("/network/v2.0/extensions/{alias}", get(extension))
        .route(
            "/network/v2.0/networks",
            get(list_networks).post(create_network),
        )
        .route(
            "/network/v2.0/networks/{id}",
            get(show_network).put(update_network).delete(delete_network),
        )
        .route(
            "/network/v2.0/subnets",
            get(list_subnets).post(create_subnet),
        )
        .route(
            "/network/v2.0/subnets/{id}",
            get(show_subnet).put(update_subnet).delete(delete_subnet),
        )
        .route("/network/v2.0/ports", get(list_ports).post(create_port))
        .route(
            "/network/v2.0/ports/{id}",
            get(show_port).put(update_port).delete(delete_port),
        )
        .merge(secgroups::routes())
        .merge(routers::routes())
        .merge(floatingips::routes())
        .route("/network/v2.0/{*rest}", any(not_found))
}

// ---- errors ----

/// A Neutron error: status, exception type and message.
#[derive(Debug)]
pub struct NeutronError {
    pub status: u16,
    pub kind: String,
    pub message: String,
}

impl NeutronError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        NeutronError {
            status,
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

impl From<Fault> for NeutronError {
    fn from(f: Fault) -> Self {
        let kind = match f.code {
            400 => "HTTPBadRequest",
            403 => "HTTPForbidden",
            404 => "HTTPNotFound",
            409 => "HTTPConflict",
            _ => "HTTPInternalServerError",
        };
        NeutronError::new(f.code, kind, f.message)
    }
}

impl From<super::secgroups::SgError> for NeutronError {
    fn from(e: super::secgroups::SgError) -> Self {
        NeutronError::new(e.status, e.kind, e.message)
    }
}

impl IntoResponse for NeutronError {
    fn into_response(self) -> Response {
        if self.status >= 500 {
            tracing::error!(code = self.status, message = %self.message, "network service error");
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            json!({"NeutronError": {"type": self.kind, "message": self.message, "detail": ""}});
        (status, axum::Json(body)).into_response()
    }
}

type NResult<T> = Result<T, NeutronError>;

fn bad(msg: impl Into<String>) -> NeutronError {
    NeutronError::new(400, "HTTPBadRequest", msg)
}

fn invalid_input(msg: impl std::fmt::Display) -> NeutronError {
    NeutronError::new(
        400,
        "InvalidInput",
        format!("Invalid input for operation: {msg}"),
    )
}

fn policy(rule: &str) -> NeutronError {
    NeutronError::new(
        403,
        "PolicyNotAuthorized",
        format!("{rule} is disallowed by policy"),
    )
}

fn network_not_found(id: &str) -> NeutronError {
    NeutronError::new(
        404,
        "NetworkNotFound",
        format!("Network {id} could not be found."),
    )
}

fn subnet_not_found(id: &str) -> NeutronError {
    NeutronError::new(
        404,
        "SubnetNotFound",
        format!("Subnet {id} could not be found."),
    )
}

fn port_not_found(id: &str) -> NeutronError {
    NeutronError::new(
        404,
        "PortNotFound",
        format!("Port {id} could not be found."),
    )
}

/// Maps an address-allocation refusal from [`super::Networks::reserve_ip`]
/// to Neutron's exception type.
fn ip_fault(f: Fault) -> NeutronError {
    let kind = if f.code == 400 {
        "InvalidIpForSubnet"
    } else if f.message.starts_with("No more IP addresses") {
        "IpAddressGenerationFailure"
    } else if f.message.contains("already allocated") {
        "IpAddressAlreadyAllocated"
    } else {
        return f.into();
    };
    NeutronError::new(f.code, kind, f.message)
}

async fn not_found(_caller: Caller) -> NeutronError {
    NeutronError::new(404, "HTTPNotFound", "The resource could not be found.")
}

// ---- visibility ----

/// Own, shared and external networks; admins see all.
pub fn network_visible(n: &Network, project: &str, admin: bool) -> bool {
    admin || n.project_id == project || n.shared || n.router_external
}

/// Own subnets and the subnets of shared networks or of networks the
/// project owns.
pub fn subnet_visible(s: &Subnet, net: Option<&Network>, project: &str, admin: bool) -> bool {
    admin || s.project_id == project || net.is_some_and(|n| n.shared || n.project_id == project)
}

/// Own ports and the ports on networks the project owns.
pub fn port_visible(p: &Port, net: Option<&Network>, project: &str, admin: bool) -> bool {
    admin || p.project_id == project || net.is_some_and(|n| n.project_id == project)
}

fn visible_network(app: &App, ctx: &Ctx, id: &str) -> NResult<Arc<Network>> {
    app.networks
        .networks
        .get(id)
        .filter(|n| network_visible(n, &ctx.project_id, ctx.is_admin()))
        .ok_or_else(|| network_not_found(id))
}

fn visible_subnet(app: &App, ctx: &Ctx, id: &str) -> NResult<Arc<Subnet>> {
    app.networks
        .subnets
        .get(id)
        .filter(|s| {
            let net = app.networks.networks.get(&s.network_id);
            subnet_visible(s, net.as_deref(), &ctx.project_id, ctx.is_admin())
        })
        .ok_or_else(|| subnet_not_found(id))
}

fn visible_port(app: &App, ctx: &Ctx, id: &str) -> NResult<Arc<Port>> {
    app.networks
        .ports
        .get(id)
        .filter(|p| {
            let net = app.networks.networks.get(&p.network_id);
            port_visible(p, net.as_deref(), &ctx.project_id, ctx.is_admin())
        })
        .ok_or_else(|| port_not_found(id))
}
