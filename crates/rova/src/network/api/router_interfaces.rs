//! `PUT /network/v2.0/routers/{id}/add_router_interface` and
//! `remove_router_interface`: a router's interface by subnet (a new port
//! holding the subnet's gateway address) or by port (a port of the
//! caller's, taken over), and its removal, with Neutron's checks (a subnet
//! already on the router or overlapping one, a port in use, a floating IP
//! that needs the interface) and error types.

use super::routers::{
    bad_request, may_change_router, router_fault, touching_router, visible_router,
};
use super::*;
use crate::network::l3::{L3Write, Router, OWNER_ROUTER_GW, OWNER_ROUTER_INTF};

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

/// The `subnet_id` / `port_id` of an interface action on router `id`
/// the caller may change (`rule` names the action's policy).
fn interface_request(
    app: &App,
    ctx: &Ctx,
    id: &str,
    body: &Bytes,
    rule: &str,
) -> NResult<(Option<String>, Option<String>)> {
    let r = visible_router(app, ctx, id)?;
    if !may_change_router(&r, ctx) {
        return Err(policy(&format!("rule:{rule}")));
    }
    interface_info(body)
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

pub(super) async fn add_interface(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let (subnet_id, port_id) = interface_request(&app, &ctx, &id, &body, "add_router_interface")?;
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
    let w = touching_router(w, &id, now);
    app.networks.commit_l3(w).await.map_err(router_fault(&id))?;
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

pub(super) async fn remove_interface(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let (subnet_id, port_id) =
        interface_request(&app, &ctx, &id, &body, "remove_router_interface")?;
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
    let w = touching_router(L3Write::default().port(&port.id, next), &id, now);
    app.networks.commit_l3(w).await.map_err(router_fault(&id))?;
    Ok(interface_json(&id, &port, &first))
}
