//! `/network/v2.0/routers`: list, show, create, update and delete routers
//! with their external gateway, with Neutron's checks and error types;
//! the interface actions are `router_interfaces`'. The records and their
//! all-or-nothing writes are `network::l3`'s.

use super::router_interfaces;
use super::*;
use crate::network::l3::{change_row, quota, L3Write, Router, RouterGateway, OWNER_ROUTER_GW};

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
            axum::routing::put(router_interfaces::add_interface),
        )
        .route(
            "/network/v2.0/routers/{id}/remove_router_interface",
            axum::routing::put(router_interfaces::remove_interface),
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

pub(super) fn router_visible(r: &Router, ctx: &Ctx) -> bool {
    ctx.is_admin() || r.project_id == ctx.project_id
}

pub(super) fn visible_router(app: &App, ctx: &Ctx, id: &str) -> NResult<Arc<Router>> {
    app.networks
        .routers
        .get(id)
        .filter(|r| router_visible(r, ctx))
        .ok_or_else(|| router_not_found(id))
}

pub(super) fn may_change_router(r: &Router, ctx: &Ctx) -> bool {
    ctx.may_change(&r.project_id)
}

async fn list_routers(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let items: Vec<Value> = app
        .networks
        .routers
        .filter(|r| router_visible(r, &ctx))
        .iter()
        .map(|r| router_json(&app, r))
        .collect();
    list_response(&headers, raw.as_deref(), "routers", ROUTER_ATTRS, items)
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
    app.networks.commit_l3(w).await.map_err(router_fault(&id))?;
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

/// `w` with router `id`'s row written too (its `updated_at` moved), so a
/// router deleted meanwhile refuses the whole write.
pub(super) fn touching_router<'a>(
    w: L3Write<'a>,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> L3Write<'a> {
    let rid = id.to_string();
    w.routers(move |v| {
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
    })
}

/// A refused router write: the router gone is `RouterNotFound`, address
/// refusals Neutron's.
pub(super) fn router_fault(id: &str) -> impl Fn(Fault) -> NeutronError + '_ {
    move |f| {
        if f.code == 404 {
            router_not_found(id)
        } else {
            ip_fault(f)
        }
    }
}
