//! `/network/v2.0/routers`: list, show, create, update and delete routers
//! with their external gateway, and `add_router_interface` /
//! `remove_router_interface` by subnet or port, with Neutron's checks and
//! error types. The records and their all-or-nothing writes are
//! `network::l3`'s.

use super::*;
use crate::network::l3::{
    change_row, quota, L3Write, Router, RouterGateway, OWNER_ROUTER_GW, OWNER_ROUTER_INTF,
};

const ROUTER_ATTRS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "admin_state_up",
    "status",
    "description",
    "external_gateway_info",
    "routes",
    "tags",
    "availability_zones",
    "availability_zone_hints",
    "flavor_id",
    "created_at",
    "updated_at",
    "revision_number",
];
const ROUTER_CREATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "tenant_id",
    "project_id",
    "external_gateway_info",
    "availability_zone_hints",
];
const ROUTER_UPDATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "routes",
];

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route(
            "/network/v2.0/routers",
            get(list_routers).post(create_router),
        )
        .route(
            "/network/v2.0/routers/{id}",
            get(show_router).put(update_router).delete(delete_router),
        )
        .route(
            "/network/v2.0/routers/{id}/add_router_interface",
            axum::routing::put(add_interface),
        )
        .route(
            "/network/v2.0/routers/{id}/remove_router_interface",
            axum::routing::put(remove_interface),
        )
}

pub(super) fn router_not_found(id: &str) -> NeutronError {
    NeutronError::new(
        404,
        "RouterNotFound",
        format!("Router {id} could not be found"),
    )
}

/// Neutron's generic `BadRequest` for a resource.
pub(super) fn bad_request(resource: &str, msg: impl std::fmt::Display) -> NeutronError {
    NeutronError::new(400, "BadRequest", format!("Bad {resource} request: {msg}."))
}

/// A refused quota guard as Neutron's `OverQuota`; other faults as they are.
pub(super) fn quota_fault(f: Fault) -> NeutronError {
    if f.code == 403 && f.message.starts_with("Quota exceeded for resources") {
        return NeutronError::new(409, "OverQuota", f.message);
    }
    ip_fault(f)
}

fn router_json(app: &App, r: &Router) -> Value {
    let gw = r.gateway.as_ref().map(|g| {
        let ips: Vec<Value> = app
            .networks
            .ports
            .get(&g.port_id)
            .map(|p| {
                p.fixed_ips
                    .iter()
                    .map(|ip| json!({"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}))
                    .collect()
            })
            .unwrap_or_default();
        json!({"network_id": g.network_id, "enable_snat": g.enable_snat,
               "external_fixed_ips": ips})
    });
    json!({
        "id": r.id,
        "name": r.name,
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "admin_state_up": r.admin_state_up,
        "status": r.status,
        "description": r.description,
        "external_gateway_info": gw,
        "routes": [],
        "tags": [],
        "availability_zones": [],
        "availability_zone_hints": [],
        "flavor_id": null,
        "created_at": iso_z(&r.created_at),
        "updated_at": iso_z(&r.updated_at),
        "revision_number": 1,
    })
}

fn router_visible(r: &Router, ctx: &Ctx) -> bool {
    ctx.is_admin() || r.project_id == ctx.project_id
}

fn visible_router(app: &App, ctx: &Ctx, id: &str) -> NResult<Arc<Router>> {
    app.networks
        .routers
        .get(id)
        .filter(|r| router_visible(r, ctx))
        .ok_or_else(|| router_not_found(id))
}

fn may_change_router(r: &Router, ctx: &Ctx) -> bool {
    ctx.is_admin() || (ctx.is_member() && r.project_id == ctx.project_id)
}

async fn list_routers(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    let items: Vec<Value> = app
        .networks
        .routers
        .filter(|r| router_visible(r, &ctx))
        .iter()
        .map(|r| router_json(&app, r))
        .collect();
    let (items, more) = select(items, &p, ROUTER_ATTRS, &[])?;
    let body = list_body(&host_url(&headers), "routers", "routers", items, more, &p);
    Ok(axum::Json(body).into_response())
}

async fn show_router(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let r = visible_router(&app, &ctx, &id)?;
    Ok(one(
        "router",
        project_fields(router_json(&app, &r), raw.as_deref()),
    ))
}

/// A requested external gateway.
struct GwRequest {
    network_id: String,
    enable_snat: Option<bool>,
    fixed_ips: Option<Value>,
}

/// `external_gateway_info` from a body: absent (`None`), cleared
/// (`Some(None)`) or set.
fn gateway_from(
    m: &Map<String, Value>,
    ctx: &Ctx,
    rule: &str,
) -> NResult<Option<Option<GwRequest>>> {
    let v = match m.get("external_gateway_info") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(o)) if o.is_empty() => return Ok(Some(None)),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(bad(format!(
                "Invalid input for external_gateway_info. Reason: '{other}' is not a dictionary."
            )))
        }
    };
    if let Some(k) = v
        .keys()
        .find(|k| !["network_id", "enable_snat", "external_fixed_ips"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "Invalid input for external_gateway_info. Reason: Unrecognized attribute '{k}'."
        )));
    }
    let network_id = get_str(v, "network_id", 36)?.ok_or_else(|| {
        bad("Invalid input for external_gateway_info. Reason: Validation of dictionary's keys failed. Expected keys: {'network_id'}.")
    })?;
    let enable_snat = get_bool(v, "enable_snat")?;
    for (key, present) in [
        ("enable_snat", enable_snat.is_some()),
        ("external_fixed_ips", v.contains_key("external_fixed_ips")),
    ] {
        if present && !ctx.is_admin() {
            return Err(policy(&format!(
                "(rule:{rule} and rule:{rule}:external_gateway_info and rule:{rule}:external_gateway_info:{key})"
            )));
        }
    }
    Ok(Some(Some(GwRequest {
        network_id,
        enable_snat,
        fixed_ips: v.get("external_fixed_ips").cloned(),
    })))
}

/// The gateway port a request asks for (not written, its addresses
/// reserved), for router `router_id`.
fn gateway_port(app: &App, ctx: &Ctx, router_id: &str, gw: &GwRequest) -> NResult<Port> {
    let net = visible_network(app, ctx, &gw.network_id)?;
    if !net.router_external {
        return Err(bad_request(
            "router",
            format!("Network {} is not an external network", net.id),
        ));
    }
    let wants: IpWants = match &gw.fixed_ips {
        None | Some(Value::Null) => app
            .networks
            .subnets_of(&net.id)
            .into_iter()
            .map(|s| (s, None))
            .collect(),
        Some(v) => ports::parse_fixed_ips(app, &net.id, v)?,
    };
    for (sn, ip) in &wants {
        if let Some(ip) = ip {
            if sn.gateway_ip.as_deref() == Some(ip.to_string().as_str()) {
                return Err(bad_request(
                    "router",
                    format!("External IP {ip} is the same as the gateway IP"),
                ));
            }
        }
    }
    let ips = app.networks.reserve_ips(&wants).map_err(ip_fault)?;
    let device = (router_id, OWNER_ROUTER_GW);
    Ok(app
        .networks
        .service_port(&net.id, "", ips, device, app.clock.now()))
}

async fn create_router(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "router", ROUTER_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_router"));
    }
    let project_id = owner_from(&m, &ctx)?;
    only_value(
        &m,
        "availability_zone_hints",
        &json!([]),
        "Availability zone hints",
    )?;
    let name = get_str(&m, "name", 255)?.unwrap_or_default();
    let description = get_str(&m, "description", 255)?.unwrap_or_default();
    let admin_state_up = get_bool(&m, "admin_state_up")?.unwrap_or(true);
    let gw = gateway_from(&m, &ctx, "create_router")?.flatten();
    let now = app.clock.now();
    let id = uuid::Uuid::new_v4().to_string();
    let _guard = app.networks.topology_lock().await;
    let port = gw
        .as_ref()
        .map(|g| gateway_port(&app, &ctx, &id, g))
        .transpose()?;
    let router = Router {
        id: id.clone(),
        name,
        project_id: project_id.clone(),
        description,
        admin_state_up,
        status: "ACTIVE".into(),
        gateway: gw.as_ref().zip(port.as_ref()).map(|(g, p)| RouterGateway {
            network_id: g.network_id.clone(),
            enable_snat: g.enable_snat.unwrap_or(true),
            port_id: p.id.clone(),
        }),
        created_at: now,
        updated_at: now,
    };
    let mut w = L3Write::default();
    if let Some(p) = port {
        let ips = p.fixed_ips.clone();
        w = w.port(&p.id.clone(), Some(p)).reserved(ips);
    }
    let guard = quota(&project_id, "router", crate::network::l3::ROUTER_QUOTA);
    let rid = id.clone();
    w = w.routers(move |v| {
        v.put_guarded(&rid, router, guard);
        Ok(())
    });
    app.networks.commit_l3(w).await.map_err(quota_fault)?;
    let r = app
        .networks
        .routers
        .get(&id)
        .ok_or_else(|| router_not_found(&id))?;
    Ok(created("router", router_json(&app, &r)))
}

fn gateway_in_use(app: &App, r: &Router) -> NResult<()> {
    if let Some(g) = &r.gateway {
        if !app.networks.fips_via_router(&r.id).is_empty() {
            return Err(NeutronError::new(409, "RouterExternalGatewayInUseByFloatingIp", format!(
                "Gateway cannot be updated for router {}, since a gateway to external network {} is required by one or more floating IPs.",
                r.id, g.network_id
            )));
        }
    }
    Ok(())
}

async fn update_router(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_router(&app, &ctx, &id)?;
    let m = resource_body(
        &body,
        "router",
        ROUTER_UPDATE,
        &[
            "id",
            "tenant_id",
            "project_id",
            "status",
            "created_at",
            "updated_at",
        ],
    )?;
    if !may_change_router(&cur, &ctx) {
        return Err(policy("rule:update_router"));
    }
    if m.get("routes")
        .is_some_and(|v| v != &json!([]) && !v.is_null())
    {
        return Err(bad(
            "Static routes are not supported by this service (routes).",
        ));
    }
    let name = get_str(&m, "name", 255)?;
    let description = get_str(&m, "description", 255)?;
    let admin_state_up = get_bool(&m, "admin_state_up")?;
    let gw = gateway_from(&m, &ctx, "update_router")?;
    let _guard = app.networks.topology_lock().await;
    let cur = visible_router(&app, &ctx, &id)?;
    let mut w = L3Write::default();
    // The gateway as it is to be: unchanged, SNAT changed in place, or a
    // new port (the old one deleted).
    let mut next_gw = cur.gateway.clone();
    if let Some(req) = gw {
        let same_net = match (&req, &cur.gateway) {
            (Some(r), Some(g)) => r.network_id == g.network_id && r.fixed_ips.is_none(),
            _ => false,
        };
        if same_net {
            if let (Some(r), Some(g)) = (&req, next_gw.as_mut()) {
                if let Some(snat) = r.enable_snat {
                    g.enable_snat = snat;
                }
            }
        } else {
            let moves = match (&req, &cur.gateway) {
                (Some(r), Some(g)) => r.network_id != g.network_id,
                (None, Some(_)) => true,
                _ => false,
            };
            if moves {
                gateway_in_use(&app, &cur)?;
            }
            let port = req
                .as_ref()
                .map(|r| gateway_port(&app, &ctx, &id, r))
                .transpose()?;
            if let Some(old) = &cur.gateway {
                w = w.port(&old.port_id, None);
            }
            next_gw = req.as_ref().zip(port.as_ref()).map(|(r, p)| RouterGateway {
                network_id: r.network_id.clone(),
                enable_snat: r.enable_snat.unwrap_or(true),
                port_id: p.id.clone(),
            });
            if let Some(p) = port {
                let ips = p.fixed_ips.clone();
                w = w.port(&p.id.clone(), Some(p)).reserved(ips);
            }
        }
    }
    let now = app.clock.now();
    let rid = id.clone();
    let expect = cur.gateway.clone();
    w = w.routers(move |v| {
        change_row(v, &rid, || Fault::not_found("router"), None, |r| {
            if r.gateway != expect {
                return Err(Fault::conflict(
                    "The router's gateway was changed by another request meanwhile; retry the request.",
                ));
            }
            if let Some(v) = name {
                r.name = v;
            }
            if let Some(v) = description {
                r.description = v;
            }
            if let Some(v) = admin_state_up {
                r.admin_state_up = v;
            }
            r.gateway = next_gw;
            r.updated_at = now;
            Ok(())
        })
    });
    app.networks.commit_l3(w).await.map_err(|f| {
        if f.code == 404 {
            router_not_found(&id)
        } else {
            ip_fault(f)
        }
    })?;
    let r = visible_router(&app, &ctx, &id)?;
    Ok(one("router", router_json(&app, &r)))
}

async fn delete_router(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let r = visible_router(&app, &ctx, &id)?;
    if !may_change_router(&r, &ctx) {
        return Err(policy("rule:delete_router"));
    }
    let _guard = app.networks.topology_lock().await;
    let r = visible_router(&app, &ctx, &id)?;
    let attached: Vec<String> = app
        .networks
        .router_interfaces(&id)
        .iter()
        .map(|p| p.id.clone())
        .collect();
    if !attached.is_empty() {
        return Err(NeutronError::new(
            409,
            "RouterInUse",
            format!(
                "Router {id} has ports still attached: {}",
                attached.join(", ")
            ),
        ));
    }
    gateway_in_use(&app, &r)?;
    let mut w = L3Write::default();
    if let Some(g) = &r.gateway {
        w = w.port(&g.port_id, None);
    }
    let rid = id.clone();
    w = w.routers(move |v| {
        v.delete(&rid);
        Ok(())
    });
    app.networks.commit_l3(w).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `subnet_id` / `port_id` of an interface request (each a UUID).
fn interface_info(body: &Bytes) -> NResult<(Option<String>, Option<String>)> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| {
            bad("The server could not comply with the request since it is either malformed or otherwise incorrect.")
        })?
    };
    let Some(o) = v.as_object() else {
        return Err(bad_request(
            "router",
            "Either subnet_id or port_id must be specified",
        ));
    };
    let mut out = [None, None];
    for (i, key) in ["subnet_id", "port_id"].iter().enumerate() {
        if let Some(x) = o.get(*key) {
            let s = x.as_str().unwrap_or_default();
            if uuid::Uuid::parse_str(s).is_err() {
                return Err(bad_request("router", format!("'{x}' is not a valid UUID")));
            }
            out[i] = Some(s.to_string());
        }
    }
    let [subnet, port] = out;
    if subnet.is_none() && port.is_none() {
        return Err(bad_request(
            "router",
            "Either subnet_id or port_id must be specified",
        ));
    }
    Ok((subnet, port))
}

/// The interface answer: the router, the port and its subnets.
fn interface_json(router_id: &str, p: &Port, subnet_id: &str) -> Response {
    let ids: Vec<&str> = p.fixed_ips.iter().map(|ip| ip.subnet_id.as_str()).collect();
    axum::Json(json!({
        "id": router_id, "tenant_id": p.project_id, "project_id": p.project_id,
        "port_id": p.id, "network_id": p.network_id, "subnet_id": subnet_id, "subnet_ids": ids,
    }))
    .into_response()
}

/// Refuses a subnet the router already has a port on, or one overlapping
/// a subnet the router is on (its gateway network's included).
fn check_router_subnets(
    app: &App,
    r: &Router,
    new: &[Arc<Subnet>],
    except: Option<&str>,
) -> NResult<()> {
    let mut ports = app.networks.router_interfaces(&r.id);
    if let Some(g) = r
        .gateway
        .as_ref()
        .and_then(|g| app.networks.ports.get(&g.port_id))
    {
        ports.push(g);
    }
    let mut on: Vec<Arc<Subnet>> = Vec::new();
    for p in ports.iter().filter(|p| Some(p.id.as_str()) != except) {
        for ip in &p.fixed_ips {
            if new.iter().any(|s| s.id == ip.subnet_id) {
                return Err(bad_request(
                    "router",
                    format!("Router already has a port on subnet {}", ip.subnet_id),
                ));
            }
        }
        if p.device_owner == OWNER_ROUTER_GW {
            on.extend(app.networks.subnets_of(&p.network_id));
        } else {
            on.extend(
                p.fixed_ips
                    .iter()
                    .filter_map(|ip| app.networks.subnets.get(&ip.subnet_id)),
            );
        }
    }
    for s in &on {
        for n in new {
            if cidrs_overlap(&s.cidr, &n.cidr) {
                return Err(bad_request(
                    "router",
                    format!(
                        "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                        n.cidr, n.id, s.cidr, s.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn add_interface(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let r = visible_router(&app, &ctx, &id)?;
    if !may_change_router(&r, &ctx) {
        return Err(policy("rule:add_router_interface"));
    }
    let (subnet_id, port_id) = interface_info(&body)?;
    if subnet_id.is_some() && port_id.is_some() {
        return Err(bad_request(
            "router",
            "Cannot specify both subnet-id and port-id",
        ));
    }
    let _guard = app.networks.topology_lock().await;
    let r = visible_router(&app, &ctx, &id)?;
    let now = app.clock.now();
    let (port, subnet_id, w) = if let Some(sid) = subnet_id {
        let sn = visible_subnet(&app, &ctx, &sid)?;
        let Some(gw) = sn
            .gateway_ip
            .as_deref()
            .and_then(|g| g.parse::<IpAddr>().ok())
        else {
            return Err(bad_request(
                "router",
                "Subnet for router interface must have a gateway IP",
            ));
        };
        if sn.project_id != ctx.project_id && !ctx.is_admin() {
            return Err(bad_request("router", format!(
                "Cannot add interface to router because subnet {sid} is not owned by project making the request"
            )));
        }
        check_router_subnets(&app, &r, std::slice::from_ref(&sn), None)?;
        let ip = app.networks.reserve_exact(&sn, gw).map_err(ip_fault)?;
        let device = (id.as_str(), OWNER_ROUTER_INTF);
        let p =
            app.networks
                .service_port(&sn.network_id, &r.project_id, vec![ip.clone()], device, now);
        let w = L3Write::default()
            .port(&p.id, Some(p.clone()))
            .reserved(vec![ip]);
        (p, sid, w)
    } else {
        let pid = port_id.unwrap_or_default();
        let cur = visible_port(&app, &ctx, &pid)?;
        if !cur.device_id.is_empty() {
            return Err(NeutronError::new(409, "PortInUse", format!(
                "Unable to complete operation on port {pid} for network {}. Port already has an attached device {}.",
                cur.network_id, cur.device_id
            )));
        }
        if cur.fixed_ips.is_empty() {
            return Err(bad_request(
                "router",
                "Router port must have at least one fixed IP",
            ));
        }
        let subnets: Vec<Arc<Subnet>> = cur
            .fixed_ips
            .iter()
            .filter_map(|ip| app.networks.subnets.get(&ip.subnet_id))
            .collect();
        if subnets.iter().filter(|s| s.ip_version == 4).count() > 1 {
            return Err(bad_request(
                "router",
                "Cannot have multiple IPv4 subnets on router port",
            ));
        }
        check_router_subnets(&app, &r, &subnets, Some(&pid))?;
        let mut p = (*cur).clone();
        p.device_id = id.clone();
        p.device_owner = OWNER_ROUTER_INTF.into();
        p.status = "ACTIVE".into();
        p.updated_at = now;
        let sid = p.fixed_ips[0].subnet_id.clone();
        let w = L3Write::default().port(&pid, Some(p.clone()));
        (p, sid, w)
    };
    let rid = id.clone();
    let w = w.routers(move |v| {
        change_row(
            v,
            &rid,
            || Fault::not_found("router"),
            None,
            |r| {
                r.updated_at = now;
                Ok(())
            },
        )
    });
    app.networks.commit_l3(w).await.map_err(|f| {
        if f.code == 404 {
            router_not_found(&id)
        } else {
            ip_fault(f)
        }
    })?;
    Ok(interface_json(&id, &port, &subnet_id))
}

/// Refuses taking subnet `sn` off router `router_id` while a floating IP
/// reaches a port of the subnet through it.
fn interface_in_use(app: &App, router_id: &str, sn: &Subnet) -> NResult<()> {
    let used = app.networks.fips_via_router(router_id).iter().any(|f| {
        let fixed = f
            .fixed_ip_address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok());
        fixed.is_some_and(|a| cidr_contains(&sn.cidr, a))
            && f.port_id
                .as_deref()
                .and_then(|p| app.networks.ports.get(p))
                .is_some_and(|p| p.fixed_ips.iter().any(|ip| ip.subnet_id == sn.id))
    });
    if used {
        return Err(NeutronError::new(409, "RouterInterfaceInUseByFloatingIP", format!(
            "Router interface for subnet {} on router {router_id} cannot be deleted, as it is required by one or more floating IPs.",
            sn.id
        )));
    }
    Ok(())
}

async fn remove_interface(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let r = visible_router(&app, &ctx, &id)?;
    if !may_change_router(&r, &ctx) {
        return Err(policy("rule:remove_router_interface"));
    }
    let (subnet_id, port_id) = interface_info(&body)?;
    let _guard = app.networks.topology_lock().await;
    let ifaces = app.networks.router_interfaces(&id);
    let now = app.clock.now();
    let (port, next, subnets) = if let Some(pid) = port_id {
        let p = ifaces
            .iter()
            .find(|p| p.id == pid)
            .cloned()
            .ok_or_else(|| {
                NeutronError::new(
                    404,
                    "RouterInterfaceNotFound",
                    format!("Router {id} does not have an interface with id {pid}"),
                )
            })?;
        if let Some(sid) = &subnet_id {
            if !p.fixed_ips.iter().any(|ip| &ip.subnet_id == sid) {
                return Err(NeutronError::new(
                    400,
                    "SubnetMismatchForPort",
                    format!("Subnet on port {pid} does not match the requested subnet {sid}."),
                ));
            }
        }
        let subnets: Vec<Arc<Subnet>> = p
            .fixed_ips
            .iter()
            .filter_map(|ip| app.networks.subnets.get(&ip.subnet_id))
            .collect();
        (p, None, subnets)
    } else {
        let sid = subnet_id.unwrap_or_default();
        let sn = visible_subnet(&app, &ctx, &sid)?;
        let p = ifaces
            .iter()
            .find(|p| p.fixed_ips.iter().any(|ip| ip.subnet_id == sid))
            .cloned()
            .ok_or_else(|| {
                NeutronError::new(
                    404,
                    "RouterInterfaceNotFoundForSubnet",
                    format!("Router {id} has no interface on subnet {sid}"),
                )
            })?;
        // A port on several subnets keeps the others.
        let next = (p.fixed_ips.len() > 1).then(|| {
            let mut n = (*p).clone();
            n.fixed_ips.retain(|ip| ip.subnet_id != sid);
            n.updated_at = now;
            n
        });
        (p, next, vec![sn])
    };
    for sn in &subnets {
        interface_in_use(&app, &id, sn)?;
    }
    let first = subnets.first().map(|s| s.id.clone()).unwrap_or_default();
    let rid = id.clone();
    let w = L3Write::default().port(&port.id, next).routers(move |v| {
        change_row(
            v,
            &rid,
            || Fault::not_found("router"),
            None,
            |r| {
                r.updated_at = now;
                Ok(())
            },
        )
    });
    app.networks.commit_l3(w).await.map_err(|f| {
        if f.code == 404 {
            router_not_found(&id)
        } else {
            f.into()
        }
    })?;
    Ok(interface_json(&id, &port, &first))
}
