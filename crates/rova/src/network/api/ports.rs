//! `/network/v2.0/ports`: list (with `fixed_ips` filters), show, create,
//! update and delete ports, including fixed-IP requests, MAC addresses
//! and re-addressing.

use super::*;
use crate::network::is_auto_address;

/// `fixed_ips=ip_address=X` / `fixed_ips=subnet_id=Y`: OR within a key,
/// AND across keys, as Neutron does.
pub(super) fn fixed_ip_filter(p: &ListParams) -> NResult<Option<(Vec<String>, Vec<String>)>> {
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

pub(super) fn port_has_fixed_ip(p: &Port, ips: &[String], subnets: &[String]) -> bool {
    p.fixed_ips.iter().any(|f| {
        (ips.is_empty() || ips.contains(&f.ip_address))
            && (subnets.is_empty() || subnets.contains(&f.subnet_id))
    })
}

pub(super) async fn list_ports(
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

pub(super) async fn show_port(
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

/// The device owners of a router's interfaces, which may hold any
/// address of an auto-address subnet (its gateway).
const ROUTER_INTERFACE_OWNERS: [&str; 3] = [
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
];

fn is_router_interface(device_owner: &str) -> bool {
    ROUTER_INTERFACE_OWNERS.contains(&device_owner)
}

/// Neutron refuses an address asked for on an auto-address (SLAAC)
/// subnet, whose ports' addresses are their MACs' EUI-64, but for a
/// router's interface.
fn refuse_auto_addresses(wants: &IpWants, device_owner: &str) -> NResult<()> {
    if is_router_interface(device_owner) {
        return Ok(());
    }
    match wants
        .iter()
        .find(|(sn, ip)| ip.is_some() && is_auto_address(sn))
    {
        Some((sn, Some(ip))) => Err(invalid_input(crate::network::auto_address_refused(
            *ip, &sn.id,
        ))),
        _ => Ok(()),
    }
}

/// Resolves a `fixed_ips` request against a network's subnets.
pub(super) fn parse_fixed_ips(app: &App, net_id: &str, v: &Value) -> NResult<IpWants> {
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

pub(super) fn normalize_mac(key: &str, v: &Value) -> NResult<String> {
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

pub(super) async fn create_port(
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
        .map(crate::network::secgroups::parse_group_ids)
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
        Some(v) => {
            let mut wants = parse_fixed_ips(&app, &net_id, v)?;
            refuse_auto_addresses(&wants, &device_owner)?;
            if !is_router_interface(&device_owner) {
                app.networks.with_auto_addresses(&net_id, &mut wants);
            }
            wants
        }
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
    let fixed_ips = app
        .networks
        .reserve_ips_for(&wants, Some(&mac))
        .map_err(ip_fault)?;
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
pub(super) fn plan_readdress(current: &[PortIp], wants: IpWants) -> (Vec<PortIp>, IpWants) {
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

pub(super) async fn update_port(
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
        .map(crate::network::secgroups::parse_group_ids)
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
            refuse_auto_addresses(&wants, &cur.device_owner)?;
            let current = app
                .networks
                .ports
                .get(&id)
                .map(|p| p.fixed_ips.clone())
                .unwrap_or_default();
            let (mut kept, fresh) = plan_readdress(&current, wants);
            let reserved = app
                .networks
                .reserve_ips_for(&fresh, Some(&cur.mac_address))
                .map_err(ip_fault)?;
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

pub(super) async fn delete_port(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let p = visible_port(&app, &ctx, &id)?;
    if !may_change_port(&app, &p, &ctx) {
        return Err(policy("rule:delete_port"));
    }
    let _guard = app.networks.topology_lock().await;
    if app.networks.service_port_in_use(&p) {
        return Err(NeutronError::new(
            409,
            "ServicePortInUse",
            format!(
                "Port {id} cannot be deleted directly via the port API: has device owner {}.",
                p.device_owner
            ),
        ));
    }
    app.networks.delete_port(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
