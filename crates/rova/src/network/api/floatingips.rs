//! `/network/v2.0/floatingips`: list, show, create (an address from the
//! external network's subnets, held by a `network:floatingip` port),
//! update (associate with a port's fixed address behind a router, or
//! disassociate) and delete floating IPs, with Neutron's checks and error
//! types. The records and their all-or-nothing writes are
//! `network::l3`'s.

use super::routers::{bad_request, quota_fault};
use super::*;
use crate::network::l3::{
    change_row, fixed_key, one_per_fixed_ip, quota, Association, FloatingIp, L3Write,
    FLOATINGIP_QUOTA, OWNER_FLOATINGIP,
};

const FIP_ATTRS: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "floating_ip_address",
    "floating_network_id",
    "router_id",
    "port_id",
    "fixed_ip_address",
    "status",
    "description",
    "port_details",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];
const FIP_CREATE: &[&str] = &[
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_id",
    "fixed_ip_address",
    "description",
    "tenant_id",
    "project_id",
];
const FIP_UPDATE: &[&str] = &["port_id", "fixed_ip_address", "description"];

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/network/v2.0/floatingips", get(list_fips).post(create_fip))
        .route(
            "/network/v2.0/floatingips/{id}",
            get(show_fip).put(update_fip).delete(delete_fip),
        )
}

fn fip_not_found(id: &str) -> NeutronError {
    NeutronError::new(
        404,
        "FloatingIPNotFound",
        format!("Floating IP {id} could not be found"),
    )
}

fn fip_json(app: &App, f: &FloatingIp) -> Value {
    let details = f
        .port_id
        .as_deref()
        .and_then(|p| app.networks.ports.get(p))
        .map(|p| {
            json!({"name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
                   "admin_state_up": p.admin_state_up, "status": p.status,
                   "device_id": p.device_id, "device_owner": p.device_owner})
        });
    json!({
        "id": f.id,
        "tenant_id": f.project_id,
        "project_id": f.project_id,
        "floating_ip_address": f.floating_ip_address,
        "floating_network_id": f.floating_network_id,
        "router_id": f.router_id,
        "port_id": f.port_id,
        "fixed_ip_address": f.fixed_ip_address,
        "status": f.status,
        "description": f.description,
        "port_details": details,
        "tags": [],
        "created_at": iso_z(&f.created_at),
        "updated_at": iso_z(&f.updated_at),
        "revision_number": 1,
    })
}

fn fip_visible(f: &FloatingIp, ctx: &Ctx) -> bool {
    ctx.is_admin() || f.project_id == ctx.project_id
}

fn visible_fip(app: &App, ctx: &Ctx, id: &str) -> NResult<Arc<FloatingIp>> {
    app.networks
        .floatingips
        .get(id)
        .filter(|f| fip_visible(f, ctx))
        .ok_or_else(|| fip_not_found(id))
}

fn may_change_fip(f: &FloatingIp, ctx: &Ctx) -> bool {
    ctx.may_change(&f.project_id)
}

async fn list_fips(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let items: Vec<Value> = app
        .networks
        .floatingips
        .filter(|f| fip_visible(f, &ctx))
        .iter()
        .map(|f| fip_json(&app, f))
        .collect();
    list_response(&headers, raw.as_deref(), "floatingips", FIP_ATTRS, items)
}

async fn show_fip(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let f = visible_fip(&app, &ctx, &id)?;
    Ok(one(
        "floatingip",
        project_fields(fip_json(&app, &f), raw.as_deref()),
    ))
}

/// An optional UUID attribute (`null` is none).
fn get_id(m: &Map<String, Value>, key: &str) -> NResult<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_str().filter(|s| uuid::Uuid::parse_str(s).is_ok()) {
            Some(s) => Ok(Some(s.to_string())),
            None => Err(bad(format!(
                "Invalid input for {key}. Reason: '{v}' is not a valid UUID."
            ))),
        },
    }
}

/// An optional IP address attribute (`null` is none).
fn get_ip(m: &Map<String, Value>, key: &str) -> NResult<Option<IpAddr>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_ip(key, s).map(Some),
        Some(v) => Err(bad(format!(
            "Invalid input for {key}. Reason: '{v}' is not a valid IP address."
        ))),
    }
}

/// Where a floating IP of project `project_id` on external network
/// `ext_net` would point when associated with `port_id` (at `fixed`, or
/// the port's only IPv4 address), checked as Neutron checks it.
fn association(
    app: &App,
    ctx: &Ctx,
    (project_id, ext_net): (&str, &str),
    port_id: &str,
    fixed: Option<IpAddr>,
) -> NResult<Association> {
    let port = visible_port(app, ctx, port_id)?;
    if port.project_id != project_id && !ctx.is_admin() {
        return Err(bad_request("floatingip", format!(
            "Cannot process floating IP association with Port {port_id}, since that port is owned by a different project"
        )));
    }
    if port.device_owner.starts_with("network:") {
        return Err(bad_request(
            "floatingip",
            format!("Port {port_id} is unable to be assigned a floating IP"),
        ));
    }
    let ip = match fixed {
        Some(a) => {
            if !a.is_ipv4() {
                return Err(bad_request("floatingip", format!(
                    "Cannot process floating IP association with {a}, since that is not an IPv4 address"
                )));
            }
            port.fixed_ips
                .iter()
                .find(|ip| ip.ip_address.parse::<IpAddr>().ok() == Some(a))
                .cloned()
                .ok_or_else(|| {
                    bad_request(
                        "floatingip",
                        format!("Port {port_id} does not have fixed ip {a}"),
                    )
                })?
        }
        None => {
            let v4: Vec<&PortIp> = port
                .fixed_ips
                .iter()
                .filter(|ip| ip.ip_address.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()))
                .collect();
            match v4.as_slice() {
                [] => return Err(bad_request("floatingip", format!(
                    "Cannot add floating IP to port {port_id} that has no fixed IPv4 addresses"
                ))),
                [one] => (*one).clone(),
                _ => return Err(bad_request("floatingip", format!(
                    "Port {port_id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP"
                ))),
            }
        }
    };
    let subnet = app
        .networks
        .subnets
        .get(&ip.subnet_id)
        .ok_or_else(|| subnet_not_found(&ip.subnet_id))?;
    let router_id = app.networks.router_for(&subnet, ext_net).ok_or_else(|| {
        NeutronError::new(404, "ExternalGatewayForFloatingIPNotFound", format!(
            "External network {ext_net} is not reachable from subnet {}.  Therefore, cannot associate Port {port_id} with a Floating IP.",
            subnet.id
        ))
    })?;
    let a = Association {
        port_id: port_id.to_string(),
        fixed_ip: ip.ip_address,
        router_id,
    };
    Ok(a)
}

fn already_message(fip: (&str, &str), a: &Association, ext_net: &str) -> String {
    format!(
        "Cannot associate floating IP {} ({}) with port {} using fixed IP {}, as that fixed IP already has a floating IP on external network {ext_net}.",
        fip.0, fip.1, a.port_id, a.fixed_ip
    )
}

/// Refuses pointing floating IP `fip` (`(address, id)`) at a fixed
/// address another floating IP on the same external network points at.
fn check_free(app: &App, fip: (&str, &str), a: &Association, ext_net: &str) -> NResult<()> {
    let key = fixed_key(ext_net, a);
    let taken = app
        .networks
        .fips_of_port(&a.port_id)
        .iter()
        .any(|f| f.id != fip.1 && f.fixed_key.as_deref() == Some(key.as_str()));
    if taken {
        return Err(NeutronError::new(
            409,
            "FloatingIPPortAlreadyAssociated",
            already_message(fip, a, ext_net),
        ));
    }
    Ok(())
}

/// A refused "one floating IP per fixed address" guard as Neutron's 409.
fn assoc_fault(f: Fault) -> NeutronError {
    if f.code == 403 && f.message.starts_with("Cannot associate floating IP") {
        return NeutronError::new(409, "FloatingIPPortAlreadyAssociated", f.message);
    }
    quota_fault(f)
}

async fn create_fip(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "floatingip", FIP_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_floatingip"));
    }
    let net_id = get_id(&m, "floating_network_id")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'floating_network_id' not specified")
    })?;
    let project_id = owner_from(&m, &ctx)?;
    let wanted = get_ip(&m, "floating_ip_address")?;
    if wanted.is_some() && !ctx.is_admin() {
        return Err(policy(
            "(rule:create_floatingip and rule:create_floatingip:floating_ip_address)",
        ));
    }
    let subnet_id = get_id(&m, "subnet_id")?;
    let port_id = get_id(&m, "port_id")?;
    let fixed = get_ip(&m, "fixed_ip_address")?;
    let description = get_str(&m, "description", 255)?.unwrap_or_default();
    let net = visible_network(&app, &ctx, &net_id)?;
    if !net.router_external {
        return Err(bad_request(
            "floatingip",
            format!("Network {net_id} is not a valid external network"),
        ));
    }
    let v4: Vec<Arc<Subnet>> = app
        .networks
        .subnets_of(&net_id)
        .into_iter()
        .filter(|s| s.ip_version == 4)
        .collect();
    if v4.is_empty() {
        return Err(bad_request(
            "floatingip",
            format!("Network {net_id} does not contain any IPv4 subnet"),
        ));
    }
    if fixed.is_some() && port_id.is_none() {
        return Err(bad_request(
            "floatingip",
            "fixed_ip_address cannot be specified without a port_id",
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let _guard = app.networks.topology_lock().await;
    let assoc = port_id
        .as_deref()
        .map(|p| association(&app, &ctx, (&project_id, &net_id), p, fixed))
        .transpose()?;
    // The address: the one asked for, or the first free one of the
    // network's IPv4 subnets (of `subnet_id` when given).
    let candidates: IpWants = match (&subnet_id, wanted) {
        (Some(sid), ip) => {
            let sn = v4.iter().find(|s| &s.id == sid).cloned().ok_or_else(|| {
                bad_request(
                    "floatingip",
                    format!("Subnet {sid} is not an IPv4 subnet of network {net_id}"),
                )
            })?;
            vec![(sn, ip)]
        }
        (None, Some(ip)) => {
            let sn = v4.iter().find(|s| cidr_contains(&s.cidr, ip)).cloned().ok_or_else(|| {
                NeutronError::new(400, "InvalidIpForNetwork", format!(
                    "IP address {ip} is not a valid IP for any of the subnets on the specified network."
                ))
            })?;
            vec![(sn, Some(ip))]
        }
        (None, None) => v4.iter().map(|s| (s.clone(), None)).collect(),
    };
    let mut got = Err(Fault::conflict(format!(
        "No more IP addresses available on network {net_id}."
    )));
    for want in &candidates {
        got = app.networks.reserve_ips(std::slice::from_ref(want));
        if got.is_ok() || want.1.is_some() {
            break;
        }
    }
    let ips = got.map_err(ip_fault)?;
    let address = ips
        .first()
        .map(|ip| ip.ip_address.clone())
        .unwrap_or_default();
    if let Some(a) = &assoc {
        if let Err(e) = check_free(&app, (&address, &id), a, &net_id) {
            app.networks.release_ips(&ips);
            return Err(e);
        }
    }
    let now = app.clock.now();
    let mut port =
        app.networks
            .service_port(&net_id, "", ips.clone(), (&id, OWNER_FLOATINGIP), now);
    port.status = "N/A".into();
    let mut fip = FloatingIp {
        id: id.clone(),
        project_id: project_id.clone(),
        floating_network_id: net_id.clone(),
        floating_ip_address: address,
        floating_port_id: port.id.clone(),
        port_id: None,
        fixed_ip_address: None,
        router_id: None,
        fixed_key: None,
        status: "DOWN".into(),
        description,
        created_at: now,
        updated_at: now,
    };
    fip.associate(assoc.as_ref());
    let fid = id.clone();
    let guard = quota(&project_id, "floatingip", FLOATINGIP_QUOTA);
    let w = L3Write::default()
        .port(&port.id.clone(), Some(port))
        .reserved(ips)
        .fips(move |v| {
            v.put_guarded(&fid, fip, guard);
            Ok(())
        });
    app.networks.commit_l3(w).await.map_err(quota_fault)?;
    let f = visible_fip(&app, &ctx, &id)?;
    Ok(created("floatingip", fip_json(&app, &f)))
}

async fn update_fip(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_fip(&app, &ctx, &id)?;
    let m = resource_body(
        &body,
        "floatingip",
        FIP_UPDATE,
        &[
            "id",
            "tenant_id",
            "project_id",
            "floating_ip_address",
            "floating_network_id",
            "router_id",
            "status",
            "subnet_id",
            "created_at",
            "updated_at",
        ],
    )?;
    if !may_change_fip(&cur, &ctx) {
        return Err(policy("rule:update_floatingip"));
    }
    let port_id = get_id(&m, "port_id")?;
    let fixed = get_ip(&m, "fixed_ip_address")?;
    let description = get_str(&m, "description", 255)?;
    let _guard = app.networks.topology_lock().await;
    let cur = visible_fip(&app, &ctx, &id)?;
    // The port it is to point at: as asked, or (fixed_ip_address alone)
    // the one it points at now.
    let target = if m.contains_key("port_id") {
        Some(port_id)
    } else if fixed.is_some() {
        match &cur.port_id {
            Some(p) => Some(Some(p.clone())),
            None => {
                return Err(bad_request(
                    "floatingip",
                    "fixed_ip_address cannot be specified without a port_id",
                ))
            }
        }
    } else {
        None
    };
    if fixed.is_some() && target == Some(None) {
        return Err(bad_request(
            "floatingip",
            "fixed_ip_address cannot be specified without a port_id",
        ));
    }
    let assoc = match &target {
        Some(Some(p)) => Some(Some(association(
            &app,
            &ctx,
            (&cur.project_id, &cur.floating_network_id),
            p,
            fixed,
        )?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(Some(a)) = &assoc {
        check_free(
            &app,
            (&cur.floating_ip_address, &id),
            a,
            &cur.floating_network_id,
        )?;
    }
    let guard = assoc.as_ref().and_then(|a| a.as_ref()).map(|a| {
        let key = fixed_key(&cur.floating_network_id, a);
        let msg = already_message((&cur.floating_ip_address, &id), a, &cur.floating_network_id);
        one_per_fixed_ip(&key, msg)
    });
    let now = app.clock.now();
    let fid = id.clone();
    let w = L3Write::default().fips(move |v| {
        change_row(
            v,
            &fid,
            || Fault::not_found("floatingip"),
            guard,
            |f| {
                if let Some(a) = assoc {
                    f.associate(a.as_ref());
                }
                if let Some(d) = description {
                    f.description = d;
                }
                f.updated_at = now;
                Ok(())
            },
        )
    });
    app.networks.commit_l3(w).await.map_err(|f| {
        if f.code == 404 {
            fip_not_found(&id)
        } else {
            assoc_fault(f)
        }
    })?;
    let f = visible_fip(&app, &ctx, &id)?;
    Ok(one("floatingip", fip_json(&app, &f)))
}

async fn delete_fip(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let f = visible_fip(&app, &ctx, &id)?;
    if !may_change_fip(&f, &ctx) {
        return Err(policy("rule:delete_floatingip"));
    }
    let _guard = app.networks.topology_lock().await;
    let fid = id.clone();
    let w = L3Write::default()
        .port(&f.floating_port_id, None)
        .fips(move |v| {
            v.delete(&fid);
            Ok(())
        });
    app.networks.commit_l3(w).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
