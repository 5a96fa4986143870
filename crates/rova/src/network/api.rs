//! Neutron v2.0 HTTP routes under `/network`: the versions and resources
//! documents, extensions, networks, subnets and ports (list with Neutron's
//! filters, `fields`, sorting and marker paging; show; create; update;
//! delete). Security groups and their rules are in the `secgroups` child
//! module (`api_secgroups.rs`), which shares this module's helpers.
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

#[path = "api_secgroups.rs"]
mod sg_api;

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

/// Extensions whose behaviour this API actually provides.
const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("project-id", "project-id field enabled", "Extension that indicates that project_id field is enabled."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("security-group", "security-group", "The security groups extension."),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not"),
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
        .merge(sg_api::routes())
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

// ---- views ----

fn network_json(app: &App, n: &Network) -> Value {
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

fn subnet_json(s: &Subnet) -> Value {
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

fn port_json(p: &Port) -> Value {
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

// ---- versions, resources, extensions ----

async fn versions(headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    axum::Json(json!({"versions": [{"id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{base}/network/v2.0/")}]}]}))
    .into_response()
}

async fn resources(_caller: Caller, headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    let res: Vec<Value> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("port", "ports"),
        ("security_group", "security-groups"),
        ("security_group_rule", "security-group-rules"),
    ]
    .iter()
    .map(|(name, coll)| {
        json!({"name": name, "collection": coll.replace('-', "_"),
            "links": [{"rel": "self", "href": format!("{base}/network/v2.0/{coll}")}]})
    })
    .collect();
    axum::Json(json!({ "resources": res })).into_response()
}

fn extension_json(alias: &str, name: &str, desc: &str) -> Value {
    json!({"alias": alias, "name": name, "description": desc,
        "updated": "2024-01-01T00:00:00-00:00", "links": []})
}

async fn extensions(_caller: Caller) -> Response {
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(a, n, d)| extension_json(a, n, d))
        .collect();
    axum::Json(json!({ "extensions": list })).into_response()
}

async fn extension(_caller: Caller, Path(alias): Path<String>) -> NResult<Response> {
    let (a, n, d) = EXTENSIONS
        .iter()
        .find(|(a, _, _)| *a == alias)
        .ok_or_else(|| {
            NeutronError::new(
                404,
                "HTTPNotFound",
                format!("Extension with alias {alias} does not exist"),
            )
        })?;
    Ok(axum::Json(json!({"extension": extension_json(a, n, d)})).into_response())
}

// ---- list handling ----

/// Parsed list query: filters (repeated values OR together), `fields`,
/// paging and sorting.
#[derive(Debug, Default)]
struct ListParams {
    filters: Vec<(String, Vec<String>)>,
    fields: Vec<String>,
    limit: Option<usize>,
    marker: Option<String>,
    /// (key, descending)
    sort: Vec<(String, bool)>,
    page_reverse: bool,
    /// The query as given, for building links.
    raw: Vec<(String, String)>,
}

fn parse_bool(key: &str, v: &str) -> NResult<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(format!(
            "Invalid input for {key}. Reason: '{v}' cannot be converted to boolean."
        ))),
    }
}

fn parse_params(raw: Option<&str>) -> NResult<ListParams> {
    let pairs: Vec<(String, String)> = raw
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut p = ListParams::default();
    let mut keys: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    for (k, v) in &pairs {
        match k.as_str() {
            "fields" => p.fields.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            "limit" => {
                let n: i64 = v.parse().map_err(|_| {
                    bad(format!(
                        "Limit must be an integer 0 or greater and not '{v}'"
                    ))
                })?;
                if n < 0 {
                    return Err(bad(format!(
                        "Limit must be an integer 0 or greater and not '{v}'"
                    )));
                }
                p.limit = (n > 0).then_some(n as usize);
            }
            "marker" => p.marker = Some(v.clone()),
            "sort_key" => keys.push(v.clone()),
            "sort_dir" => dirs.push(v.clone()),
            "page_reverse" => p.page_reverse = parse_bool("page_reverse", v)?,
            _ => match p.filters.iter_mut().find(|(fk, _)| fk == k) {
                Some((_, vals)) => vals.push(v.clone()),
                None => p.filters.push((k.clone(), vec![v.clone()])),
            },
        }
    }
    if keys.len() != dirs.len() && !dirs.is_empty() {
        return Err(bad("The number of sort_keys and sort_dirs must be same"));
    }
    for (i, k) in keys.iter().enumerate() {
        let desc = match dirs.get(i).map(String::as_str) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(d) => {
                return Err(bad(format!(
                    "{d} is invalid value for sort_dir, valid values are 'asc' and 'desc'"
                )))
            }
        };
        p.sort.push((k.clone(), desc));
    }
    p.raw = pairs;
    Ok(p)
}

/// Does a rendered attribute match one of the wanted filter values?
fn value_matches(key: &str, v: &Value, wants: &[String]) -> NResult<bool> {
    for w in wants {
        let hit = match v {
            Value::Bool(b) => parse_bool(key, w)? == *b,
            Value::Number(n) => n.to_string() == *w,
            Value::String(s) => s == w,
            Value::Array(a) => a.iter().any(|e| e.as_str() == Some(w.as_str())),
            Value::Null | Value::Object(_) => false,
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (x, y) => x.to_string().cmp(&y.to_string()),
    }
}

/// Filters, sorts, pages and projects rendered resources; `skip` names
/// filters the caller has already applied.
fn select(
    mut items: Vec<Value>,
    p: &ListParams,
    attrs: &[&str],
    skip: &[&str],
) -> NResult<(Vec<Value>, bool)> {
    for (k, wants) in &p.filters {
        if skip.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            // Nothing here carries tags.
            "tags" | "tags-any" => items.clear(),
            "not-tags" | "not-tags-any" => {}
            _ if attrs.contains(&k.as_str()) => {
                let mut kept = Vec::with_capacity(items.len());
                for it in items {
                    if value_matches(k, &it[k.as_str()], wants)? {
                        kept.push(it);
                    }
                }
                items = kept;
            }
            _ => return Err(bad(format!("{k} is invalid attribute for filtering"))),
        }
    }
    let mut sort = p.sort.clone();
    for (k, _) in &sort {
        if !attrs.contains(&k.as_str()) {
            return Err(bad(format!("{k} is invalid attribute for sort_keys")));
        }
    }
    if sort.is_empty() {
        sort.push(("created_at".into(), false));
    }
    if !sort.iter().any(|(k, _)| k == "id") {
        sort.push(("id".into(), false));
    }
    let order = |a: &Value, b: &Value| {
        for (k, desc) in &sort {
            let o = cmp_values(&a[k.as_str()], &b[k.as_str()]);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    };
    items.sort_by(order);
    if p.page_reverse {
        items.reverse();
    }
    if let Some(m) = &p.marker {
        let pos = items
            .iter()
            .position(|it| it["id"].as_str() == Some(m.as_str()));
        match pos {
            Some(i) => {
                items.drain(..=i);
            }
            None => {
                return Err(NeutronError::new(
                    404,
                    "HTTPNotFound",
                    format!("Marker {m} could not be found."),
                ))
            }
        }
    }
    let mut more = false;
    if let Some(limit) = p.limit {
        more = items.len() > limit;
        items.truncate(limit);
    }
    if p.page_reverse {
        items.reverse();
    }
    if !p.fields.is_empty() {
        items = items
            .into_iter()
            .map(|it| {
                let mut m = Map::new();
                for f in &p.fields {
                    if let Some(v) = it.get(f) {
                        m.insert(f.clone(), v.clone());
                    }
                }
                Value::Object(m)
            })
            .collect();
    }
    Ok((items, more))
}

/// A list response with Neutron's `<collection>_links` when paging.
fn list_body(
    host: &str,
    collection: &str,
    path: &str,
    items: Vec<Value>,
    more: bool,
    p: &ListParams,
) -> Value {
    let mut body = Map::new();
    let mut links = Vec::new();
    if let Some(limit) = p.limit {
        let id_of = |v: Option<&Value>| v.and_then(|v| v["id"].as_str()).map(str::to_string);
        let link = |marker: String, reverse: bool| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &p.raw {
                if !["limit", "marker", "page_reverse"].contains(&k.as_str()) {
                    s.append_pair(k, v);
                }
            }
            s.append_pair("limit", &limit.to_string());
            s.append_pair("marker", &marker);
            if reverse {
                s.append_pair("page_reverse", "True");
            }
            format!("{host}/network/v2.0/{path}?{}", s.finish())
        };
        // Going forwards, "next" follows the last item; paging backwards
        // swaps the roles.
        let (fwd_more, back_more) = if p.page_reverse {
            (p.marker.is_some(), more)
        } else {
            (more, p.marker.is_some())
        };
        if fwd_more {
            if let Some(m) = id_of(items.last()) {
                links.push(json!({"rel": "next", "href": link(m, false)}));
            }
        }
        if back_more {
            if let Some(m) = id_of(items.first()) {
                links.push(json!({"rel": "previous", "href": link(m, true)}));
            }
        }
    }
    body.insert(collection.to_string(), Value::Array(items));
    if !links.is_empty() {
        body.insert(format!("{collection}_links"), Value::Array(links));
    }
    Value::Object(body)
}

/// Applies `fields` to a single rendered resource.
fn project_fields(v: Value, raw: Option<&str>) -> Value {
    let fields: Vec<String> = raw
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "fields")
                .flat_map(|(_, v)| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        return v;
    }
    let mut m = Map::new();
    for f in fields {
        if let Some(x) = v.get(&f) {
            m.insert(f, x.clone());
        }
    }
    Value::Object(m)
}

fn one(key: &str, v: Value) -> Response {
    axum::Json(json!({ key: v })).into_response()
}

fn created(key: &str, v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(json!({ key: v }))).into_response()
}

// ---- request bodies ----

/// The object under `key` in a request body; unknown attributes are 400.
/// `read_only` attributes are named as such.
fn resource_body(
    body: &Bytes,
    key: &str,
    allowed: &[&str],
    read_only: &[&str],
) -> NResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("Resource body required"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        bad("The server could not comply with the request since it is either malformed or otherwise incorrect.")
    })?;
    let inner = v
        .get(key)
        .ok_or_else(|| bad(format!("Unable to find '{key}' in request body")))?;
    let m = inner
        .as_object()
        .ok_or_else(|| {
            bad(format!(
                "Invalid input for {key}. Reason: it must be an object."
            ))
        })?
        .clone();
    if let Some(k) = m.keys().find(|k| read_only.contains(&k.as_str())) {
        return Err(bad(format!("Cannot update read-only attribute {k}")));
    }
    let unknown: Vec<&str> = m
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(bad(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )));
    }
    Ok(m)
}

fn get_str(m: &Map<String, Value>, key: &str, max: usize) -> NResult<Option<String>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(bad(format!(
            "Invalid input for {key}. Reason: '{s}' exceeds maximum length of {max}."
        ))),
        Some(v) => Err(bad(format!(
            "Invalid input for {key}. Reason: '{v}' is not a valid string."
        ))),
    }
}

fn get_bool(m: &Map<String, Value>, key: &str) -> NResult<Option<bool>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => parse_bool(key, s).map(Some),
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(Some(n.as_u64() == Some(1)))
        }
        Some(v) => Err(bad(format!(
            "Invalid input for {key}. Reason: '{v}' cannot be converted to boolean."
        ))),
    }
}

fn get_uint(m: &Map<String, Value>, key: &str) -> NResult<Option<u64>> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| {
                bad(format!(
                    "Invalid input for {key}. Reason: '{v}' is not an integer."
                ))
            }),
    }
}

/// The only value this service supports for an attribute; anything else is
/// refused rather than silently dropped.
fn only_value(m: &Map<String, Value>, key: &str, ok: &Value, what: &str) -> NResult<()> {
    match m.get(key) {
        Some(v) if v != ok => Err(bad(format!(
            "{what} is not supported by this service ({key}).",
        ))),
        _ => Ok(()),
    }
}

/// Checks the attributes this service accepts only at their default.
fn check_port_extras(m: &Map<String, Value>) -> NResult<()> {
    if m.contains_key("port_security_enabled")
        && get_bool(m, "port_security_enabled")? != Some(true)
    {
        return Err(bad(
            "Disabling port security is not supported by this service.",
        ));
    }
    only_value(
        m,
        "allowed_address_pairs",
        &json!([]),
        "Allowed address pairs",
    )?;
    only_value(m, "extra_dhcp_opts", &json!([]), "Extra DHCP options")?;
    if let Some(v) = m.get("binding:vnic_type") {
        if v != "normal" {
            return Err(bad(format!(
                "Invalid input for binding:vnic_type. Reason: {v} is not in ['normal']."
            )));
        }
    }
    Ok(())
}

/// The owning project named in a create body (`project_id` / `tenant_id`),
/// defaulting to the caller's; only admins may name another project.
fn owner_from(m: &Map<String, Value>, ctx: &Ctx) -> NResult<String> {
    let p = get_str(m, "project_id", 255)?;
    let t = get_str(m, "tenant_id", 255)?;
    let owner = match (p, t) {
        (Some(p), Some(t)) if p != t => {
            return Err(bad("'project_id' and 'tenant_id' do not match"))
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => ctx.project_id.clone(),
    };
    if owner != ctx.project_id && !ctx.is_admin() {
        return Err(bad(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
        ));
    }
    Ok(owner)
}

fn may_change_network(n: &Network, ctx: &Ctx) -> bool {
    ctx.is_admin() || (ctx.is_member() && n.project_id == ctx.project_id)
}

// ---- networks ----

async fn list_networks(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    let items: Vec<Value> = app
        .networks
        .networks
        .filter(|n| network_visible(n, &ctx.project_id, ctx.is_admin()))
        .iter()
        .map(|n| network_json(&app, n))
        .collect();
    let (items, more) = select(items, &p, NETWORK_ATTRS, &[])?;
    Ok(axum::Json(list_body(
        &host_url(&headers),
        "networks",
        "networks",
        items,
        more,
        &p,
    ))
    .into_response())
}

async fn show_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let n = visible_network(&app, &ctx, &id)?;
    Ok(one(
        "network",
        project_fields(network_json(&app, &n), raw.as_deref()),
    ))
}

fn check_mtu(mtu: u64) -> NResult<u32> {
    if mtu < 68 {
        return Err(bad(format!(
            "Invalid input for mtu. Reason: '{mtu}' is too small - must be at least '68'."
        )));
    }
    if mtu > MAX_MTU {
        return Err(invalid_input(format!(
            "Requested MTU is too big, maximum is {MAX_MTU}."
        )));
    }
    Ok(mtu as u32)
}

async fn create_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "network", NETWORK_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_network"));
    }
    let project_id = owner_from(&m, &ctx)?;
    let shared = get_bool(&m, "shared")?.unwrap_or(false);
    if shared && !ctx.is_admin() {
        return Err(policy(
            "(rule:create_network and rule:create_network:shared)",
        ));
    }
    let external = get_bool(&m, "router:external")?.unwrap_or(false);
    if external && !ctx.is_admin() {
        return Err(policy(
            "(rule:create_network and rule:create_network:router:external)",
        ));
    }
    let mtu = match get_uint(&m, "mtu")? {
        Some(v) => check_mtu(v)?,
        None => MAX_MTU as u32,
    };
    if m.contains_key("port_security_enabled")
        && get_bool(&m, "port_security_enabled")? != Some(true)
    {
        return Err(bad(
            "Disabling port security is not supported by this service.",
        ));
    }
    only_value(
        &m,
        "availability_zone_hints",
        &json!([]),
        "Availability zone hints",
    )?;
    let now = app.clock.now();
    let n = Network {
        id: uuid::Uuid::new_v4().to_string(),
        name: get_str(&m, "name", 255)?.unwrap_or_default(),
        project_id,
        shared,
        admin_state_up: get_bool(&m, "admin_state_up")?.unwrap_or(true),
        status: "ACTIVE".into(),
        mtu,
        router_external: external,
        description: get_str(&m, "description", 255)?.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    let id = n.id.clone();
    let n = app
        .networks
        .networks
        .insert_new(
            &id,
            n,
            Fault::conflict(format!("Network {id} already exists.")),
        )
        .await?;
    Ok(created("network", network_json(&app, &n)))
}

async fn update_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_network(&app, &ctx, &id)?;
    let m = resource_body(
        &body,
        "network",
        NETWORK_UPDATE,
        &[
            "id",
            "tenant_id",
            "project_id",
            "status",
            "subnets",
            "availability_zone_hints",
            "created_at",
            "updated_at",
        ],
    )?;
    if !may_change_network(&cur, &ctx) {
        return Err(policy("rule:update_network"));
    }
    let shared = get_bool(&m, "shared")?;
    if shared.is_some_and(|s| s != cur.shared) && !ctx.is_admin() {
        return Err(policy(
            "(rule:update_network and rule:update_network:shared)",
        ));
    }
    let external = get_bool(&m, "router:external")?;
    if external.is_some_and(|e| e != cur.router_external) && !ctx.is_admin() {
        return Err(policy(
            "(rule:update_network and rule:update_network:router:external)",
        ));
    }
    if shared == Some(false) && cur.shared {
        let foreign = app
            .networks
            .ports_on(&id)
            .iter()
            .any(|p| p.project_id != cur.project_id);
        if foreign {
            return Err(NeutronError::new(409, "InvalidSharedSetting", format!(
                "Unable to reconfigure sharing settings for network {id}. Multiple tenants are using it."
            )));
        }
    }
    let mtu = get_uint(&m, "mtu")?.map(check_mtu).transpose()?;
    if m.contains_key("port_security_enabled")
        && get_bool(&m, "port_security_enabled")? != Some(true)
    {
        return Err(bad(
            "Disabling port security is not supported by this service.",
        ));
    }
    let name = get_str(&m, "name", 255)?;
    let description = get_str(&m, "description", 255)?;
    let admin_state_up = get_bool(&m, "admin_state_up")?;
    let now = app.clock.now();
    let (n, _) = app
        .networks
        .networks
        .update(
            &id,
            || Fault::not_found(format!("Network {id} could not be found.")),
            |n| {
                if let Some(v) = name {
                    n.name = v;
                }
                if let Some(v) = description {
                    n.description = v;
                }
                if let Some(v) = admin_state_up {
                    n.admin_state_up = v;
                }
                if let Some(v) = shared {
                    n.shared = v;
                }
                if let Some(v) = external {
                    n.router_external = v;
                }
                if let Some(v) = mtu {
                    n.mtu = v;
                }
                n.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(one("network", network_json(&app, &n)))
}

async fn delete_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let n = visible_network(&app, &ctx, &id)?;
    if !may_change_network(&n, &ctx) {
        return Err(policy("rule:delete_network"));
    }
    let _guard = app.networks.topology_lock().await;
    if !app.networks.ports_on(&id).is_empty() {
        return Err(NeutronError::new(409, "NetworkInUse", format!(
            "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
        )));
    }
    app.networks.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- subnets ----

async fn list_subnets(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    let items: Vec<Value> = app
        .networks
        .subnets
        .filter(|s| {
            let net = app.networks.networks.get(&s.network_id);
            subnet_visible(s, net.as_deref(), &ctx.project_id, ctx.is_admin())
        })
        .iter()
        .map(|s| subnet_json(s))
        .collect();
    let (items, more) = select(items, &p, SUBNET_ATTRS, &[])?;
    Ok(axum::Json(list_body(
        &host_url(&headers),
        "subnets",
        "subnets",
        items,
        more,
        &p,
    ))
    .into_response())
}

async fn show_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let s = visible_subnet(&app, &ctx, &id)?;
    Ok(one(
        "subnet",
        project_fields(subnet_json(&s), raw.as_deref()),
    ))
}

fn parse_ip(key: &str, v: &str) -> NResult<IpAddr> {
    v.parse().map_err(|_| {
        bad(format!(
            "Invalid input for {key}. Reason: '{v}' is not a valid IP address."
        ))
    })
}

/// The gateway from a body: absent means the first host address, `null`
/// means none.
fn gateway_from(
    m: &Map<String, Value>,
    cidr: &str,
    net_addr: IpAddr,
) -> NResult<Option<Option<IpAddr>>> {
    match m.get("gateway_ip") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => {
            let ip = parse_ip("gateway_ip", s)?;
            if !cidr_contains(cidr, ip) || ip == net_addr {
                return Err(invalid_input(format!(
                    "Gateway is not valid on subnet ({ip} for {cidr})."
                )));
            }
            Ok(Some(Some(ip)))
        }
        Some(v) => Err(bad(format!(
            "Invalid input for gateway_ip. Reason: '{v}' is not a valid IP address."
        ))),
    }
}

fn pool_str(p: &AllocationPool) -> String {
    format!("{}-{}", p.start, p.end)
}

/// Validates explicit allocation pools against the CIDR, each other and
/// the gateway.
fn check_pools(v: &Value, cidr: &str, gateway: Option<IpAddr>) -> NResult<Vec<AllocationPool>> {
    let arr = v.as_array().ok_or_else(|| {
        bad(format!(
            "Invalid input for allocation_pools. Reason: '{v}' is not a list."
        ))
    })?;
    let mut pools: Vec<(IpAddr, IpAddr, AllocationPool)> = Vec::new();
    for p in arr {
        let (Some(start), Some(end)) = (
            p.get("start").and_then(Value::as_str),
            p.get("end").and_then(Value::as_str),
        ) else {
            return Err(bad(format!(
                "Invalid input for allocation_pools. Reason: {p} must have 'start' and 'end'."
            )));
        };
        let pool = AllocationPool {
            start: start.to_string(),
            end: end.to_string(),
        };
        let (Ok(s), Ok(e)) = (start.parse::<IpAddr>(), end.parse::<IpAddr>()) else {
            return Err(NeutronError::new(
                400,
                "InvalidAllocationPool",
                format!("The allocation pool {} is not valid.", pool_str(&pool)),
            ));
        };
        if s.is_ipv4() != e.is_ipv4() || ip_cmp(s, e) == Ordering::Greater {
            return Err(NeutronError::new(
                400,
                "InvalidAllocationPool",
                format!("The allocation pool {} is not valid.", pool_str(&pool)),
            ));
        }
        if !cidr_contains(cidr, s) || !cidr_contains(cidr, e) {
            return Err(NeutronError::new(
                400,
                "OutOfBoundsAllocationPool",
                format!(
                    "The allocation pool {} spans beyond the subnet cidr {cidr}.",
                    pool_str(&pool)
                ),
            ));
        }
        pools.push((s, e, pool));
    }
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            if ip_cmp(a.0, b.1) != Ordering::Greater && ip_cmp(b.0, a.1) != Ordering::Greater {
                return Err(NeutronError::new(
                    400,
                    "OverlappingAllocationPools",
                    format!(
                        "Found overlapping allocation pools: {} and {} for subnet {cidr}.",
                        pool_str(&a.2),
                        pool_str(&b.2)
                    ),
                ));
            }
        }
    }
    if let Some(g) = gateway {
        if let Some(p) = pools.iter().find(|(s, e, _)| {
            ip_cmp(*s, g) != Ordering::Greater && ip_cmp(g, *e) != Ordering::Greater
        }) {
            return Err(NeutronError::new(
                409,
                "GatewayConflictWithAllocationPools",
                format!(
                    "Gateway ip {g} conflicts with allocation pool {}",
                    pool_str(&p.2)
                ),
            ));
        }
    }
    Ok(pools.into_iter().map(|(_, _, p)| p).collect())
}

fn check_dns(v: &Value) -> NResult<Vec<String>> {
    let arr = v.as_array().ok_or_else(|| {
        bad(format!(
            "Invalid input for dns_nameservers. Reason: '{v}' is not a list."
        ))
    })?;
    let mut out: Vec<String> = Vec::new();
    for d in arr {
        let s = d.as_str().unwrap_or("");
        let ip: IpAddr = s.parse().map_err(|_| {
            bad(format!(
                "Invalid input for dns_nameservers. Reason: '{d}' is not a valid nameserver."
            ))
        })?;
        let canon = ip.to_string();
        if out.contains(&canon) {
            return Err(bad(format!(
                "Invalid input for dns_nameservers. Reason: Duplicate nameserver '{s}'."
            )));
        }
        out.push(canon);
    }
    if out.len() > MAX_DNS {
        return Err(NeutronError::new(400, "DNSNameServersExhausted", format!(
            "Unable to complete operation for subnet. The number of DNS nameservers exceeds the limit {MAX_DNS}."
        )));
    }
    Ok(out)
}

fn ipv6_mode(m: &Map<String, Value>, key: &str) -> NResult<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if IPV6_MODES.contains(&s.as_str()) => Ok(Some(s.clone())),
        Some(v) => Err(bad(format!(
            "Invalid input for {key}. Reason: {v} is not in {IPV6_MODES:?}."
        ))),
    }
}

/// Everything `POST /subnets` decides from the body and the network.
fn subnet_from_body(
    m: &Map<String, Value>,
    net: &Network,
    siblings: &[Arc<Subnet>],
    project_id: String,
    now: chrono::DateTime<chrono::Utc>,
) -> NResult<Subnet> {
    if m.get("subnetpool_id").is_some_and(|v| !v.is_null())
        || get_bool(m, "use_default_subnetpool")? == Some(true)
    {
        return Err(bad("Subnet pools are not supported by this service."));
    }
    let ip_version = match m.get("ip_version") {
        None => {
            return Err(bad(
                "Failed to parse request. Required attribute 'ip_version' not specified",
            ))
        }
        Some(v) => match v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        {
            Some(4) => 4u8,
            Some(6) => 6u8,
            _ => {
                return Err(bad(format!(
                    "Invalid input for ip_version. Reason: {v} is not in [4, 6]."
                )))
            }
        },
    };
    let cidr = match m.get("cidr") {
        None | Some(Value::Null) => {
            return Err(bad(
                "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(bad(format!(
                "Invalid input for cidr. Reason: '{v}' is not a valid IP subnet."
            )))
        }
    };
    let (ip, len) = parse_cidr(&cidr).ok_or_else(|| {
        bad(format!(
            "Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet."
        ))
    })?;
    let net_addr = cidr_network(&cidr).unwrap_or(ip);
    if net_addr != ip {
        return Err(bad(format!(
            "Invalid input for cidr. Reason: '{cidr}' isn't a recommended CIDR, use '{net_addr}/{len}'."
        )));
    }
    let v6 = ip.is_ipv6();
    if v6 != (ip_version == 6) {
        return Err(invalid_input(format!(
            "cidr '{cidr}' does not match the ip_version '{ip_version}'"
        )));
    }
    if super::default_pool(&cidr).is_none() {
        return Err(invalid_input(format!(
            "The prefix length of {cidr} leaves no addresses to allocate."
        )));
    }
    if let Some(other) = siblings.iter().find(|s| cidrs_overlap(&s.cidr, &cidr)) {
        return Err(invalid_input(format!(
            "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet ({}).",
            net.id, other.id
        )));
    }
    let gateway = gateway_from(m, &cidr, net_addr)?.unwrap_or_else(|| Some(ip_offset(net_addr, 1)));
    let allocation_pools = match m.get("allocation_pools") {
        None | Some(Value::Null) => pools_around_gateway(&cidr, gateway),
        Some(v) => check_pools(v, &cidr, gateway)?,
    };
    let dns_nameservers = match m.get("dns_nameservers") {
        None | Some(Value::Null) => vec![],
        Some(v) => check_dns(v)?,
    };
    only_value(m, "host_routes", &json!([]), "Host routes")?;
    let addr_mode = ipv6_mode(m, "ipv6_address_mode")?;
    let ra_mode = ipv6_mode(m, "ipv6_ra_mode")?;
    if !v6 && (addr_mode.is_some() || ra_mode.is_some()) {
        return Err(invalid_input(
            "ipv6_ra_mode and ipv6_address_mode are not valid when ip_version is 4",
        ));
    }
    if let (Some(a), Some(r)) = (&addr_mode, &ra_mode) {
        if a != r {
            return Err(invalid_input(format!(
                "ipv6_ra_mode set to '{r}' with ipv6_address_mode set to '{a}' is not valid. If both attributes are set, they must be the same value"
            )));
        }
    }
    Ok(Subnet {
        id: uuid::Uuid::new_v4().to_string(),
        name: get_str(m, "name", 255)?.unwrap_or_default(),
        network_id: net.id.clone(),
        project_id,
        cidr,
        ip_version,
        gateway_ip: gateway.map(|g| g.to_string()),
        allocation_pools,
        enable_dhcp: get_bool(m, "enable_dhcp")?.unwrap_or(true),
        dns_nameservers,
        ipv6_address_mode: addr_mode,
        ipv6_ra_mode: ra_mode,
        description: get_str(m, "description", 255)?.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    })
}

async fn create_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "subnet", SUBNET_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_subnet"));
    }
    let net_id = get_str(&m, "network_id", 255)?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let net = visible_network(&app, &ctx, &net_id)?;
    if !may_change_network(&net, &ctx) {
        return Err(policy("rule:create_subnet"));
    }
    let project_id = owner_from(&m, &ctx)?;
    let _guard = app.networks.topology_lock().await;
    let siblings = app.networks.subnets_of(&net_id);
    let sn = subnet_from_body(&m, &net, &siblings, project_id, app.clock.now())?;
    let id = sn.id.clone();
    let sn = app
        .networks
        .subnets
        .insert_new(
            &id,
            sn,
            Fault::conflict(format!("Subnet {id} already exists.")),
        )
        .await?;
    Ok(created("subnet", subnet_json(&sn)))
}

fn may_change_subnet(app: &App, s: &Subnet, ctx: &Ctx) -> bool {
    if ctx.is_admin() {
        return true;
    }
    let net_owner = app
        .networks
        .networks
        .get(&s.network_id)
        .map(|n| n.project_id.clone());
    ctx.is_member()
        && (s.project_id == ctx.project_id || net_owner.as_deref() == Some(ctx.project_id.as_str()))
}

async fn update_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_subnet(&app, &ctx, &id)?;
    let m = resource_body(
        &body,
        "subnet",
        SUBNET_UPDATE,
        &[
            "id",
            "network_id",
            "tenant_id",
            "project_id",
            "cidr",
            "ip_version",
            "ipv6_address_mode",
            "ipv6_ra_mode",
            "subnetpool_id",
            "created_at",
            "updated_at",
        ],
    )?;
    if !may_change_subnet(&app, &cur, &ctx) {
        return Err(policy("rule:update_subnet"));
    }
    let net_addr =
        cidr_network(&cur.cidr).ok_or_else(|| Fault::internal("stored subnet has a bad cidr"))?;
    let gateway: Option<IpAddr> = match gateway_from(&m, &cur.cidr, net_addr)? {
        Some(g) => g,
        None => cur.gateway_ip.as_deref().and_then(|g| g.parse().ok()),
    };
    let pools = match m.get("allocation_pools") {
        None => None,
        Some(v) => Some(check_pools(v, &cur.cidr, gateway)?),
    };
    if m.contains_key("gateway_ip") {
        if let Some(g) = gateway {
            let check_against = pools
                .clone()
                .unwrap_or_else(|| cur.allocation_pools.clone());
            check_pools(
                &serde_json::to_value(&check_against).unwrap_or(Value::Null),
                &cur.cidr,
                Some(g),
            )?;
            let taken = app.networks.ports_in_subnet(&id).iter().any(|p| {
                p.fixed_ips
                    .iter()
                    .any(|ip| ip.subnet_id == id && ip.ip_address == g.to_string())
            });
            if taken {
                return Err(NeutronError::new(
                    409,
                    "IpAddressInUse",
                    format!(
                    "Unable to complete operation for network {}. The IP address {g} is in use.",
                    cur.network_id
                ),
                ));
            }
        }
    }
    let dns = match m.get("dns_nameservers") {
        None => None,
        Some(Value::Null) => Some(vec![]),
        Some(v) => Some(check_dns(v)?),
    };
    only_value(&m, "host_routes", &json!([]), "Host routes")?;
    let name = get_str(&m, "name", 255)?;
    let description = get_str(&m, "description", 255)?;
    let enable_dhcp = get_bool(&m, "enable_dhcp")?;
    let gateway_given = m.contains_key("gateway_ip");
    let now = app.clock.now();
    let (s, _) = app
        .networks
        .subnets
        .update(
            &id,
            || Fault::not_found(format!("Subnet {id} could not be found.")),
            |s| {
                if let Some(v) = name {
                    s.name = v;
                }
                if let Some(v) = description {
                    s.description = v;
                }
                if let Some(v) = enable_dhcp {
                    s.enable_dhcp = v;
                }
                if gateway_given {
                    s.gateway_ip = gateway.map(|g| g.to_string());
                }
                if let Some(v) = pools {
                    s.allocation_pools = v;
                }
                if let Some(v) = dns {
                    s.dns_nameservers = v;
                }
                s.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(one("subnet", subnet_json(&s)))
}

async fn delete_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let s = visible_subnet(&app, &ctx, &id)?;
    if !may_change_subnet(&app, &s, &ctx) {
        return Err(policy("rule:delete_subnet"));
    }
    let _guard = app.networks.topology_lock().await;
    if !app.networks.ports_in_subnet(&id).is_empty() {
        return Err(NeutronError::new(409, "SubnetInUse", format!(
            "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
        )));
    }
    app.networks.remove_subnet(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- ports ----

/// `fixed_ips=ip_address=X` / `fixed_ips=subnet_id=Y`: OR within a key,
/// AND across keys, as Neutron does.
fn fixed_ip_filter(p: &ListParams) -> NResult<Option<(Vec<String>, Vec<String>)>> {
    let Some((_, vals)) = p.filters.iter().find(|(k, _)| k == "fixed_ips") else {
        return Ok(None);
    };
    let (mut ips, mut subnets) = (Vec::new(), Vec::new());
    for v in vals {
        match v.split_once('=') {
            Some(("ip_address", ip)) => ips.push(ip.to_string()),
            Some(("subnet_id", s)) => subnets.push(s.to_string()),
            _ => {
                return Err(bad(format!(
                    "Invalid input for fixed_ips. Reason: '{v}' is not a valid fixed_ips filter."
                )))
            }
        }
    }
    Ok(Some((ips, subnets)))
}

fn port_has_fixed_ip(p: &Port, ips: &[String], subnets: &[String]) -> bool {
    p.fixed_ips.iter().any(|f| {
        (ips.is_empty() || ips.contains(&f.ip_address))
            && (subnets.is_empty() || subnets.contains(&f.subnet_id))
    })
}

async fn list_ports(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    let fip = fixed_ip_filter(&p)?;
    let items: Vec<Value> = app
        .networks
        .ports
        .filter(|port| {
            let net = app.networks.networks.get(&port.network_id);
            port_visible(port, net.as_deref(), &ctx.project_id, ctx.is_admin())
                && fip
                    .as_ref()
                    .is_none_or(|(ips, sns)| port_has_fixed_ip(port, ips, sns))
        })
        .iter()
        .map(|port| port_json(port))
        .collect();
    let (items, more) = select(items, &p, PORT_ATTRS, &["fixed_ips"])?;
    Ok(axum::Json(list_body(
        &host_url(&headers),
        "ports",
        "ports",
        items,
        more,
        &p,
    ))
    .into_response())
}

async fn show_port(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let port = visible_port(&app, &ctx, &id)?;
    Ok(one(
        "port",
        project_fields(port_json(&port), raw.as_deref()),
    ))
}

/// Resolves a `fixed_ips` request against a network's subnets.
fn parse_fixed_ips(app: &App, net_id: &str, v: &Value) -> NResult<IpWants> {
    let arr = v.as_array().ok_or_else(|| {
        bad(format!(
            "Invalid input for fixed_ips. Reason: '{v}' is not a list."
        ))
    })?;
    let subnets = app.networks.subnets_of(net_id);
    let mut out: IpWants = Vec::new();
    for entry in arr {
        let obj = entry.as_object().ok_or_else(|| {
            bad(format!(
                "Invalid input for fixed_ips. Reason: '{entry}' is not a dictionary."
            ))
        })?;
        if let Some(k) = obj.keys().find(|k| *k != "subnet_id" && *k != "ip_address") {
            return Err(bad(format!(
                "Invalid input for fixed_ips. Reason: Unrecognized attribute '{k}'."
            )));
        }
        let ip = match obj.get("ip_address") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(parse_ip("fixed_ips", s)?),
            Some(other) => {
                return Err(bad(format!(
                    "Invalid input for fixed_ips. Reason: '{other}' is not a valid IP address."
                )))
            }
        };
        let subnet = match obj.get("subnet_id").and_then(Value::as_str) {
            Some(sid) => {
                let sn = app
                    .networks
                    .subnets
                    .get(sid)
                    .ok_or_else(|| subnet_not_found(sid))?;
                if sn.network_id != net_id {
                    return Err(invalid_input(format!(
                        "Failed to create port on network {net_id}, because fixed_ips included invalid subnet {sid}."
                    )));
                }
                if let Some(ip) = ip {
                    if !cidr_contains(&sn.cidr, ip) {
                        return Err(NeutronError::new(
                            400,
                            "InvalidIpForSubnet",
                            format!("IP address {ip} is not a valid IP for the specified subnet."),
                        ));
                    }
                }
                sn
            }
            None => {
                let ip = ip.ok_or_else(|| bad("Invalid input for fixed_ips. Reason: each entry needs a subnet_id or an ip_address."))?;
                subnets
                    .iter()
                    .find(|s| cidr_contains(&s.cidr, ip))
                    .cloned()
                    .ok_or_else(|| NeutronError::new(400, "InvalidIpForNetwork", format!(
                        "IP address {ip} is not a valid IP for any of the subnets on the specified network."
                    )))?
            }
        };
        out.push((subnet, ip));
    }
    Ok(out)
}

fn normalize_mac(key: &str, v: &Value) -> NResult<String> {
    let s = v.as_str().unwrap_or("");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    let first = parts
        .first()
        .and_then(|p| u8::from_str_radix(p, 16).ok())
        .unwrap_or(1);
    if !ok || first & 1 == 1 || s.eq_ignore_ascii_case("00:00:00:00:00:00") {
        return Err(bad(format!(
            "Invalid input for {key}. Reason: '{s}' is not a valid MAC address."
        )));
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

fn mac_in_use(app: &App, net_id: &str, mac: &str, except: Option<&str>) -> bool {
    app.networks
        .ports_on(net_id)
        .iter()
        .any(|p| p.mac_address == mac && Some(p.id.as_str()) != except)
}

fn mac_conflict(net_id: &str, mac: &str) -> NeutronError {
    NeutronError::new(
        409,
        "MacAddressInUse",
        format!(
            "Unable to complete operation for network {net_id}. The mac address {mac} is in use."
        ),
    )
}

fn port_status(device_id: &str) -> String {
    if device_id.is_empty() {
        "DOWN"
    } else {
        "ACTIVE"
    }
    .to_string()
}

async fn create_port(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "port", PORT_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_port"));
    }
    let net_id = get_str(&m, "network_id", 255)?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let net = visible_network(&app, &ctx, &net_id)?;
    let project_id = owner_from(&m, &ctx)?;
    if !ctx.is_admin() && !net.shared && net.project_id != project_id {
        return Err(NeutronError::new(
            403,
            "HTTPForbidden",
            format!("Tenant {project_id} not allowed to create port on this network"),
        ));
    }
    check_port_extras(&m)?;
    let mac = match m.get("mac_address") {
        None | Some(Value::Null) => None,
        Some(v) => {
            if !ctx.is_admin() && net.project_id != ctx.project_id {
                return Err(policy(
                    "(rule:create_port and rule:create_port:mac_address)",
                ));
            }
            Some(normalize_mac("mac_address", v)?)
        }
    };
    let name = get_str(&m, "name", 255)?.unwrap_or_default();
    let description = get_str(&m, "description", 255)?.unwrap_or_default();
    let device_id = get_str(&m, "device_id", 255)?.unwrap_or_default();
    let device_owner = get_str(&m, "device_owner", 255)?.unwrap_or_default();
    let admin_state_up = get_bool(&m, "admin_state_up")?.unwrap_or(true);
    let sg_request = m
        .get("security_groups")
        .map(super::secgroups::parse_group_ids)
        .transpose()?;

    let _guard = app.networks.topology_lock().await;
    // Neutron gives a port its project's default group unless told
    // otherwise (network-owned ports such as DHCP get none).
    let security_groups = match sg_request {
        Some(ids) => app
            .networks
            .check_port_groups(&project_id, ctx.is_admin(), &ids)?,
        None if device_owner.starts_with("network:") => vec![],
        None => vec![app
            .networks
            .ensure_default_group(&project_id, app.clock.now())
            .await?
            .id
            .clone()],
    };
    let wants: IpWants = match m.get("fixed_ips") {
        None | Some(Value::Null) => app
            .networks
            .subnets_of(&net_id)
            .into_iter()
            .map(|s| (s, None))
            .collect(),
        Some(v) => parse_fixed_ips(&app, &net_id, v)?,
    };
    let mac = match mac {
        Some(mac) if mac_in_use(&app, &net_id, &mac, None) => {
            return Err(mac_conflict(&net_id, &mac))
        }
        Some(mac) => mac,
        None => {
            let mut mac = random_mac();
            for _ in 0..16 {
                if !mac_in_use(&app, &net_id, &mac, None) {
                    break;
                }
                mac = random_mac();
            }
            mac
        }
    };
    let fixed_ips = app.networks.reserve_ips(&wants).map_err(ip_fault)?;
    let now = app.clock.now();
    let port = Port {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        network_id: net_id,
        project_id,
        mac_address: mac,
        fixed_ips,
        status: port_status(&device_id),
        device_id,
        device_owner,
        admin_state_up,
        description,
        security_groups,
        created_at: now,
        updated_at: now,
    };
    let port = app.networks.insert_port(port).await?;
    Ok(created("port", port_json(&port)))
}

fn may_change_port(app: &App, p: &Port, ctx: &Ctx) -> bool {
    if ctx.is_admin() {
        return true;
    }
    let net_owner = app
        .networks
        .networks
        .get(&p.network_id)
        .map(|n| n.project_id.clone());
    ctx.is_member()
        && (p.project_id == ctx.project_id || net_owner.as_deref() == Some(ctx.project_id.as_str()))
}

/// Splits wanted addresses into those the port already holds (kept as
/// they are) and those to reserve.
fn plan_readdress(current: &[PortIp], wants: IpWants) -> (Vec<PortIp>, IpWants) {
    let mut kept: Vec<PortIp> = Vec::new();
    let mut fresh: IpWants = Vec::new();
    for (sn, ip) in wants {
        let held = current.iter().find(|c| {
            c.subnet_id == sn.id
                && !kept.contains(c)
                && ip.is_none_or(|ip| c.ip_address.parse::<IpAddr>().ok() == Some(ip))
        });
        match held {
            Some(c) => kept.push(c.clone()),
            None => fresh.push((sn, ip)),
        }
    }
    (kept, fresh)
}

async fn update_port(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_port(&app, &ctx, &id)?;
    let m = resource_body(
        &body,
        "port",
        PORT_UPDATE,
        &[
            "id",
            "network_id",
            "tenant_id",
            "project_id",
            "status",
            "created_at",
            "updated_at",
            "revision_number",
        ],
    )?;
    if !may_change_port(&app, &cur, &ctx) {
        return Err(policy("rule:update_port"));
    }
    check_port_extras(&m)?;
    let sg_request = m
        .get("security_groups")
        .map(super::secgroups::parse_group_ids)
        .transpose()?;
    let name = get_str(&m, "name", 255)?;
    let description = get_str(&m, "description", 255)?;
    let device_id = get_str(&m, "device_id", 255)?;
    let device_owner = get_str(&m, "device_owner", 255)?;
    let admin_state_up = get_bool(&m, "admin_state_up")?;
    let mac = match m.get("mac_address") {
        None => None,
        Some(v) => {
            let mac = normalize_mac("mac_address", v)?;
            if mac != cur.mac_address {
                if !ctx.is_admin() {
                    return Err(policy(
                        "(rule:update_port and rule:update_port:mac_address)",
                    ));
                }
                if !cur.device_id.is_empty() && cur.device_owner.starts_with("compute:") {
                    return Err(NeutronError::new(409, "PortBound", format!(
                        "Unable to complete operation on port {id}, port is already bound, port type: normal, old_mac {}, new_mac {mac}.",
                        cur.mac_address
                    )));
                }
                if mac_in_use(&app, &cur.network_id, &mac, Some(&id)) {
                    return Err(mac_conflict(&cur.network_id, &mac));
                }
            }
            Some(mac)
        }
    };
    let _guard = app.networks.topology_lock().await;
    let new_sgs = match sg_request {
        Some(ids) => Some(
            app.networks
                .check_port_groups(&cur.project_id, ctx.is_admin(), &ids)?,
        ),
        None => None,
    };
    let (new_ips, reserved) = match m.get("fixed_ips") {
        None => (None, Vec::new()),
        Some(v) => {
            let wants = if v.is_null() {
                Vec::new()
            } else {
                parse_fixed_ips(&app, &cur.network_id, v)?
            };
            let current = app
                .networks
                .ports
                .get(&id)
                .map(|p| p.fixed_ips.clone())
                .unwrap_or_default();
            let (mut kept, fresh) = plan_readdress(&current, wants);
            let reserved = app.networks.reserve_ips(&fresh).map_err(ip_fault)?;
            kept.extend(reserved.iter().cloned());
            (Some(kept), reserved)
        }
    };
    let now = app.clock.now();
    let port = app
        .networks
        .update_port(&id, &reserved, |p| {
            if let Some(v) = name {
                p.name = v;
            }
            if let Some(v) = description {
                p.description = v;
            }
            if let Some(v) = admin_state_up {
                p.admin_state_up = v;
            }
            if let Some(v) = device_id {
                p.device_id = v;
            }
            if let Some(v) = device_owner {
                p.device_owner = v;
            }
            if let Some(v) = mac {
                p.mac_address = v;
            }
            if let Some(v) = new_ips {
                p.fixed_ips = v;
            }
            if let Some(v) = new_sgs {
                p.security_groups = v;
            }
            p.status = port_status(&p.device_id);
            p.updated_at = now;
            Ok(())
        })
        .await
        .map_err(|f| {
            if f.code == 404 {
                port_not_found(&id)
            } else {
                f.into()
            }
        })?;
    Ok(one("port", port_json(&port)))
}

async fn delete_port(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let p = visible_port(&app, &ctx, &id)?;
    if !may_change_port(&app, &p, &ctx) {
        return Err(policy("rule:delete_port"));
    }
    let _guard = app.networks.topology_lock().await;
    app.networks.delete_port(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn net(id: &str, owner: &str, shared: bool) -> Network {
        Network {
            id: id.into(),
            name: id.into(),
            project_id: owner.into(),
            shared,
            admin_state_up: true,
            status: "ACTIVE".into(),
            mtu: 1450,
            router_external: false,
            description: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn subnet(id: &str, net: &str, owner: &str, cidr: &str) -> Subnet {
        Subnet {
            id: id.into(),
            name: id.into(),
            network_id: net.into(),
            project_id: owner.into(),
            cidr: cidr.into(),
            ip_version: 4,
            gateway_ip: None,
            allocation_pools: vec![],
            enable_dhcp: true,
            dns_nameservers: vec![],
            ipv6_address_mode: None,
            ipv6_ra_mode: None,
            description: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn port(owner: &str, ips: &[(&str, &str)]) -> Port {
        Port {
            id: "p".into(),
            name: String::new(),
            network_id: "n".into(),
            project_id: owner.into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            fixed_ips: ips
                .iter()
                .map(|(s, i)| PortIp {
                    subnet_id: s.to_string(),
                    ip_address: i.to_string(),
                })
                .collect(),
            device_id: String::new(),
            device_owner: String::new(),
            status: "DOWN".into(),
            admin_state_up: true,
            description: String::new(),
            security_groups: vec![],
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn visibility_rules() {
        let own = net("a", "me", false);
        let shared = net("b", "other", true);
        let foreign = net("c", "other", false);
        let mut external = net("d", "other", false);
        external.router_external = true;
        assert!(network_visible(&own, "me", false));
        assert!(network_visible(&shared, "me", false));
        assert!(network_visible(&external, "me", false));
        assert!(!network_visible(&foreign, "me", false));
        assert!(network_visible(&foreign, "me", true));
        let s = subnet("s", "b", "other", "10.0.0.0/24");
        assert!(subnet_visible(&s, Some(&shared), "me", false));
        assert!(!subnet_visible(&s, Some(&foreign), "me", false));
        let p = port("other", &[]);
        assert!(!port_visible(&p, Some(&shared), "me", false));
        assert!(port_visible(&p, Some(&own), "me", false));
        assert!(port_visible(&p, None, "other", false));
    }

    fn params(q: &str) -> ListParams {
        parse_params(Some(q)).expect("params")
    }

    #[test]
    fn filters_or_within_a_key_and_validate_names() {
        let items = vec![
            json!({"id": "1", "name": "a", "shared": true, "mtu": 1450, "subnets": ["x"], "created_at": "1"}),
            json!({"id": "2", "name": "b", "shared": false, "mtu": 1400, "subnets": [], "created_at": "2"}),
            json!({"id": "3", "name": "c", "shared": false, "mtu": 1450, "subnets": [], "created_at": "3"}),
        ];
        let attrs = &["id", "name", "shared", "mtu", "subnets", "created_at"];
        let ids = |v: &[Value]| {
            v.iter()
                .map(|i| i["id"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        let (r, _) = select(items.clone(), &params("name=a&name=c"), attrs, &[]).expect("ok");
        assert_eq!(ids(&r), ["1", "3"]);
        let (r, _) =
            select(items.clone(), &params("shared=False&mtu=1450"), attrs, &[]).expect("ok");
        assert_eq!(ids(&r), ["3"]);
        let (r, _) = select(items.clone(), &params("subnets=x"), attrs, &[]).expect("ok");
        assert_eq!(ids(&r), ["1"]);
        assert!(select(items.clone(), &params("bogus=1"), attrs, &[]).is_err());
        assert!(select(items.clone(), &params("shared=maybe"), attrs, &[]).is_err());
        let (r, more) = select(items.clone(), &params("limit=2"), attrs, &[]).expect("ok");
        assert_eq!(
            (ids(&r), more),
            (vec!["1".to_string(), "2".to_string()], true)
        );
        let (r, more) = select(items.clone(), &params("limit=2&marker=2"), attrs, &[]).expect("ok");
        assert_eq!((ids(&r), more), (vec!["3".to_string()], false));
        let (r, _) = select(
            items.clone(),
            &params("sort_key=name&sort_dir=desc"),
            attrs,
            &[],
        )
        .expect("ok");
        assert_eq!(ids(&r), ["3", "2", "1"]);
        let (r, _) = select(items.clone(), &params("fields=id&name=b"), attrs, &[]).expect("ok");
        assert_eq!(r, vec![json!({"id": "2"})]);
        assert!(select(items, &params("marker=nope"), attrs, &[]).is_err());
    }

    #[test]
    fn fixed_ip_filter_semantics() {
        let p = port("me", &[("s1", "10.0.0.5"), ("s2", "fd00::5")]);
        assert!(port_has_fixed_ip(&p, &["10.0.0.5".into()], &[]));
        assert!(port_has_fixed_ip(&p, &["10.0.0.5".into()], &["s1".into()]));
        assert!(!port_has_fixed_ip(&p, &["10.0.0.5".into()], &["s2".into()]));
        assert!(port_has_fixed_ip(&p, &[], &["s2".into()]));
        let f = fixed_ip_filter(&params(
            "fixed_ips=ip_address%3D10.0.0.5&fixed_ips=subnet_id%3Ds1",
        ))
        .expect("ok");
        assert_eq!(
            f,
            Some((vec!["10.0.0.5".to_string()], vec!["s1".to_string()]))
        );
        assert!(fixed_ip_filter(&params("fixed_ips=bogus")).is_err());
    }

    #[test]
    fn subnet_body_defaults_and_checks() {
        let n = net("n", "me", false);
        let now = Utc::now();
        let mk = |v: Value, siblings: &[Arc<Subnet>]| {
            subnet_from_body(v.as_object().expect("obj"), &n, siblings, "me".into(), now)
        };
        let s = mk(json!({"cidr": "10.1.0.0/24", "ip_version": 4}), &[]).expect("valid");
        assert_eq!(s.gateway_ip.as_deref(), Some("10.1.0.1"));
        assert_eq!(s.allocation_pools[0].start, "10.1.0.2");
        assert_eq!(s.allocation_pools[0].end, "10.1.0.254");
        let s = mk(
            json!({"cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": null}),
            &[],
        )
        .expect("valid");
        assert_eq!(s.gateway_ip, None);
        assert_eq!(s.allocation_pools[0].start, "10.1.0.1");
        let code = |v: Value, sib: &[Arc<Subnet>]| mk(v, sib).map(|_| ()).unwrap_err().status;
        assert_eq!(code(json!({"cidr": "10.1.0.0/24"}), &[]), 400);
        assert_eq!(
            code(json!({"cidr": "10.1.0.5/24", "ip_version": 4}), &[]),
            400
        );
        assert_eq!(
            code(json!({"cidr": "fd00::/64", "ip_version": 4}), &[]),
            400
        );
        assert_eq!(
            code(
                json!({"cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": "10.2.0.1"}),
                &[]
            ),
            400
        );
        assert_eq!(
            code(
                json!({"cidr": "10.1.0.0/24", "ip_version": 4,
                "allocation_pools": [{"start": "10.1.0.1", "end": "10.1.0.9"}]}),
                &[]
            ),
            409
        );
        assert_eq!(
            code(
                json!({"cidr": "10.1.0.0/24", "ip_version": 4,
                "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.1.9"}]}),
                &[]
            ),
            400
        );
        assert_eq!(
            code(
                json!({"cidr": "10.1.0.0/24", "ip_version": 4, "ipv6_address_mode": "slaac"}),
                &[]
            ),
            400
        );
        let sib = [Arc::new(subnet("x", "n", "me", "10.1.0.0/16"))];
        assert_eq!(
            code(json!({"cidr": "10.1.5.0/24", "ip_version": 4}), &sib),
            400
        );
    }

    #[test]
    fn readdress_keeps_held_addresses() {
        let sn = Arc::new(subnet("s1", "n", "me", "10.0.0.0/24"));
        let cur = vec![PortIp {
            subnet_id: "s1".into(),
            ip_address: "10.0.0.5".into(),
        }];
        let (kept, fresh) = plan_readdress(&cur, vec![(sn.clone(), None)]);
        assert_eq!((kept.len(), fresh.len()), (1, 0));
        let (kept, fresh) = plan_readdress(&cur, vec![(sn.clone(), "10.0.0.6".parse().ok())]);
        assert_eq!((kept.len(), fresh.len()), (0, 1));
        let (kept, fresh) = plan_readdress(
            &cur,
            vec![(sn.clone(), "10.0.0.5".parse().ok()), (sn, None)],
        );
        assert_eq!((kept.len(), fresh.len()), (1, 1));
    }

    #[test]
    fn macs() {
        assert_eq!(
            normalize_mac("m", &json!("FA-16-3E-00-00-0A")).expect("ok"),
            "fa:16:3e:00:00:0a"
        );
        assert!(normalize_mac("m", &json!("01:00:5e:00:00:01")).is_err());
        assert!(normalize_mac("m", &json!("zz")).is_err());
    }
}
